"""The suite fails when any test is skipped (tests/conftest.py), naming each one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = '''
import pytest

def test_runs():
    assert 1 + 1 == 2

def test_cannot_run_here():
    pytest.skip("needs something this machine lacks")

@pytest.mark.xfail(reason="known", strict=True)
def test_known_failure():
    assert False
'''


def run_probe(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    # Inside tests/ so that tests/conftest.py applies; removed afterwards.
    probe = ROOT / "tests" / f"test_probe_{tmp_path.name}.py"
    probe.write_text(body)
    try:
        return subprocess.run(
            [sys.executable, "-m", "pytest", str(probe), "-p", "no:cacheprovider", "-q"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
    finally:
        probe.unlink()


def test_a_skipped_test_fails_the_session_and_is_named(tmp_path: Path) -> None:
    result = run_probe(tmp_path, PROBE)
    assert result.returncode == 1, result.stdout
    assert "skipped tests fail the run" in result.stdout
    assert "test_cannot_run_here: needs something this machine lacks" in result.stdout
    assert "1 passed, 1 skipped, 1 xfailed" in result.stdout


def test_a_session_without_skips_passes(tmp_path: Path) -> None:
    result = run_probe(tmp_path, PROBE.split("def test_cannot_run_here")[0])
    assert result.returncode == 0, result.stdout
    assert "skipped tests fail the run" not in result.stdout
