"""Garbage collection at scale: one sweep over N content-addressed batch blobs.

Builds N tiny blobs (``batches/xx/<sha-256>``, 64 bytes each: listing cost is per blob,
not per byte) straight into a folder store (and, with ``--s3 N``, into a moto S3 server
through the store's own ``put``), plus an event store whose orders reference ``--referenced``
of them. Then, in a fresh child process (so its peak RSS is the sweep's alone), a dry-run
sweep (list, leases, roots, decide: blobs/s scanned), then a real one with no grace, which
deletes the rest. Prints both rates and the child's peak RSS, at N and N/10, so memory
flatness is seen side by side.

    .venv/bin/python -m tests.benchmarks.bench_gc [--blobs 1000000] [--referenced 10000] [--s3 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.measure import machine

BLOB_BYTES = 64


def _blob(index: int) -> tuple[str, bytes]:
    data = index.to_bytes(8, "big") * (BLOB_BYTES // 8)
    sha = hashlib.sha256(data).hexdigest()
    return f"batches/{sha[:2]}/{sha}", data


def build_folder(root: Path, count: int) -> None:
    """Files written directly (no fsync, no temporary file): building the corpus is not
    what is measured."""
    made: set[str] = set()
    for index in range(count):
        key, data = _blob(index)
        directory = root / key.rsplit("/", 1)[0]
        if str(directory) not in made:
            directory.mkdir(parents=True, exist_ok=True)
            made.add(str(directory))
        (root / key).write_bytes(data)


def build_s3(store: object, count: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def put(index: int) -> None:
        key, data = _blob(index)
        store.put(key, data)  # type: ignore[attr-defined]

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(count)))


def build_events(db: Path, referenced: int) -> None:
    from bulkorder.domain.application import Orders
    from bulkorder.domain.refs import BatchRef
    from bulkorder.domain.summary import OrderChange

    orders = Orders(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(db)})
    per_order = 500
    for start in range(0, referenced, per_order):
        refs = []
        for index in range(start, min(start + per_order, referenced)):
            key, data = _blob(index)
            sha = key.rsplit("/", 1)[1]
            refs.append(BatchRef(batch_id=f"b-{index}", key=key, sha256=sha, size=len(data), item_count=1,
                                 quantity=1, totals={"EUR": 1}))
        orders.record(OrderChange(f"bench-{start}", "c-1", create=True, batches=refs, cancel_reason="bench"))
    orders.close()


def sweep_child(kind: str, location: str, db: str) -> None:
    """In its own process: one sweep, then its figures as JSON on stdout."""
    from bulkorder.data_lifecycle import SweepOptions, collect_garbage
    from bulkorder.domain.application import Orders
    from bulkorder.storage.folder_store import FolderBlobStore
    from bulkorder.storage.s3_store import S3BlobStore

    if kind == "folder":
        blobs: object = FolderBlobStore(location, fsync=False)
    else:
        endpoint, bucket = location.split("|")
        blobs = S3BlobStore(bucket, endpoint_url=endpoint, region_name="us-east-1")
    orders = Orders(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": db})
    figures: dict[str, object] = {}
    for dry_run in (True, False):  # scan and decide only, then the real sweep
        started = time.monotonic()
        report = asyncio.run(
            collect_garbage(blobs, orders, None, grace=0.0, options=SweepOptions(dry_run=dry_run))  # type: ignore[arg-type]
        )
        figures["dry_seconds" if dry_run else "seconds"] = time.monotonic() - started
        figures["report"] = report.to_json()
    figures["peak_rss_mib"] = _peak_rss_kib() / 1024
    print(json.dumps(figures))


def _peak_rss_kib() -> int:
    """This process's peak RSS since its exec (VmHWM; ``ru_maxrss`` would count the
    parent's pages the child had before its exec, moto's objects included)."""
    with open("/proc/self/status") as status:
        for text in status:
            if text.startswith("VmHWM:"):
                return int(text.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_sweep(kind: str, location: str, db: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.bench_gc", "--child", kind, location, str(db)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def line(kind: str, blobs: int, figures: dict[str, object]) -> str:
    report = figures["report"]
    assert isinstance(report, dict)
    dry = float(figures["dry_seconds"])  # type: ignore[arg-type]
    seconds = float(figures["seconds"])  # type: ignore[arg-type]
    return (
        f"| {kind} | {blobs:,} | {dry:.1f} | {blobs / dry:,.0f} | {report['deleted']['blobs']:,} | {seconds:.1f} | "
        f"{blobs / seconds:,.0f} | {float(figures['peak_rss_mib']):.0f} |"  # type: ignore[arg-type]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blobs", type=int, default=1_000_000)
    parser.add_argument("--referenced", type=int, default=10_000)
    parser.add_argument("--s3", type=int, default=20_000, help="blobs in the moto S3 run (0: none)")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "LOCATION", "DB"))
    args = parser.parse_args()
    if args.child:
        sweep_child(*args.child)
        return
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.2f}")
    print("| store | blobs | dry run s | blobs/s scanned (dry run) | deleted | sweep s | blobs/s (sweep with deletes) | peak RSS MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="bench-gc-") as work:
        for count in (args.blobs // 10, args.blobs):
            root = Path(work) / f"folder-{count}"
            db = Path(work) / f"events-{count}.sqlite"
            build_folder(root, count)
            build_events(db, min(args.referenced, count))
            print(line("folder", count, run_sweep("folder", str(root), db)), flush=True)
        if args.s3:
            from moto.server import ThreadedMotoServer

            from bulkorder.storage.s3_store import S3BlobStore
            from tests.fixtures.s3 import S3_TEST_ENV, free_port

            for name, value in S3_TEST_ENV.items():
                os.environ.setdefault(name, value)
            port = free_port()
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            server.start()
            try:
                endpoint = f"http://127.0.0.1:{port}"
                store = S3BlobStore("bench-gc", endpoint_url=endpoint, region_name="us-east-1", create_bucket=True)
                build_s3(store, args.s3)
                db = Path(work) / "events-s3.sqlite"
                build_events(db, min(args.referenced, args.s3))
                print(line("moto S3", args.s3, run_sweep("s3", f"{endpoint}|bench-gc", db)), flush=True)
            finally:
                server.stop()


if __name__ == "__main__":
    main()
