"""The CLI's error classification, and what every command pays for at start."""

from __future__ import annotations

import subprocess
import sys

from bulkorder.errors import BAD_INPUT, FAILED, exit_code_for


def test_server_errors_are_failures_though_their_modules_are_not_imported_by_the_classifier() -> None:
    from bulkorder.codec_server import CodecServerError
    from bulkorder.ops_server import OpsServerError

    assert exit_code_for(CodecServerError("port 8081 in use")) == FAILED
    assert exit_code_for(OpsServerError("port 9090 in use")) == FAILED

    class Subclassed(CodecServerError):
        pass

    assert exit_code_for(Subclassed("still the codec server's")) == FAILED
    assert exit_code_for(ValueError("not ours")) is None


def test_bad_input_still_bad_input() -> None:
    from bulkorder.domain.items import ItemValidationError

    assert exit_code_for(ItemValidationError([("line 3", "quantity", "must be positive")])) == BAD_INPUT


def test_building_the_cli_imports_no_http_server() -> None:
    """Every command's parser is built at every start: the codec and operations servers'
    aiohttp (~0.1 CPU-s) is imported only by the commands that serve HTTP, when they run."""
    code = (
        "import sys, bulkorder.cli; bulkorder.cli.build_parser(); "
        "print(sorted(m for m in ('aiohttp', 'bulkorder.codec_server', 'bulkorder.ops_server') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_classifying_with_the_server_modules_unloaded_or_half_loaded() -> None:
    """Neither module loaded: nothing of theirs to match, and classifying still works; a
    module left as None in sys.modules (a failed import) does not hide the error either."""
    code = (
        "import sys\n"
        "from bulkorder.errors import exit_code_for, FAILED, BAD_INPUT\n"
        "from bulkorder.settings import SettingsError\n"
        "assert 'bulkorder.codec_server' not in sys.modules and 'bulkorder.ops_server' not in sys.modules\n"
        "assert exit_code_for(ValueError('x')) is None and exit_code_for(SettingsError('x')) == BAD_INPUT\n"
        "sys.modules['bulkorder.ops_server'] = None\n"
        "assert exit_code_for(ValueError('x')) is None and exit_code_for(ConnectionError('x')) == FAILED\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "ok"
