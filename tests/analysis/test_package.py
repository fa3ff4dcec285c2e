"""bulkorder.analysis: one home for the analysts' tools, cheap to import, above the layers."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import bulkorder
import bulkorder.analysis as analysis
from tests.fixtures.python_source import parse_python

ROOT = Path(__file__).resolve().parents[2]


def test_every_exported_name_is_the_defining_modules_object() -> None:
    for name, module in analysis._EXPORTS.items():
        assert getattr(analysis, name) is getattr(import_module(module), name), name
    assert sorted(analysis._EXPORTS) == analysis.__all__


def test_the_facade_hands_out_the_same_analysts_objects() -> None:
    for name in ("Analyst", "parse_instant", "VersionOutOfRangeError", "BeforeCreationError", "InvalidInstantError"):
        assert getattr(bulkorder, name) is getattr(analysis, name), name


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        analysis.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "bulkorder.analysis" in str(exc) and "NoSuchThing" in str(exc)
    else:
        raise AssertionError("bulkorder.analysis.NoSuchThing resolved")


def test_importing_the_package_loads_none_of_its_modules() -> None:
    # bulkorder.errors names the analysts' error classes: that must not open the event store.
    code = (
        "import json, sys; import bulkorder.analysis; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('bulkorder.', 'eventsourcing')))))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert loaded == ["bulkorder.analysis", "bulkorder.lazy_exports"]  # the latter: stdlib only


def test_the_layers_import_nothing_from_the_analysts() -> None:
    stray = []
    for folder in ("domain", "storage", "workflows"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(parse_python(path.read_text(), filename=str(path))):
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                stray += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n.startswith("bulkorder.analysis")]
    assert stray == [], "the layers must not import the analysts' package:\n" + "\n".join(stray)
