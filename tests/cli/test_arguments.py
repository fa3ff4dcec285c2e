"""The arguments the commands share: how items are decoded when nothing is said."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from bulkorder.commands import arguments
from bulkorder.commands.arguments import add_processes_argument, decode_in_processes, usable_cores


def test_processes_is_a_three_way_switch() -> None:
    parser = argparse.ArgumentParser()
    add_processes_argument(parser, "decode in worker processes")
    assert parser.parse_args([]).processes is None
    assert parser.parse_args(["--processes"]).processes is True
    assert parser.parse_args(["--no-processes"]).processes is False


def test_said_wins_and_unsaid_means_processes_for_parquet_on_several_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    for fmt in ("parquet", "ndjson", "csv"):
        assert decode_in_processes(True, fmt) is True
        assert decode_in_processes(False, fmt) is False
    monkeypatch.setattr(arguments, "usable_cores", lambda: 2)
    assert decode_in_processes(None, "parquet") is True
    assert decode_in_processes(None, "ndjson") is False and decode_in_processes(None, "csv") is False
    monkeypatch.setattr(arguments, "usable_cores", lambda: 1)  # one core: a second process only costs
    assert decode_in_processes(None, "parquet") is False


def test_usable_cores_are_the_affinity_bounded_by_the_cgroup_quota(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(8)))
    cpu_max = tmp_path / "cpu.max"
    assert usable_cores(cpu_max) == 8  # no cgroup file: the affinity
    for text, cores in (("max 100000\n", 8), ("100000 100000\n", 1), ("250000 100000\n", 2), ("50000 100000\n", 1),
                        ("2000000 100000\n", 8), ("garbage\n", 8)):
        cpu_max.write_text(text)
        assert usable_cores(cpu_max) == cores, text
