"""Analysts: rebuild an order, stream its items, export the event log.

    python -m tests.benchmarks.bench_analysts [--scale 0.1] [--skip-postgres]

1. Rebuild of an order with 10,000 batches at its latest version, with snapshots (every
   100 events) and without, on SQLite and PostgreSQL (target: <= 50 ms with snapshots).
2. A 1,000,000-item order streamed to an NDJSON file, each way run in a fresh process so
   its peak RSS is its own: bulkorder (msgspec, threads; and worker processes) beside
   BatchStore.read + stdlib json and BatchStore.read + msgspec (target: >= 400,000 items/s,
   peak RSS flat: the same at a quarter of the items).
3. Export of 100,000 events to NDJSON: events/s, beside the same documents through
   stdlib json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from bulkorder.analysis import Analyst
from bulkorder.domain.refs import BatchRef
from bulkorder.domain.sample_items import generate_items
from bulkorder.domain.summary import OrderChange
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.config import EventStoreConfig
from bulkorder.analysis.event_log import EventLog
from bulkorder.storage.folder_store import FolderBlobStore


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    ram = next((int(line.split()[1]) // 1024 // 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return f"{os.cpu_count()} cores ({cpu}), {ram} GiB RAM, Python {platform.python_version()}, load {os.getloadavg()[0]:.2f}"


def fake_ref(order_id: str, index: int) -> BatchRef:
    sha = uuid.uuid5(uuid.NAMESPACE_OID, f"{order_id}/{index}").hex * 2
    return BatchRef(f"{order_id}-{index:06d}", f"batches/{sha[:2]}/{sha}", sha, 50_000, 1_000, 12_000, {"EUR": 5_000_000})


def record_batches(config: EventStoreConfig, order_id: str, batches: int, per_call: int = 100) -> None:
    orders = config.open_orders()
    try:
        orders.record(OrderChange(order_id=order_id, customer_id="bench", create=True))
        for first in range(0, batches, per_call):
            refs = [fake_ref(order_id, i) for i in range(first, min(first + per_call, batches))]
            orders.record(OrderChange(order_id=order_id, batches=refs))
    finally:
        orders.close()


def timed(function: Callable[[], Any], repeat: int) -> float:
    """Median seconds of ``repeat`` calls, after one warm-up call."""
    function()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


# ---- 1. rebuild ---------------------------------------------------------------------------


def bench_rebuild(config: EventStoreConfig, label: str, batches: int) -> list[str]:
    order_id = f"rebuild-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    record_batches(config, order_id, batches)
    setup = time.perf_counter() - started
    with_snapshots = config.open_orders()
    without = EventStoreConfig.from_mapping({**config.env(), "IS_SNAPSHOTTING_ENABLED": "n"}).open_orders()
    try:
        fast = timed(lambda: with_snapshots.get_order(order_id), 11)
        slow = timed(lambda: without.get_order(order_id), 3)
        assert with_snapshots.get_order(order_id).batch_count == without.get_order(order_id).batch_count == batches
    finally:
        with_snapshots.close()
        without.close()
    return [
        f"| {label} | {batches:,} batches ({batches + 1:,} events) | {fast * 1000:.1f} ms | {slow * 1000:.1f} ms "
        f"| {slow / fast:.0f}x | (setup {setup:.0f} s) |"
    ]


# ---- 2. streaming ---------------------------------------------------------------------------


def write_items(
    blobs: Path, config: EventStoreConfig, order_id: str, items: int, batch_size: int, store: BatchStore | None = None
) -> None:
    store = store or BatchStore(FolderBlobStore(blobs, fsync=False))
    orders = config.open_orders()
    try:
        orders.record(OrderChange(order_id=order_id, customer_id="bench", create=True))
        refs = []
        for start in range(0, items, batch_size):
            refs.append(store.write(
                list(generate_items(min(batch_size, items - start), start=start)), f"{order_id}-{start}", order_id=order_id
            ))
            if len(refs) == 50:
                orders.record(OrderChange(order_id=order_id, batches=refs))
                refs = []
        if refs:
            orders.record(OrderChange(order_id=order_id, batches=refs))
    finally:
        orders.close()


def stream_child(args: argparse.Namespace) -> None:
    """Runs in a fresh process: stream the order one way, print figures as JSON."""
    config = EventStoreConfig.sqlite(args.db)
    batches = BatchStore(FolderBlobStore(args.blobs, fsync=False))
    started = time.perf_counter()
    cpu_started = time.process_time()
    with Analyst(config, batches) as analyst, open(args.out, "wb") as out:
        if args.way in ("bulkorder-threads", "bulkorder-processes"):
            result = analyst.stream_items(args.order, out, workers=2, processes=args.way == "bulkorder-processes")
            count = result.items
        else:
            import msgspec

            encode_lines = msgspec.json.Encoder().encode_lines
            count = 0
            for ref in analyst.batch_refs(args.order):
                items = batches.read(ref)
                if args.way == "read+json":
                    out.write("".join(json.dumps(item) + "\n" for item in items).encode())
                else:
                    out.write(encode_lines(items))
                count += len(items)
    seconds = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "items": count,
                "seconds": seconds,
                "cpu_seconds": time.process_time() - cpu_started + children.ru_utime + children.ru_stime,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "children_peak_rss_mib": children.ru_maxrss / 1024,
                "bytes": os.path.getsize(args.out),
            }
        )
    )


def run_child(way: str, db: Path, blobs: Path, order: str, out: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "tests.benchmarks.bench_analysts", "--stream-child", way, "--db", str(db),
               "--blobs", str(blobs), "--order", order, "--out", str(out)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    out.unlink()
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def bench_streaming(work: Path, items: int) -> list[str]:
    config = EventStoreConfig.sqlite(work / "stream.sqlite")
    started = time.perf_counter()
    write_items(work / "blobs", config, "stream-big", items, 2_000)
    write_items(work / "blobs", config, "stream-quarter", items // 4, 2_000)
    print(f"  wrote {items:,} + {items // 4:,} items in {time.perf_counter() - started:.0f} s", flush=True)
    rows = []
    baseline = None
    for way in ("read+json", "read+msgspec", "bulkorder-threads", "bulkorder-processes"):
        big = run_child(way, work / "stream.sqlite", work / "blobs", "stream-big", work / "out.ndjson")
        quarter = run_child(way, work / "stream.sqlite", work / "blobs", "stream-quarter", work / "out.ndjson")
        rate = big["items"] / big["seconds"]
        baseline = baseline or rate
        rss = max(big["peak_rss_mib"], big["children_peak_rss_mib"])
        rss_quarter = max(quarter["peak_rss_mib"], quarter["children_peak_rss_mib"])
        rows.append(
            f"| {way} | {rate:,.0f} | {big['items'] / big['cpu_seconds']:,.0f} | {rate / baseline:.1f}x "
            f"| {rss:,.0f} MiB | {rss_quarter:,.0f} MiB | {big['bytes'] / 2**20:,.0f} MiB |"
        )
        print("  " + rows[-1], flush=True)
    return rows


# ---- 3. export ------------------------------------------------------------------------------


def bench_export(work: Path, events: int) -> list[str]:
    config = EventStoreConfig.sqlite(work / "export.sqlite")
    per_order = 1_000
    started = time.perf_counter()
    for number in range(max(1, events // (per_order + 1))):
        record_batches(config, f"export-{number:05d}", per_order)
    print(f"  recorded events in {time.perf_counter() - started:.0f} s", flush=True)
    with Analyst(config, BatchStore(FolderBlobStore(work / "blobs", fsync=False))) as analyst:
        total = analyst.orders.recorder.max_notification_id()
        with open(work / "export.ndjson", "wb") as out:
            started = time.perf_counter()
            result = analyst.export(out)
            ours = time.perf_counter() - started
        log = EventLog(analyst.orders)
        started = time.perf_counter()
        position, lines = 0, io.StringIO()
        while page := log.page(position):
            lines.write("".join(json.dumps(document) + "\n" for document in page))
            position = page[-1]["position"]
        stdlib = time.perf_counter() - started
    assert result.events == total
    return [
        f"| bulkorder export (msgspec) | {total:,} | {total / ours:,.0f} | {ours:.2f} s |",
        f"| same documents, stdlib json | {total:,} | {total / stdlib:,.0f} | {stdlib:.2f} s |",
    ]


def postgres_config() -> tuple[EventStoreConfig, Callable[[], None]] | None:
    try:
        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(host="127.0.0.1", port=5432, dbname="test", user="postgres", autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except Exception as exc:  # noqa: BLE001 - no server: say so and go on
        print(f"  (no PostgreSQL at 127.0.0.1:5432: {exc})")
        return None

    def drop() -> None:
        with psycopg.connect(host="127.0.0.1", port=5432, dbname="test", user="postgres", autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    env = {"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": "test", "POSTGRES_HOST": "127.0.0.1",
           "POSTGRES_PORT": "5432", "POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": "", "POSTGRES_SCHEMA": schema}
    return EventStoreConfig.from_mapping(env), drop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full sizes (for a quick look)")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--stream-child")
    parser.add_argument("--db")
    parser.add_argument("--blobs")
    parser.add_argument("--order")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.stream_child:
        args.way = args.stream_child
        stream_child(args)
        return
    print(f"machine: {machine()}")
    batches, items, events = (max(200, int(n * args.scale)) for n in (10_000, 1_000_000, 100_000))
    with tempfile.TemporaryDirectory(prefix="bench-analysts-") as folder:
        work = Path(folder)
        print("\n1. Rebuild at the latest version (median)\n")
        print("| store | order | with snapshots | without | ratio | |\n| --- | --- | --- | --- | --- | --- |")
        print(*bench_rebuild(EventStoreConfig.sqlite(work / "rebuild.sqlite"), "SQLite", batches), sep="\n", flush=True)
        pg = None if args.skip_postgres else postgres_config()
        if pg is not None:
            try:
                print(*bench_rebuild(pg[0], "PostgreSQL", batches), sep="\n", flush=True)
            finally:
                pg[1]()
        print(f"\n2. {items:,} items streamed to NDJSON (a fresh process each; quarter = {items // 4:,} items)\n")
        print("| way | items/s | items per CPU-second | vs stdlib json | peak RSS | peak RSS, quarter | file |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        bench_streaming(work, items)
        print(f"\n3. Export of ~{events:,} events to NDJSON\n")
        print("| way | events | events/s | time |\n| --- | --- | --- | --- |")
        print(*bench_export(work, events), sep="\n")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
