"""Analysts' formats: a 1,000,000-item order to Parquet beside NDJSON.

    python -m tests.benchmarks.bench_parquet [--items 1000000]

Each way runs in a fresh process, so its peak RSS is its own: bulkorder's NDJSON stream
(``replay --items-out FILE.ndjson``) beside ``replay --items-out FILE.parquet`` (threads,
and worker processes) and ``export --format parquet --out DIR`` (the order's events and
items, with the export's provenance columns; threads, and ``--processes``). Items/s, items per CPU-second, peak RSS at
the full order and at a quarter of it (flat RSS: the same), file sizes beside each other. Target: >= 400,000
items/s to Parquet, RSS flat. Needs the extra 'analysis' (pyarrow).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bulkorder.analysis import Analyst
from bulkorder.settings import Settings
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.config import EventStoreConfig
from bulkorder.storage.folder_store import FolderBlobStore
from tests.benchmarks.bench_analysts import machine, write_items

WAYS = ("ndjson-threads", "parquet-threads", "parquet-processes", "parquet-export", "parquet-export-processes")


def blob_store(blobs: Path, home: Path | None) -> BatchStore:
    """The folder store, encrypted as deployed (a local keyring in ``home``) unless ``home``
    is None (``--plaintext``)."""
    if home is None:
        return BatchStore(FolderBlobStore(blobs, fsync=False))
    settings = Settings.from_env({"BULKORDER_HOME": str(home)})
    return BatchStore(FolderBlobStore(blobs, fsync=False), protection=settings.blob_protection())


def child(args: argparse.Namespace) -> None:
    config = EventStoreConfig.sqlite(args.db)
    batches = blob_store(Path(args.blobs), Path(args.home) if args.home else None)
    started = time.perf_counter()
    cpu_started = time.process_time()
    with Analyst(config, batches) as analyst:
        if args.way == "ndjson-threads":
            with open(args.out, "wb") as out:
                count = analyst.stream_items(args.order, out, workers=2).items
        elif args.way.startswith("parquet-export"):  # export --format parquet --out DIR: the log, with provenance columns
            # The log holds both orders, "big" first: each run exports one order's positions.
            big_last = int(args.big_last)
            since, until = (0, big_last) if args.order == "big" else (big_last, None)
            count = analyst.export_parquet(args.out, since=since, until=until, processes=args.way.endswith("processes")).items
        else:
            count = analyst.write_items_parquet(args.order, args.out, workers=2, processes=args.way == "parquet-processes").rows
    seconds = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({
        "items": count,
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu_started + children.ru_utime + children.ru_stime,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children_peak_rss_mib": children.ru_maxrss / 1024,
        "bytes": _size(Path(args.out)),
    }))


def _size(out: Path) -> int:
    return sum(p.stat().st_size for p in out.rglob("*.parquet")) if out.is_dir() else out.stat().st_size


def run_child(way: str, work: Path, order: str, big_last: int, home: Path | None) -> dict[str, Any]:
    out = work / ("out.ndjson" if way.startswith("ndjson") else "out-dir" if way.startswith("parquet-export") else "out.parquet")
    command = [sys.executable, "-m", "tests.benchmarks.bench_parquet", "--child", way, "--db", str(work / "db.sqlite"),
               "--blobs", str(work / "blobs"), "--order", order, "--out", str(out), "--big-last", str(big_last)]
    if home is not None:
        command += ["--home", str(home)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    shutil.rmtree(out) if out.is_dir() else out.unlink()
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--child", choices=WAYS)
    parser.add_argument("--db")
    parser.add_argument("--blobs")
    parser.add_argument("--order")
    parser.add_argument("--out")
    parser.add_argument("--big-last", default="0", help="the log position of the big order's last event")
    parser.add_argument("--home", help="(child) the home of the local keyring the blobs are sealed with")
    parser.add_argument("--plaintext", action="store_true", help="blobs not encrypted (the default encrypts, as deployed)")
    args = parser.parse_args()
    if args.child:
        args.way = args.child
        child(args)
        return
    print(f"machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-parquet-") as folder:
        work = Path(folder)
        config = EventStoreConfig.sqlite(work / "db.sqlite")
        home = None if args.plaintext else work / "home"
        store = blob_store(work / "blobs", home)
        print(f"blobs: folder store, {'plaintext' if home is None else 'encrypted (AES-256-GCM, local keyring), as deployed'}")
        started = time.perf_counter()
        write_items(work / "blobs", config, "big", args.items, 2_000, store)
        orders = config.open_orders()
        try:
            big_last = int(orders.recorder.max_notification_id() or 0)
        finally:
            orders.close()
        write_items(work / "blobs", config, "quarter", args.items // 4, 2_000, store)
        print(f"wrote {args.items:,} + {args.items // 4:,} items in {time.perf_counter() - started:.0f} s", flush=True)
        print("| way | items/s | items per CPU-second | peak RSS | peak RSS, quarter | file |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for way in WAYS:
            big = run_child(way, work, "big", big_last, home)
            quarter = run_child(way, work, "quarter", big_last, home)
            rss = max(big["peak_rss_mib"], big["children_peak_rss_mib"])
            rss_quarter = max(quarter["peak_rss_mib"], quarter["children_peak_rss_mib"])
            print(
                f"| {way} | {big['items'] / big['seconds']:,.0f} | {big['items'] / big['cpu_seconds']:,.0f} "
                f"| {rss:,.0f} MiB | {rss_quarter:,.0f} MiB | {big['bytes'] / 2**20:,.0f} MiB |",
                flush=True,
            )
        print(f"load at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
