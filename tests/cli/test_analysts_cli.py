"""The analysts' commands as a user runs them: output, files, exit codes, and a followed
export stopped by a real signal, then resumed from the position it printed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bulkorder.cli import main
from bulkorder.settings import Settings
from bulkorder.domain.summary import OrderChange
from bulkorder.storage.batches import BatchStore
from tests.fixtures.analysts import AnalystStore, items_digest, write_order


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith(("PERSISTENCE_MODULE", "SQLITE_", "POSTGRES_", "ORDERS_", "BULKORDER_", "TEMPORAL_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BULKORDER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def store(home: Path) -> AnalystStore:
    settings = Settings.from_env()
    orders = settings.open_orders()
    yield AnalystStore(settings.event_store, BatchStore(settings.blob_store.open()), orders)
    orders.close()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_events_replay_and_items_file(store: AnalystStore, capsys, tmp_path: Path) -> None:
    written = write_order(store, "cli-1", [40, 25, 35])
    store.orders.record(OrderChange(order_id="cli-1", submit=True))

    code, out, _ = _run(capsys, "events", "cust-1/cli-1", "--json")
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [e["type"] for e in events] == ["Created", "ItemsAdded", "ItemsAdded", "ItemsAdded", "Submitted"]
    assert [e["item_count"] for e in events] == [0, 40, 65, 100, 100]

    code, out, _ = _run(capsys, "events", "cust-1/cli-1")
    assert code == 0 and "ItemsAdded" in out and "cli-1-00001" in out

    items_file = tmp_path / "out" / "items.ndjson"
    items_file.parent.mkdir()
    code, out, err = _run(capsys, "replay", "cust-1/cli-1", "--version", "3", "--items-out", str(items_file), "--json")
    state = json.loads(out.splitlines()[-1])
    assert code == 0 and (state["version"], state["item_count"], state["status"]) == (3, 65, "open")
    assert "items of cust-1/cli-1 v3" in err  # progress goes to stderr
    streamed = [json.loads(line) for line in items_file.read_text().splitlines()]
    assert items_digest(streamed) == items_digest(written.items[:65])
    assert os.listdir(items_file.parent) == ["items.ndjson"]  # no partial file left behind

    code, out, _ = _run(capsys, "replay", "cust-1/cli-1", "--at", events[-1]["timestamp"])
    assert code == 0 and "submitted" in out and "100" in out


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["replay", "cust-1/nobody"], 1, "order 'cust-1/nobody' does not exist"),
        (["events", "cust-1/nobody"], 1, "order 'cust-1/nobody' does not exist"),
        (["replay", "cust-1/cli-2", "--version", "9"], 2, "order 'cust-1/cli-2' has versions 1 to 2: there is no version 9"),
        (["replay", "cust-1/cli-2", "--at", "2000-01-01T00:00:00Z"], 2, "order 'cust-1/cli-2' did not exist at 2000-01-01T00:00:00+00:00"),
        (["replay", "cust-1/cli-2", "--at", "last tuesday"], 2, "'last tuesday' is not an ISO 8601 date or date-time"),
        (["replay", "cust-1/bad id!"], 2, "order reference 'bad id!' is invalid"),
    ],
)
def test_errors_exit_with_a_clear_message(store: AnalystStore, capsys, argv: list[str], code: int, message: str) -> None:
    write_order(store, "cli-2", [3])
    exit_code, out, err = _run(capsys, *argv)
    assert exit_code == code
    assert message in err and err.startswith(f"bulkorder {argv[0]}: error: ")


def test_project_and_report(store: AnalystStore, capsys) -> None:
    write_order(store, "cli-3", [10, 20])
    code, out, _ = _run(capsys, "project")
    assert code == 0 and "OrderSummaries: processed 3 events, now at position 3" in out
    code, out, _ = _run(capsys, "report", "--json", "--top", "0")
    report = json.loads(out)
    assert report["position"] == report["log_position"] == 3
    assert [(o["order_id"], o["item_count"], o["batch_count"]) for o in report["orders"]] == [("cust-1/cli-3", 30, 2)]
    assert sum(s["lines"] for s in report["skus"]) == 30
    code, out, _ = _run(capsys, "project", "--rebuild")
    assert code == 0 and "OrderTimeIndex: processed 3 events" in out


def _wait_for_lines(path: Path, count: int, timeout: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return [json.loads(line) for line in lines]
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {count} lines within {timeout} s")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_followed_export_stops_on_a_signal_and_resumes_where_it_said(store: AnalystStore, home: Path, tmp_path: Path, sig) -> None:
    write_order(store, "follow-1", [5, 5])
    out_file = tmp_path / "log.ndjson"
    follower = subprocess.Popen(
        [sys.executable, "-m", "bulkorder.cli", "export", "--follow", "--interval", "0.1", "--out", str(out_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )
    try:
        assert [e["position"] for e in _wait_for_lines(out_file, 3)] == [1, 2, 3]
        store.orders.record(OrderChange(order_id="follow-1", submit=True))  # a new event while following
        assert _wait_for_lines(out_file, 4)[-1]["type"] == "Submitted"
        follower.send_signal(sig)
        stdout, stderr = follower.communicate(timeout=30)
    finally:
        follower.kill()
    assert follower.returncode == 0, stderr
    assert "last position 4 (resume with --since 4)" in stdout

    write_order(store, "follow-2", [7])  # written while nobody was exporting
    subprocess.run(
        [sys.executable, "-m", "bulkorder.cli", "export", "--since", "4", "--out", str(out_file), "--append"],
        check=True, capture_output=True, env=dict(os.environ), timeout=60,
    )
    exported = _wait_for_lines(out_file, 6)
    assert [e["position"] for e in exported] == [1, 2, 3, 4, 5, 6]
    assert [e["order_id"] for e in exported] == ["cust-1/follow-1"] * 4 + ["cust-1/follow-2"] * 2
