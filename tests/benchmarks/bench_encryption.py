"""The cost of encryption at rest: import and streaming items/s, encryption on against off.

    python -m tests.benchmarks.bench_encryption                 # 300,000 items, 2 rounds
    python -m tests.benchmarks.bench_encryption --items 1000000 --rounds 3

Each round runs, on the same generated NDJSON file and the same embedded Temporal server,
with ``BULKORDER_ENCRYPTION=off`` then ``on`` (the default): ``bulkorder import`` (a
process) into an order served by ``bulkorder worker`` (another process), from the file to
every event recorded; then the order's items streamed back from the blob store by an
analyst (``Analyst.stream_items``, NDJSON, to a discarding sink), in this process. The
best round of each setting is reported (the machine may be shared), and on / off.
Target: encryption on keeps at least 90% of the unencrypted throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import BinaryIO, cast

from bulkorder.analysis import Analyst
from bulkorder.embedded import EmbeddedTemporal
from bulkorder.settings import Settings
from tests.benchmarks.measure import machine, stop_process, wait_for_line
from tests.importer.files import write_ndjson

BIN = Path(sys.executable).parent


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


def one_round(
    address: str, path: Path, count: int, workdir: Path, encryption: str, batch_size: int
) -> tuple[float, float, float]:
    """(import items/s, streaming items/s, import CPU-seconds per million items: importer
    with its encoding processes, and worker) with ``BULKORDER_ENCRYPTION=encryption``."""
    home = workdir / f"enc-{encryption}-{uuid.uuid4().hex[:6]}"
    env = dict(
        os.environ,
        TEMPORAL_ADDRESS=address,
        BULKORDER_HOME=str(home),
        BULKORDER_BLOB_DIR=str(home / "blobs"),
        BULKORDER_TASK_QUEUE=f"bench-{uuid.uuid4().hex[:8]}",
        BULKORDER_ENCRYPTION=encryption,
        PERSISTENCE_MODULE="eventsourcing.sqlite",
        SQLITE_DBNAME=str(home / "events.sqlite"),
        SQLITE_LOCK_TIMEOUT="30",
    )
    worker = subprocess.Popen([str(BIN / "bulkorder"), "worker"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        wait_for_line(worker, "worker polling")
        order_id = f"bench-{uuid.uuid4().hex[:8]}"
        command = [str(BIN / "bulkorder"), "import", order_id, str(path), "--create", "--customer", "bench"]
        command += ["--batch-size", str(batch_size), "--json", "--quiet"]
        started = time.perf_counter()
        importer = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert importer.stdout is not None and importer.stderr is not None
        stdout, stderr = importer.stdout.read(), importer.stderr.read()  # small: --json --quiet
        # wait4: the CPU time of the importer and of its encoding processes (it reaps them).
        _, status, usage = os.wait4(importer.pid, 0)
        import_seconds = time.perf_counter() - started
        importer.returncode = os.waitstatus_to_exitcode(status)
        if importer.returncode != 0:
            raise RuntimeError(f"bulkorder import failed ({importer.returncode}): {stderr.strip()}")
        summary = json.loads(stdout.strip().splitlines()[-1])
        assert summary["items"] == count, summary
        importer_cpu = usage.ru_utime + usage.ru_stime
    finally:
        _, worker_cpu = stop_process(worker)
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith(("BULKORDER_", "PERSISTENCE_", "SQLITE_"))})
    with Analyst.from_settings(settings) as analyst:
        started = time.perf_counter()
        streamed = analyst.stream_items(order_id, cast(BinaryIO, _Discard()))
        stream_seconds = time.perf_counter() - started
    assert streamed.items == count
    shutil.rmtree(home, ignore_errors=True)
    return count / import_seconds, count / stream_seconds, (importer_cpu + worker_cpu) * 1e6 / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=300_000)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", type=Path, help="keep the generated file here between runs")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-encryption-"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"items-{args.items}.ndjson"
    if not path.exists():
        write_ndjson(path.with_suffix(".tmp"), args.items)
        path.with_suffix(".tmp").rename(path)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at start (the machine may be shared)")
    print(f"input: {path} ({path.stat().st_size / 1e6:,.0f} MB NDJSON, {args.items:,} items)")
    temporal_db = workdir / f"temporal-{uuid.uuid4().hex[:6]}.sqlite"
    server = EmbeddedTemporal(temporal_db)
    address = asyncio.run(server.start())
    best: dict[str, tuple[float, float, float]] = {"off": (0.0, 0.0, 1e9), "on": (0.0, 0.0, 1e9)}
    try:
        for index in range(args.rounds):
            for setting in ("off", "on"):
                imported, streamed, cpu = one_round(address, path, args.items, workdir, setting, args.batch_size)
                print(
                    f"round {index + 1}, encryption {setting}: import {imported:,.0f} items/s ({cpu:.1f} CPU-s per "
                    f"million items), streaming {streamed:,.0f} items/s",
                    flush=True,
                )
                old = best[setting]
                best[setting] = (max(old[0], imported), max(old[1], streamed), min(old[2], cpu))
    finally:
        asyncio.run(server.stop())
        for leftover in workdir.glob(f"{temporal_db.stem}*"):
            leftover.unlink()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print()
    print(f"| {args.items:,} items, best of {args.rounds} | import items/s | import CPU-s per million items | streaming items/s |")
    print("| --- | ---: | ---: | ---: |")
    for setting in ("off", "on"):
        print(f"| encryption {setting} | {best[setting][0]:,.0f} | {best[setting][2]:.1f} | {best[setting][1]:,.0f} |")
    ratio_import = best["on"][0] / best["off"][0]
    ratio_stream = best["on"][1] / best["off"][1]
    ratio_cpu = best["off"][2] / best["on"][2]
    print(f"| on / off | {ratio_import:.0%} | {ratio_cpu:.0%} (throughput the CPU allows) | {ratio_stream:.0%} |")
    print(f"target ≥ 90% of unencrypted: import {'yes' if ratio_import >= 0.9 else 'NO'}, streaming {'yes' if ratio_stream >= 0.9 else 'NO'}")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
