"""Arrow and Parquet for analysts: typed columns, exact items, readable by DuckDB and polars
as they are, the export's folder resumable by position, and a clear message without pyarrow."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import polars
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bulkorder.analysis import ParquetExportResult, item_schema
from bulkorder.analysis.arrow_items import DecodingProcesses
from bulkorder.analysis.event_log import EventLog
from bulkorder.analysis.parquet_files import export_parquet
from bulkorder.cli import main
from bulkorder.commands import arguments
from bulkorder.domain.summary import OrderChange
from bulkorder.settings import Settings
from bulkorder.storage.batches import BatchStore
from tests.cli.helpers import cli_env
from tests.fixtures.analysts import AnalystStore, items_digest, write_order


def _item_dicts(table: pa.Table) -> list[dict[str, object]]:
    """Rows back in the stored item shape, to compare with what was written."""
    return [
        {
            "sku": row["sku"],
            "quantity": row["quantity"],
            "unit_price": {"amount": row["unit_price_amount"], "currency": row["unit_price_currency"]},
            "name": row["name"],
            "attributes": json.loads(row["attributes"]),
        }
        for row in table.to_pylist()
    ]


def _stored(items: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{**item, "attributes": item.get("attributes") or {}} for item in items]


def started_decoders(monkeypatch: pytest.MonkeyPatch) -> list[DecodingProcesses]:
    """Every set of decoding processes started from now on (each still really started)."""
    started: list[DecodingProcesses] = []
    real_init = DecodingProcesses.__init__

    def counted(self: DecodingProcesses, *args: object, **kwargs: object) -> None:
        started.append(self)
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(DecodingProcesses, "__init__", counted)
    return started


def test_item_batches_are_typed_and_exact(analyst_store: AnalystStore) -> None:
    written = write_order(analyst_store, "arrow-1", [300, 200, 500])
    with analyst_store.analyst() as analyst:
        batches = list(analyst.item_batches("arrow-1"))
        in_processes = list(analyst.item_batches("arrow-1", processes=True))
        table = analyst.item_table("arrow-1", version=3)  # Created, then two batches
    assert [batch.to_pylist() for batch in in_processes] == [batch.to_pylist() for batch in batches]
    assert [batch.num_rows for batch in batches] == [300, 200, 500]
    assert batches[0].schema == item_schema()
    assert table.schema.field("quantity").type == pa.int64()
    assert table.schema.field("unit_price_amount").type == pa.int64()
    assert table.num_rows == 500
    assert items_digest(_item_dicts(table)) == items_digest(_stored(written.items[:500]))
    # One call to a polars frame (pandas: table.to_pandas(), with pandas installed).
    assert polars.from_arrow(table).height == 500


def test_event_batches(analyst_store: AnalystStore) -> None:
    write_order(analyst_store, "arrow-2", [10, 20])
    analyst_store.orders.record(OrderChange(order_id="arrow-2", submit=True))
    with analyst_store.analyst() as analyst:
        table = pa.Table.from_batches(list(analyst.event_batches(page_size=2)))
    rows = table.to_pylist()
    assert [row["type"] for row in rows] == ["Created", "ItemsAdded", "ItemsAdded", "Submitted"]
    assert [row["items"] for row in rows] == [0, 10, 20, 0]
    assert rows[1]["batch_id"] == "arrow-2-00000" and rows[0]["order_id"] == "cust-1/arrow-2"
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert json.loads(rows[3]["data"])["type"] == "Submitted"


def test_items_parquet_in_row_groups_read_by_duckdb_and_polars(analyst_store: AnalystStore, tmp_path: Path) -> None:
    written = write_order(analyst_store, "pq-1", [700] * 6)
    target = tmp_path / "items.parquet"
    with analyst_store.analyst() as analyst:
        from bulkorder.analysis import parquet_files

        real = parquet_files.ROW_GROUP_ROWS
        parquet_files.ROW_GROUP_ROWS = 1_000  # small row groups: streaming, not one table
        try:
            result = analyst.write_items_parquet("pq-1", target)
        finally:
            parquet_files.ROW_GROUP_ROWS = real
    assert result.rows == 4_200
    # Three row groups of 1,400 rows (two 700-item batches each), written while the next
    # was gathered: every item exactly as written, in order.
    assert pq.ParquetFile(target).metadata.num_row_groups == result.row_groups == 3
    assert items_digest(_item_dicts(pq.read_table(target))) == items_digest(_stored(written.items))
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".partial")], "no partial file left behind"

    expected_quantity = sum(item["quantity"] for item in written.items)
    by_sku: dict[str, int] = {}
    for item in written.items:
        by_sku[item["sku"]] = by_sku.get(item["sku"], 0) + item["quantity"]
    top = max(by_sku, key=lambda sku: (by_sku[sku], sku))

    con = duckdb.connect()
    assert con.execute(f"select count(*), sum(quantity) from '{target}'").fetchone() == (4_200, expected_quantity)
    sku, quantity = con.execute(
        f"select sku, sum(quantity) q from '{target}' group by sku order by q desc, sku desc limit 1"
    ).fetchone()
    assert (sku, quantity) == (top, by_sku[top])
    first = written.items[0]
    color = con.execute(f"select attributes->>'$.color' from '{target}' limit 1").fetchone()[0]
    assert color == (first.get("attributes") or {}).get("color")

    frame = polars.read_parquet(target)
    assert frame.height == 4_200 and frame["quantity"].sum() == expected_quantity
    assert frame.schema["unit_price_amount"] == polars.Int64


def test_export_folder_resumes_by_position_and_duckdb_reads_it_whole(analyst_store: AnalystStore, tmp_path: Path) -> None:
    first = write_order(analyst_store, "exp-1", [100, 150])
    out = tmp_path / "export"
    with analyst_store.analyst() as analyst:
        one = analyst.export_parquet(out)
        second = write_order(analyst_store, "exp-2", [50], customer="cust-2")
        two = analyst.export_parquet(out, since=one.last_position)
        none = analyst.export_parquet(out, since=two.last_position)
    assert (one.events, one.items, two.events, two.items, none.events) == (3, 250, 2, 50, 0)
    assert sorted(p.name for p in (out / "items").iterdir()) == sorted([one.items_file.name, two.items_file.name])

    con = duckdb.connect()
    rows = con.execute(
        f"select order_id, count(*), sum(quantity) from read_parquet('{out}/items/*.parquet') group by order_id order by 1"
    ).fetchall()
    assert rows == [
        ("cust-1/exp-1", 250, sum(i["quantity"] for i in first.items)),
        ("cust-2/exp-2", 50, sum(i["quantity"] for i in second.items)),
    ]
    events = con.execute(f"select count(*), max(position) from read_parquet('{out}/events/*.parquet')").fetchone()
    assert events == (5, two.last_position)
    frame = polars.read_parquet(f"{out}/items/*.parquet")
    assert frame.height == 300 and set(frame["batch_id"].unique()) == {"exp-1-00000", "exp-1-00001", "exp-2-00000"}


def test_export_in_worker_processes_writes_the_same_rows(analyst_store: AnalystStore, tmp_path: Path) -> None:
    write_order(analyst_store, "exp-proc-1", [100, 1, 150])
    write_order(analyst_store, "exp-proc-2", [70], customer="cust-2")
    with analyst_store.analyst() as analyst:
        threads = analyst.export_parquet(tmp_path / "threads")
        processes = analyst.export_parquet(tmp_path / "processes", processes=True)
    assert (processes.events, processes.items) == (threads.events, threads.items) == (6, 321)
    for kind in ("events", "items"):
        assert pq.read_table(tmp_path / "processes" / kind).equals(pq.read_table(tmp_path / "threads" / kind))


def test_an_export_of_many_pages_forks_its_decoding_processes_once(
    analyst_store: AnalystStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forked once, before the writers' threads start: not once per page of the log."""
    write_order(analyst_store, "exp-pages-1", [30, 20, 10])
    write_order(analyst_store, "exp-pages-2", [40, 5], customer="cust-2")
    started = started_decoders(monkeypatch)
    log = EventLog(analyst_store.orders, page_size=2)  # several pages, each with ItemsAdded
    threads = export_parquet(log, analyst_store.batches, tmp_path / "threads")
    assert started == []
    processes = export_parquet(log, analyst_store.batches, tmp_path / "processes", processes=True)
    assert len(started) == 1 and started[0].pool is None  # one set, closed at the end
    assert (processes.events, processes.items) == (threads.events, threads.items)
    assert processes.items >= 105 and processes.events > 2 * log.page_size
    for kind in ("events", "items"):
        assert pq.read_table(tmp_path / "processes" / kind).equals(pq.read_table(tmp_path / "threads" / kind))


