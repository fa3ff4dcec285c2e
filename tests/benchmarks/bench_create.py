"""What one ``create`` (Update-With-Start) costs, in CPU, per process: the load-independent side
of its latency.

    python -m tests.benchmarks.bench_create [--creates 100] [--burners 0] [--timed]

The fleet's stack (tests/benchmarks/bench_fleet.py): one Temporal dev server, moto S3 in its
own process behind the loopback latency proxy, the event store on the PostgreSQL at
127.0.0.1:5432 (a fresh schema), one ``bulkorder worker``. This process creates
``--creates`` new empty orders one after another, as ``OrderClient.create`` does, and reports
their latency, and the CPU time each process spent per create (from /proc: the worker, the
Temporal server, moto, the proxy, this client). Under load, a create's latency is mostly
these CPU needs waiting for a core: less CPU per create is less to wait for.

``--burners N`` runs N busy processes (pure Python loops) beside it, as the fleet's
importers keep the cores busy; ``--timed`` runs the worker as tests/benchmarks/timed_worker.py
(where the create's workflow task goes inside the worker, thread by thread).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import boto3

from bulkorder import Settings, open_runtime
from bulkorder.domain.identity import OrderName
from bulkorder.embedded import EmbeddedTemporal
from tests.benchmarks.bench_codec import moto_server
from tests.benchmarks.bench_fleet import _moto_pid, percentile
from tests.benchmarks.fleet_stack import stack_env
from tests.benchmarks.create_phases import create_phases
from tests.benchmarks.measure import _cpu_seconds, stop_process, wait_for_line
from tests.fixtures.latency_proxy import latency_proxy_process
from tests.fixtures.postgres import CONFIGURED as POSTGRES

BIN = Path(sys.executable).parent


def _burn() -> None:
    while True:
        sum(range(10_000))


def _pid_of(*markers: bytes) -> int:
    """The process whose command line holds every one of ``markers`` (0: none)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if all(marker in cmdline for marker in markers):
                return int(entry.name)
    return 0


def postgres_backends(schema: str) -> list[int]:
    """PostgreSQL's backend processes serving this schema's connections (their last query
    names it): their CPU is the event store's work."""
    with POSTGRES.connect() as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE query LIKE %s", (f"%{schema}%",)).fetchall()
    return [row[0] for row in rows]


async def creates(env: dict[str, str], count: int, warmup: int, pids: dict[str, int]) -> tuple[list[float], dict[str, float], dict[str, list[float]]]:
    """Latencies (s) of ``count`` creates after ``warmup``; CPU-s per create of each process."""
    async with open_runtime(Settings.from_env(env)) as runtime:
        client = runtime.order_client()
        for _ in range(warmup):
            await client.create(OrderName("bench", f"warm-{uuid.uuid4().hex[:10]}"))
        backends = postgres_backends(env["POSTGRES_SCHEMA"])
        before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        before["PostgreSQL (its backends for this schema)"] = sum(_cpu_seconds(pid) for pid in backends)
        before["client (this process)"] = time.process_time()
        latencies, workflow_ids = [], []
        for _ in range(count):
            name = OrderName("bench", f"create-{uuid.uuid4().hex[:10]}")
            started = time.perf_counter()
            await client.create(name)
            latencies.append(time.perf_counter() - started)
            workflow_ids.append(client.identity.workflow_id(name))
        after = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        after["PostgreSQL (its backends for this schema)"] = sum(_cpu_seconds(pid) for pid in backends)
        after["client (this process)"] = time.process_time()
        phases = await create_phases(client.client, workflow_ids)
    return latencies, {name: (after[name] - before[name]) / count for name in after}, phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--creates", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--burners", type=int, default=0, help="busy processes beside the stack")
    parser.add_argument("--timed", action="store_true", help="the worker timed from inside (timed_worker.py)")
    parser.add_argument("--s3-latency-ms", type=float, default=0.0)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-create-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"load average {os.getloadavg()[0]:.2f} at start")
    schema = f"create_{uuid.uuid4().hex[:8]}"
    with POSTGRES.connect() as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    server = EmbeddedTemporal(workdir / f"temporal-{uuid.uuid4().hex[:6]}.sqlite")
    address = asyncio.run(server.start())
    burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(args.burners)]
    timings = workdir / f"timings-{schema}.json"
    try:
        with ExitStack() as stack:
            endpoint = stack.enter_context(moto_server())
            moto_pid = _moto_pid(endpoint)
            proxied = stack.enter_context(latency_proxy_process(endpoint, args.s3_latency_ms))
            bucket = f"create-{uuid.uuid4().hex[:8]}"
            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
            env = stack_env(address, workdir, schema, bucket, proxied, queue="create")
            command = [sys.executable, "-m", "tests.benchmarks.timed_worker"] if args.timed else [str(BIN / "bulkorder"), "worker"]
            worker = subprocess.Popen(command, env=dict(env, BULKORDER_BENCH_TIMINGS=str(timings)), stdout=subprocess.PIPE, text=True)
            try:
                wait_for_line(worker, "worker polling")
                for burner in burners:
                    burner.start()
                proxy = _pid_of(b"tests.fixtures.latency_proxy", endpoint.partition("://")[2].encode())
                pids = {"worker": worker.pid, "Temporal server": server.pid or 0, "moto S3": moto_pid, "S3 latency proxy": proxy}
                latencies, cpu, phases = asyncio.run(creates(env, args.creates, args.warmup, pids))
            finally:
                for burner in burners:
                    burner.kill()
                stop_process(worker)
    finally:
        asyncio.run(server.stop())
        with POSTGRES.connect() as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    print(f"load average {os.getloadavg()[0]:.2f} at the end; {args.burners} burners")
    print(f"create p50 / p99, {len(latencies)} creates: {percentile(latencies, .5) * 1000:.1f} / "
          f"{percentile(latencies, .99) * 1000:.1f} ms")
    print("| process | CPU ms per create |")
    print("| --- | ---: |")
    for name, seconds in cpu.items():
        print(f"| {name} | {seconds * 1000:.1f} |")
    print(f"| all measured | {sum(cpu.values()) * 1000:.1f} |")
    for name, values in phases.items():
        if values:
            print(f"    {name}: p50 {percentile(values, .5) * 1000:.1f} ms, p99 {percentile(values, .99) * 1000:.1f} ms")
    if args.timed and timings.exists():
        print("worker, inside (ms; blocked = wall - CPU - run queue):")
        for name, row in sorted(json.loads(timings.read_text()).items()):
            print(f"    {name}: n={row['count']}, wall p50 {row['wall_p50_ms']:.1f} mean {row['wall_mean_ms']:.1f}, "
                  f"cpu {row['cpu_mean_ms']:.1f}, run queue {row['runqueue_mean_ms']:.1f}, blocked {row['blocked_mean_ms']:.1f}")


if __name__ == "__main__":
    main()
