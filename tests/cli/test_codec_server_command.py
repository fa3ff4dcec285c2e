"""``bulkorder codec-server`` as a user runs it: a separate process, stopped with Ctrl-C."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from temporalio.api.common.v1 import Payload

from bulkorder.storage.claim_check import ClaimCheckCodec
from bulkorder.storage.folder_store import FolderBlobStore
from tests.cli.helpers import cli_env

BULKORDER = [sys.executable, "-m", "bulkorder.cli"]
TOKEN = "cli-token-zq9"


def env_for(home: Path, **extra: str) -> dict[str, str]:
    return cli_env(home, extra)


async def test_codec_server_command_decodes_with_the_deployment_store(tmp_path: Path) -> None:
    home = tmp_path / "home"
    original = Payload(metadata={"encoding": b"binary/plain"}, data=b"order line\n" * 50_000)
    [reference] = await ClaimCheckCodec(FolderBlobStore(home / "blobs")).encode([original])

    process = await asyncio.create_subprocess_exec(
        *BULKORDER, "-v", "codec-server", "--port", "0",
        env=env_for(home, BULKORDER_CODEC_SERVER_TOKEN=TOKEN),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        printed: dict[str, str] = {}
        assert process.stdout is not None
        while True:
            line = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode()
            assert line, f"the codec server exited: {(await process.stderr.read()).decode()}"  # type: ignore[union-attr]
            if line.startswith("ready"):
                break
            name, _, value = line.partition(" ")
            printed[name] = value.strip()
        url = printed["codec"].split()[-1]
        assert url.startswith("http://127.0.0.1:")
        body = json.dumps(
            {"payloads": [{"metadata": {"encoding": base64.b64encode(b"binary/bulkorder-claim-check").decode()},
                           "data": base64.b64encode(reference.data).decode()}]}
        ).encode()
        request = urllib.request.Request(
            f"{url}/decode", data=body, method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}", "X-Namespace": "default"},
        )
        response = await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=30).read())
        [decoded] = json.loads(response)["payloads"]
        assert base64.b64decode(decoded["data"]) == original.data
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), timeout=30)
        rest_out, logged = await process.communicate()
    assert code == 0
    assert printed["token"] == "required" and printed["encode"].startswith("off")
    # Verbose: the log lines and everything printed carry no token.
    shown = "".join(f"{k} {v}" for k, v in printed.items()) + rest_out.decode() + logged.decode()
    assert "codec server listening" in logged.decode()
    assert TOKEN not in shown


def test_a_non_loopback_address_without_a_token_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [*BULKORDER, "codec-server", "--host", "0.0.0.0", "--port", "0"],
        env=env_for(tmp_path), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "not loopback" in result.stderr and "BULKORDER_CODEC_SERVER_TOKEN" in result.stderr


def test_bad_port_and_bad_settings_exit_2(tmp_path: Path) -> None:
    bad_port = subprocess.run(
        [*BULKORDER, "codec-server", "--port", "70000"], env=env_for(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert bad_port.returncode == 2 and "70000" in bad_port.stderr
    bad_threshold = subprocess.run(
        [*BULKORDER, "codec-server", "--port", "0"],
        env=env_for(tmp_path, BULKORDER_CLAIM_CHECK_THRESHOLD="100"), capture_output=True, text=True, timeout=60,
    )
    assert bad_threshold.returncode == 2 and "BULKORDER_CLAIM_CHECK_THRESHOLD" in bad_threshold.stderr


def test_port_in_use_fails_with_exit_1(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*BULKORDER, "codec-server", "--port", str(port)], env=env_for(tmp_path), capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1 and f"127.0.0.1:{port}" in result.stderr