def test_following_the_log_adds_a_whole_part_per_poll_that_finds_events(analyst_store: AnalystStore, tmp_path: Path) -> None:
    first = write_order(analyst_store, "follow-1", [120, 80])
    out = tmp_path / "lake"
    stop = threading.Event()
    parts: queue.Queue[ParquetExportResult] = queue.Queue()
    with analyst_store.analyst() as analyst:
        with ThreadPoolExecutor(1) as pool:
            following = pool.submit(analyst.export_parquet, out, follow=True, stop=stop, interval=0.01, on_part=parts.put)
            try:
                one = parts.get(timeout=60)  # the log as it was: one part
                # Each part is in place, whole, when on_part hears of it: readable at once.
                assert pq.read_table(one.items_file).num_rows == 200
                second = write_order(analyst_store, "follow-2", [50], customer="cust-2")
                # What was added since, in as many parts as polls found it (its Created
                # and its ItemsAdded are two writes: one poll may see only the first).
                later = [parts.get(timeout=60)]
                while sum(part.events for part in later) < 2:
                    later.append(parts.get(timeout=60))
            finally:
                stop.set()
            total = following.result(timeout=60)
    assert (one.events, one.items, sum(p.events for p in later), sum(p.items for p in later)) == (3, 200, 2, 50)
    every = [one, *later]
    assert all(after.first_position == before.last_position + 1 for before, after in zip(every, every[1:]))
    assert (total.events, total.items, total.parts, total.last_position) == (5, 250, len(every), every[-1].last_position)
    assert sorted(p.name for p in (out / "items").iterdir()) == sorted(part.items_file.name for part in every)
    assert not [p for p in out.rglob(".*")]  # no partial file left behind
    frame = polars.read_parquet(f"{out}/items/*.parquet")
    assert items_digest(_item_dicts(frame.drop("position", "order_id", "batch_id", "recorded_at").to_arrow())) == items_digest(
        _stored(first.items + second.items)
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith(("PERSISTENCE_MODULE", "SQLITE_", "POSTGRES_", "ORDERS_", "BULKORDER_", "TEMPORAL_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BULKORDER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_the_commands_write_parquet(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings.from_env()
    orders = settings.event_store.open_orders()
    store = AnalystStore(settings.event_store, BatchStore(settings.blob_store.open()), orders)
    try:
        written = write_order(store, "cmd-1", [40, 60])
    finally:
        orders.close()
    items = tmp_path / "items.parquet"
    assert main(["replay", "cust-1/cmd-1", "--version", "2", "--items-out", str(items)]) == 0
    assert items_digest(_item_dicts(pq.read_table(items))) == items_digest(_stored(written.items[:40]))
    assert main(["export", "--format", "parquet", "--out", str(tmp_path / "dir")]) == 0
    out = capsys.readouterr().out
    assert "exported 3 events and 100 items" in out and "--since 3" in out
    for way in ("--processes", "--no-processes"):  # the default is processes where there are several cores
        assert main(["export", "--format", "parquet", way, "--out", str(tmp_path / way)]) == 0
        assert "exported 3 events and 100 items" in capsys.readouterr().out
        assert pq.read_table(tmp_path / way / "items").equals(pq.read_table(tmp_path / "dir" / "items"))
    threaded = tmp_path / "threaded.parquet"
    assert main(["replay", "cust-1/cmd-1", "--version", "2", "--items-out", str(threaded), "--no-processes"]) == 0
    assert pq.read_table(threaded).equals(pq.read_table(items))
    assert main(["export", "--format", "parquet"]) == 2  # no folder
    assert main(["export", "--format", "parquet", "--out", str(tmp_path / "dir"), "--append"]) == 2
    # Following up to a position: the parts up to it, then the command ends by itself.
    assert main(["export", "--format", "parquet", "--out", str(tmp_path / "followed"), "--follow", "--until", "3"]) == 0
    out = capsys.readouterr().out
    assert "exported 3 events and 100 items to" in out and "in 1 part; last position 3" in out
    assert [p.name for p in (tmp_path / "followed" / "items").iterdir()] == ["part-000000000001-000000000003.parquet"]


def test_the_commands_decode_parquet_in_processes_unless_told_not_to(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings.from_env()
    orders = settings.event_store.open_orders()
    store = AnalystStore(settings.event_store, BatchStore(settings.blob_store.open()), orders)
    try:
        write_order(store, "procs-1", [40, 60])
    finally:
        orders.close()
    started = started_decoders(monkeypatch)
    monkeypatch.setattr(arguments, "usable_cores", lambda: 2)
    runs = [
        (["replay", "cust-1/procs-1", "--items-out", str(tmp_path / "a.parquet")], 1),
        (["replay", "cust-1/procs-1", "--items-out", str(tmp_path / "b.parquet"), "--no-processes"], 0),
        (["replay", "cust-1/procs-1", "--items-out", str(tmp_path / "c.ndjson")], 0),  # NDJSON: threads
        (["export", "--format", "parquet", "--out", str(tmp_path / "d")], 1),
        (["export", "--format", "parquet", "--out", str(tmp_path / "e"), "--no-processes"], 0),
    ]
    for command, forks in runs:
        before = len(started)
        assert main(command) == 0, command
        assert len(started) - before == forks, command
    monkeypatch.setattr(arguments, "usable_cores", lambda: 1)
    assert main(["replay", "cust-1/procs-1", "--items-out", str(tmp_path / "f.parquet")]) == 0
    assert len(started) == 2  # one core: threads
    assert pq.read_table(tmp_path / "a.parquet").equals(pq.read_table(tmp_path / "b.parquet"))
    capsys.readouterr()


def test_without_pyarrow_the_message_names_the_extra(home: Path, tmp_path: Path) -> None:
    settings = Settings.from_env()
    orders = settings.event_store.open_orders()
    try:
        write_order(AnalystStore(settings.event_store, BatchStore(settings.blob_store.open()), orders), "noarrow", [5])
    finally:
        orders.close()
    hidden = tmp_path / "hide"
    hidden.mkdir()
    # A pyarrow that cannot be imported, first on the path: as if it were not installed.
    (hidden / "pyarrow.py").write_text("raise ModuleNotFoundError(\"No module named 'pyarrow'\", name='pyarrow')\n")
    env = cli_env(home, {"PYTHONPATH": os.pathsep.join([str(hidden), os.getcwd()])})
    for argv in (
        ["replay", "cust-1/noarrow", "--items-out", str(tmp_path / "x.parquet")],
        ["export", "--format", "parquet", "--out", str(tmp_path / "x")],
    ):
        done = subprocess.run([sys.executable, "-m", "bulkorder.cli", *argv], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, done.stderr
        assert "pip install 'bulkorder[analysis]'" in done.stderr and "pyarrow" in done.stderr
        assert not (tmp_path / "x.parquet").exists()


def test_an_unreadable_batch_stops_the_export_and_leaves_nothing(analyst_store: AnalystStore, tmp_path: Path) -> None:
    from bulkorder.storage.errors import BlobNotFoundError

    written = write_order(analyst_store, "gone-1", [20, 20])
    analyst_store.batches.blobs.delete(written.refs[1].key)
    out = tmp_path / "export"
    with analyst_store.analyst() as analyst, pytest.raises(BlobNotFoundError, match=written.refs[1].key):
        analyst.export_parquet(out)
    assert [p for p in out.rglob("*") if p.is_file()] == [], "no part, no partial file"
    with analyst_store.analyst() as analyst:
        events_only = analyst.export_parquet(out, items=False)
    assert events_only.events == 3 and events_only.items_file is None
