"""The source tree and pyproject.toml agree on what ships, and nothing imports the old names.

The layers' folders stay at the top of the tree but ship as ``bulkorder.domain``,
``bulkorder.storage`` and ``bulkorder.workflows`` (pyproject's ``package-dir``). In this
tree the repository root is on ``sys.path`` too (pytest's ``pythonpath``), so a stray
``from domain.x import`` would still work here and load a second copy of the module, then
fail in a service's installation: these checks catch it before.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.fixtures.python_source import parse_python

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("domain", "storage", "workflows")
#: Folder -> the import package it ships as.
SHIPPED = {"bulkorder": "bulkorder", **{layer: f"bulkorder.{layer}" for layer in LAYERS}}


def package_folders() -> dict[str, Path]:
    packages = {}
    for folder, name in SHIPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            packages[".".join([name, *rel.parts])] = init.parent
    return packages


def test_pyproject_lists_every_package_folder() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set(package_folders())
    assert found - listed == set(), f"add to [tool.setuptools] packages in pyproject.toml: {sorted(found - listed)}"
    assert listed - found == set(), f"listed in pyproject.toml but no such folder: {sorted(listed - found)}"
    assert config["package-dir"] == {f"bulkorder.{layer}": layer for layer in LAYERS}


def test_every_folder_with_modules_is_a_package() -> None:
    # A folder of modules without __init__.py would be left out of the wheel silently.
    missing = sorted(
        str(path.parent.relative_to(ROOT))
        for folder in SHIPPED
        for path in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in path.parts and not (path.parent / "__init__.py").exists()
    )
    assert missing == [], f"folders with modules but no __init__.py: {missing}"


def old_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(parse_python(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [f"{path.relative_to(ROOT)}:{node.lineno}: {name}" for name in names if name.split(".")[0] in LAYERS]
    return found


def test_nothing_imports_the_layers_by_their_old_top_level_names() -> None:
    sources = [
        path
        for folder in (*SHIPPED, "tests")
        for path in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    ]
    stray = [line for path in sources for line in old_imports(path)]
    assert stray == [], "import bulkorder.<layer>..., not the folder's name:\n" + "\n".join(stray)


def test_importing_the_facade_loads_nothing_else() -> None:
    # Cheap to import, and nothing for Temporal's workflow sandbox to re-import: the sandbox
    # runs bulkorder/__init__.py as the parent of bulkorder.workflows, so an eager import of,
    # say, bulkorder.domain.refs there gives workflow code a second BatchRef class.
    code = (
        "import json, sys; import bulkorder; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('bulkorder.', 'temporalio', 'boto3', "
        "'eventsourcing', 'pydantic')))))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    # bulkorder.lazy_exports: the PEP 562 helper, standard library only, defines no class.
    assert loaded == ["bulkorder.lazy_exports"]
