"""The importer is a client of the order API, above the layers: it may import
``bulkorder.workflows``, ``bulkorder.storage`` and ``bulkorder.domain``, and nothing in
those layers imports it (layers import one way, down)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.fixtures.python_source import parse_python

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("domain", "storage", "workflows")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(parse_python(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def test_no_layer_imports_the_importer() -> None:
    sources = [path for layer in LAYERS for path in (ROOT / layer).rglob("*.py") if "__pycache__" not in path.parts]
    assert sources, "no layer sources found"
    upward = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in sources
        for line, name in imported_modules(path)
        if name == "bulkorder.importer" or name.startswith("bulkorder.importer.")
    ]
    assert upward == [], "layers must not import the importer:\n" + "\n".join(upward)


def test_the_importer_lives_in_the_bulkorder_package() -> None:
    assert (ROOT / "bulkorder" / "importer" / "__init__.py").is_file()
    # Sources only: a checkout from before the move may keep a stale __pycache__ there.
    assert sorted((ROOT / "workflows" / "importer").glob("*.py")) == []
