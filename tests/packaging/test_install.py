"""A service installs bulkorder (not editable, no extras) and it works beside its own code.

One fresh virtual environment per session: a wheel built from a copy of this checkout
(so the tree gets no build/ folder), installed with pip as a service would, from the
machine's package index. No ``postgres`` extra, so no psycopg: the command line and the
demo must not need it. Then, from a service folder that has its own ``domain``,
``storage`` and ``workflows`` packages first on ``sys.path``, bulkorder imports and runs
and the service's packages stay the service's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_FOLDERS = ("bulkorder", "domain", "storage", "workflows")
OLD_STORE = ROOT / "tests" / "domain" / "fixtures" / "events-0.1.0.sqlite"
INSTALL_TIMEOUT = 600


@dataclass
class Installed:
    python: Path
    bulkorder: Path
    seconds: float

    def env(self, home: Path) -> dict[str, str]:
        # Nothing of this test process: no PYTHONPATH (the checkout), no VIRTUAL_ENV.
        return {"PATH": f"{self.python.parent}:/usr/bin:/bin", "HOME": str(home), "BULKORDER_HOME": str(home / "bulkorder")}


def run(args: list[str | Path], timeout: float = 120, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for folder in SHIPPED_FOLDERS:
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    started = time.monotonic()
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", base / "wheels", source], timeout=INSTALL_TIMEOUT)
    (wheel,) = (base / "wheels").glob("bulkorder-*.whl")
    venv = base / "venv"
    run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    run([python, "-m", "pip", "install", "--quiet", wheel], timeout=INSTALL_TIMEOUT)
    return Installed(python, venv / "bin" / "bulkorder", time.monotonic() - started)


@pytest.fixture
def service(tmp_path: Path) -> Path:
    """A service's folder with its own ``domain`` (an eventsourcing ``Order`` of its own,
    at the module path bulkorder 0.1.0 used), ``storage`` and ``workflows``."""
    folder = tmp_path / "service"
    for package in ("domain", "storage", "workflows"):
        (folder / package).mkdir(parents=True)
        (folder / package / "__init__.py").write_text(f'OWNER = "service"\n')
    (folder / "domain" / "order.py").write_text(textwrap.dedent('''
        from eventsourcing.domain import Aggregate, event

        class Order(Aggregate):
            """The service's own order, nothing to do with bulkorder's."""

            @event("Placed")
            def __init__(self, sku: str) -> None:
                self.sku = sku
    '''))
    (folder / "storage" / "repository.py").write_text("TABLE = 'service_orders'\n")
    return folder


def test_the_wheel_ships_one_import_package(installed: Installed) -> None:
    site = run([installed.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    top_level = sorted(p.name for p in Path(site).iterdir() if p.name in ("bulkorder", *SHIPPED_FOLDERS))
    assert top_level == ["bulkorder"]
    assert sorted(p.name for p in (Path(site) / "bulkorder").iterdir() if p.name in SHIPPED_FOLDERS) == [
        "domain", "storage", "workflows"
    ]


def test_the_command_line_starts_without_the_postgres_extra(installed: Installed, tmp_path: Path) -> None:
    missing = subprocess.run([installed.python, "-c", "import psycopg"], capture_output=True, text=True)
    assert missing.returncode != 0 and "No module named 'psycopg'" in missing.stderr
    done = run([installed.bulkorder, "--help"], env=installed.env(tmp_path), cwd=tmp_path)
    assert done.stdout.startswith("usage: bulkorder") and "demo" in done.stdout


def test_every_module_imports_beside_a_service_with_the_same_package_names(
    installed: Installed, service: Path, tmp_path: Path
) -> None:
    old_store = tmp_path / "old-events.sqlite"
    shutil.copyfile(OLD_STORE, old_store)
    code = textwrap.dedent(f'''
        # The service's own names stay as they are: rewrite-imports: keep
        import importlib, json, pkgutil, sys
        import domain, storage, workflows
        import storage.repository
        import bulkorder
        from bulkorder import BatchRef, OrderClient, Settings, open_runtime
        import bulkorder.cli

        modules = [m.name for m in pkgutil.walk_packages(bulkorder.__path__, "bulkorder.")]
        for name in modules:
            importlib.import_module(name)

        # The service's own eventsourcing aggregate at domain.order:Order, and bulkorder
        # reading an event store 0.1.0 wrote under that same topic, in one process.
        from eventsourcing.application import Application
        from domain.order import Order as ServiceOrder
        from bulkorder.domain.application import Orders
        from bulkorder.domain.order import Order

        app = Application(env={{"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": ":memory:"}})
        placed = ServiceOrder("sku-1")
        app.save(placed)
        theirs = app.repository.get(placed.id)
        ours = Orders(env={{"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": {str(old_store)!r}}})
        print(json.dumps({{
            "owners": [domain.OWNER, storage.OWNER, workflows.OWNER],
            "service_files": [m.__file__ for m in (domain, storage, workflows)],
            "bulkorder_file": bulkorder.__file__,
            "modules": len(modules),
            "psycopg_loaded": "psycopg" in sys.modules,
            "theirs": [type(theirs).__module__, theirs.sku],
            "ours": [type(ours.get_order("o-fulfilled")) is Order, ours.summary("o-fulfilled").status],
        }}))
    ''')
    done = run([installed.python, "-c", code], env=installed.env(tmp_path), cwd=service)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["owners"] == ["service"] * 3
    assert all(path.startswith(str(service)) for path in seen["service_files"])
    assert "site-packages" in seen["bulkorder_file"]
    assert seen["modules"] > 60
    assert seen["psycopg_loaded"] is False
    assert seen["theirs"] == ["domain.order", "sku-1"]  # rewrite-imports: keep
    assert seen["ours"] == [True, "fulfilled"]


def test_the_demo_runs_on_sqlite_and_the_folder_store_beside_the_service(
    installed: Installed, service: Path, tmp_path: Path
) -> None:
    env = installed.env(tmp_path)
    # ``python -m`` puts the service folder first on sys.path, as a service's own entry point would.
    done = run(
        [installed.python, "-m", "bulkorder.cli", "demo", "--items", "2000", "--batch-size", "500", "--json"],
        env=env, cwd=service, timeout=300,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert (figures["status"], figures["items"], figures["fulfilled_items"], figures["batches"]) == ("fulfilled", 2000, 2000, 4)
    home = Path(env["BULKORDER_HOME"])
    assert (home / "events.sqlite").is_file()
    assert sum(1 for p in (home / "blobs").rglob("*") if p.is_file()) >= 4
