"""The arguments the commands share: how items are decoded when nothing is said."""

from __future__ import annotations

import argparse
import os

import pytest

from bulkorder.commands.arguments import add_processes_argument, decode_in_processes


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
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    assert decode_in_processes(None, "parquet") is True
    assert decode_in_processes(None, "ndjson") is False and decode_in_processes(None, "csv") is False
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})  # one core: a second process only costs
    assert decode_in_processes(None, "parquet") is False
