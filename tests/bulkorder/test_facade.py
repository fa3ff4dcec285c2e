"""``bulkorder``: every documented entry point is importable from the facade, cheaply."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest

import bulkorder
from tests.fixtures.python_source import parse_python

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("temporalio", "boto3", "botocore", "eventsourcing", "psycopg")


def test_import_bulkorder_loads_no_heavy_library() -> None:
    code = f"import sys, bulkorder; print(__import__('json').dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_a_name_loads_only_its_own_module() -> None:
    code = (
        "import sys; from bulkorder import OrderClosedError, BulkorderError; "
        f"print(__import__('json').dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("name", bulkorder.__all__)
def test_every_exported_name_resolves_to_its_module_object(name: str) -> None:
    value = getattr(bulkorder, name)
    module = import_module(bulkorder._EXPORTS[name])
    assert value is getattr(module, name)


def test_dir_lists_every_export_and_unknown_names_are_attribute_errors() -> None:
    assert set(bulkorder.__all__) <= set(dir(bulkorder))
    with pytest.raises(AttributeError, match="'bulkorder' has no attribute 'NoSuchThing'"):
        bulkorder.NoSuchThing  # noqa: B018
    with pytest.raises(ImportError):
        exec("from bulkorder import NoSuchThing", {})


def test_the_type_checking_imports_match_the_lazy_map() -> None:
    """What editors see (the TYPE_CHECKING block) is what __getattr__ gives."""
    tree = parse_python((ROOT / "bulkorder" / "__init__.py").read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    seen = {alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert seen == bulkorder._EXPORTS


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_documented_code_imports_bulkorder_names_from_the_facade(doc: Path) -> None:
    for block in _python_blocks(doc.read_text()):
        tree = parse_python(block.replace("await ", ""))  # snippets await at top level
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                top = node.module.split(".")[0]
                assert top not in {"domain", "storage", "workflows"}, f"{doc.name}: from {node.module} import ..."
                if top == "bulkorder":
                    assert node.module == "bulkorder", f"{doc.name}: from {node.module} import ..."
                    missing = [alias.name for alias in node.names if alias.name not in bulkorder.__all__]
                    assert not missing, f"{doc.name}: bulkorder does not export {missing}"
