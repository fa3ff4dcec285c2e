"""Many orders at once: several importers, several workers, PostgreSQL, S3 (moto).

    python -m tests.benchmarks.bench_fleet [--orders 200] [--items-per-order 25000]
        [--importers 4] [--workers 2] [--s3-latency-ms 0] [--workdir DIR]
        [--quiet-probe-seconds 6] [--probe-every 1] [--importer-nice 19] [--temporal-db-dir /dev/shm]
        [--profile-importers DIR] [--timed-workers]

One Temporal dev server, one moto S3 server (own process, behind the loopback latency
proxy), the event store on the PostgreSQL at 127.0.0.1:5432 (a fresh schema), ``--workers``
``bulkorder worker`` processes on one task queue. First one order alone (the single-order
rate, same stack), then the fleet: ``--importers`` processes (tests/benchmarks/fleet_importer.py,
the public ``import_file``, one pool of encoding processes each) share the orders, each
importing its orders one after another.
While the fleet runs, this process probes the latency a service sees (tests/benchmarks/fleet_probe.py): a ``create``
(Update-With-Start) of a new empty order and an ``add_batches`` update of one small batch
to an open order, one after the other, then ``--probe-every`` seconds' pause (1 s by
default; until 2026-12-02 it was 0.2 s, and the probes then created about as many orders
as the fleet itself: 0.68-0.81x of the single order at 0.2 s, 0.79x at 0.5 s, 0.84-0.87x
at 1 s, docs/benchmarks.md). At the end every order is checked in the event store:
exactly its items, every batch recorded.

As deployed by default: the importers run at nice 19 (bulk work below the services whose
latency is probed) and the Temporal dev server keeps its SQLite file in /dev/shm (a cluster's
persistence is not on the importers' disk); ``--importer-nice 0 --temporal-db-dir WORKDIR``
puts everything on one priority and one disk, and the table's title says which.

Before the fleet, the same probe runs alone for ``--quiet-probe-seconds`` (the stack's own
latency). Each probe create is also taken apart: its new order's data key, timed on a name
of its own (the S3 requests its client makes first), then its workflow's history, phase by
phase on the server's clock (tests/benchmarks/create_phases.py).

Reported: aggregate items/s and orders/s (first import started to last order recorded),
the ratio to the single-order rate, create and add_batches p50/p99, peak RSS of the
workers, and CPU seconds per million items of every process (importers with their
encoding processes, workers, Temporal, moto) beside the floor (tests/benchmarks/floor.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import boto3

from bulkorder import Settings, open_runtime
from bulkorder.embedded import EmbeddedTemporal
from tests.benchmarks.bench_codec import moto_server
from tests.benchmarks.create_phases import event_counts
from tests.benchmarks.fleet_probe import probe
from tests.benchmarks.fleet_stack import DEPLOYED_IMPORTER_NICE, deployed_temporal_dir, stack_env
from tests.benchmarks.floor import measure_floor, servers_bound
from tests.benchmarks.measure import PeakRss, _cpu_seconds, machine, stop_process, wait_for_line
from tests.fixtures.latency_proxy import latency_proxy_process
from tests.fixtures.postgres import CONFIGURED as POSTGRES
from tests.importer.files import write_ndjson

BIN = Path(sys.executable).parent


def order_files(workdir: Path, orders: int, per_order: int) -> list[Path]:
    """One file per order, distinct items (numbered on), so no two orders share a batch."""
    paths = []
    for index in range(orders):
        path = workdir / f"fleet-{per_order}-{index:04d}.ndjson"
        if not path.exists():
            write_ndjson(path.with_suffix(".tmp"), per_order, start=index * per_order)
            path.with_suffix(".tmp").rename(path)
        paths.append(path)
    return paths


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


async def recorded_items(env: dict[str, str], order_ids: list[str], deadline: float) -> dict[str, int]:
    """Each order's item count in the event store, waiting (until ``deadline``) for all."""
    async with open_runtime(Settings.from_env(env)) as runtime:
        counts: dict[str, int] = {}
        while True:
            for order_id in order_ids:
                orders = runtime.orders
                counts[order_id] = orders.summary(order_id).item_count if orders.exists(order_id) else 0
            if all(counts.values()) or time.monotonic() > deadline:
                return counts
            await asyncio.sleep(0.5)


def run_importers(
    env: dict[str, str],
    jobs: list[list[tuple[str, Path]]],
    batch_size: int,
    profile: Path | None = None,
    nice: int = 0,
) -> tuple[float, float, list[dict[str, float]]]:
    """Start one importer per job list, wait for all; (wall seconds, CPU seconds incl.
    encoders, each order's line: its items and its own import seconds)."""
    started = time.perf_counter()
    processes = []
    for index, part in enumerate(jobs):
        profiled = ["-m", "cProfile", "-o", str(profile / f"importer-{index}.prof")] if profile else []
        args = [sys.executable, *profiled, "-m", "tests.benchmarks.fleet_importer", f"--batch-size={batch_size}", "--workers=1"]
        args += [f"{order_id}={path}" for order_id, path in part]
        lowered = (lambda: os.nice(nice)) if nice else None  # the encoders inherit it
        processes.append(
            subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=lowered)
        )
    cpu = 0.0
    orders: list[dict[str, float]] = []
    for process in processes:
        assert process.stdout is not None and process.stderr is not None
        stdout, stderr = process.stdout.read(), process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)  # the importer's CPU and its encoders'
        process.returncode = os.waitstatus_to_exitcode(status)
        cpu += usage.ru_utime + usage.ru_stime
        if process.returncode != 0 or not stdout.rstrip().endswith("done"):
            raise RuntimeError(f"an importer failed ({process.returncode}): {stderr.strip()[-2000:]}")
        orders += [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return time.perf_counter() - started, cpu, orders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--items-per-order", type=int, default=25_000)
    parser.add_argument("--importers", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--single-items", type=int, default=1_000_000, help="items of the single order measured first")
    parser.add_argument("--s3-latency-ms", type=float, default=0.0)
    parser.add_argument("--workdir", type=Path, help="keep the generated files here between runs")
    parser.add_argument("--quiet-probe-seconds", type=float, default=6.0, help="probe this long before the fleet starts")
    parser.add_argument(
        "--probe-every", type=float, default=1.0,
        help="seconds between two probes (a create and an add_batches); 0.2 as before 2026-12-02",
    )
    parser.add_argument("--profile-importers", type=Path, help="write each fleet importer's cProfile here")
    parser.add_argument(
        "--timed-workers", action="store_true",
        help="run the workers as tests/benchmarks/timed_worker.py: where a create's workflow task goes inside them",
    )
    parser.add_argument(
        "--importer-nice", type=int, default=DEPLOYED_IMPORTER_NICE,
        help="run the fleet's importers (bulk work) at this nice value, as deployed where they share a machine "
        f"with the services whose latency is probed (default {DEPLOYED_IMPORTER_NICE}; 0: the services' priority)",
    )
    parser.add_argument(
        "--temporal-db-dir", type=Path, default=deployed_temporal_dir(),
        help="keep the Temporal dev server's SQLite file here; default: /dev/shm where there is one (a Temporal "
        "cluster's persistence is never on the importers' disk); the workdir: on this machine's disk",
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    paths = order_files(workdir, args.orders, args.items_per_order)
    (workdir / "single").mkdir(exist_ok=True)
    [single_path] = order_files(workdir / "single", 1, args.single_items)
    print(f"input: {args.orders} files of {args.items_per_order:,} items, one of {args.single_items:,} "
          f"({time.perf_counter() - started:.0f} s)")
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at start (the machine may be shared)")

    schema = f"fleet_{uuid.uuid4().hex[:8]}"
    with POSTGRES.connect() as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    server = EmbeddedTemporal((args.temporal_db_dir or workdir) / f"temporal-{uuid.uuid4().hex[:6]}.sqlite")
    address = asyncio.run(server.start())
    workers: list[subprocess.Popen[str]] = []
    try:
        with ExitStack() as stack:
            endpoint = stack.enter_context(moto_server())
            moto_pid = _moto_pid(endpoint)
            proxied = stack.enter_context(latency_proxy_process(endpoint, args.s3_latency_ms))
            bucket = f"fleet-{uuid.uuid4().hex[:8]}"
            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
            env = stack_env(address, workdir, schema, bucket, proxied, queue="fleet")
            timings = [workdir / f"timings-{schema}-{index}.json" for index in range(args.workers)]
            for index in range(args.workers):
                command = [sys.executable, "-m", "tests.benchmarks.timed_worker"] if args.timed_workers else [str(BIN / "bulkorder"), "worker"]
                worker_env = dict(env, BULKORDER_BENCH_TIMINGS=str(timings[index])) if args.timed_workers else env
                worker = subprocess.Popen(command, env=worker_env, stdout=subprocess.PIPE, text=True)
                wait_for_line(worker, "worker polling")
                workers.append(worker)
            rss = [PeakRss(worker.pid) for worker in workers]

            single_id = f"fleet/single-{schema}"
            _, _, [single] = run_importers(env, [[(single_id, single_path)]], args.batch_size)
            single_rate = single["items"] / single["seconds"]
            print(f"single order: {single_rate:,.0f} items/s ({single['seconds']:.1f} s, the import itself)", flush=True)

            order_ids = [f"fleet/fleet-{index:04d}-{schema}" for index in range(args.orders)]
            jobs = [list(zip(order_ids, paths))[part :: args.importers] for part in range(args.importers)]
            async def quiet_probe(seconds: float) -> tuple[list[float], dict[str, list[float]]]:
                """The same probe with no fleet running: the stack's own latency."""
                stop = asyncio.Event()
                probing = asyncio.create_task(probe(env, stop, args.probe_every))
                await asyncio.sleep(seconds)
                stop.set()
                creates, _, phases = await probing
                return creates, phases

            quiet_creates, quiet_phases = asyncio.run(quiet_probe(args.quiet_probe_seconds))
            print(f"create with no fleet running: p50 / p99 {percentile(quiet_creates, .5) * 1000:.0f} / "
                  f"{percentile(quiet_creates, .99) * 1000:.0f} ms, {len(quiet_creates)} probes "
                  f"(load average {os.getloadavg()[0]:.1f})", flush=True)
            for name, values in quiet_phases.items():
                if values:
                    print(f"    {name}: p50 {percentile(values, .5) * 1000:.0f} ms", flush=True)
            if args.timed_workers:
                for worker in workers:
                    worker.send_signal(signal.SIGUSR1)  # time the fleet only
            cpu_before = {name: _cpu_seconds(pid) for name, pid in _server_pids(server, moto_pid, workers).items()}
            stop = asyncio.Event()

            async def fleet() -> tuple[float, float, list[float], list[float], dict[str, list[float]], dict[str, int], float]:
                probing = asyncio.create_task(probe(env, stop, args.probe_every))
                began = time.perf_counter()
                seconds, importer_cpu, _ = await asyncio.to_thread(
                    run_importers, env, jobs, args.batch_size, args.profile_importers, args.importer_nice
                )
                counts = await recorded_items(env, order_ids, time.monotonic() + 600)
                elapsed = time.perf_counter() - began
                async with open_runtime(Settings.from_env(env)) as runtime:
                    order_client = runtime.order_client()
                    events = await event_counts(order_client.client, await order_client.resolve(order_ids[0]))
                print(f"events of one fleet order's workflow: {events}")
                stop.set()
                creates, adds, phases = await probing
                return seconds, importer_cpu, creates, adds, phases, counts, elapsed

            seconds, importer_cpu, creates, adds, phases, counts, elapsed = asyncio.run(fleet())
            cpu_after = {name: _cpu_seconds(pid) for name, pid in _server_pids(server, moto_pid, workers).items()}
            worker_peaks = [peak.stop()[0] / 1024 for peak in rss]
    finally:
        for worker in workers:
            stop_process(worker)
        asyncio.run(server.stop())
        # The dev server's state is of this run only (and in memory, with --temporal-db-dir /dev/shm).
        for leftover in [*server.db_file.parent.glob(f"{server.db_file.name}*"), server.log_file]:
            leftover.unlink(missing_ok=True)
        with POSTGRES.connect() as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    total = args.orders * args.items_per_order
    wrong = {order_id: count for order_id, count in counts.items() if count != args.items_per_order}
    rate = total / elapsed
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print()
    niced = f", importers at nice {args.importer_nice}" if args.importer_nice else ", importers at the services' priority"
    niced += f", Temporal's SQLite in {args.temporal_db_dir}" if args.temporal_db_dir else ", Temporal's SQLite on the workdir's disk"
    print(f"| fleet ({args.orders} orders × {args.items_per_order:,} items, {args.importers} importers, "
          f"{args.workers} workers, PostgreSQL, moto S3 +{args.s3_latency_ms:g} ms{niced}, "
          f"a probe every {args.probe_every:g} s) | value |")
    print("| --- | ---: |")
    print(f"| aggregate items/s (first import started → last order recorded) | {rate:,.0f} |")
    print(f"| orders/s | {args.orders / elapsed:.2f} |")
    print(f"| single order alone ({args.single_items:,} items), same stack | {single_rate:,.0f} items/s |")
    print(f"| aggregate / single | {rate / single_rate:.2f}× (target ≥ 0.80×) |")
    print(f"| create (Update-With-Start) p50 / p99, {len(creates)} probes | {percentile(creates, .5) * 1000:.0f} / "
          f"{percentile(creates, .99) * 1000:.0f} ms (target p99 ≤ 250 ms) |")
    print(f"| add_batches update p50 / p99, {len(adds)} probes | {percentile(adds, .5) * 1000:.0f} / "
          f"{percentile(adds, .99) * 1000:.0f} ms |")
    print(f"| worker peak RSS | {', '.join(f'{peak:.0f}' for peak in worker_peaks)} MB |")
    print(f"| orders recorded exactly | {args.orders - len(wrong)} of {args.orders} |")
    print()
    print("| where a create's time goes (server's clock) | p50 ms | p99 ms |")
    print("| --- | ---: | ---: |")
    for name, values in phases.items():
        if values:
            print(f"| {name} | {percentile(values, .5) * 1000:.0f} | {percentile(values, .99) * 1000:.0f} |")
    print()
    cpu = {"importers (with encoders)": importer_cpu}
    cpu.update({name: cpu_after[name] - cpu_before[name] for name in cpu_after})
    floors = measure_floor(single_path, args.batch_size, runs=3)  # the large file: warm, representative
    floor = floors.median
    print("| process | CPU-s per million items |")
    print("| --- | ---: |")
    for name, seconds_used in cpu.items():
        print(f"| {name} | {seconds_used * 1e6 / total:.1f} |")
    whole = sum(cpu.values()) * 1e6 / total
    print(f"| all | {whole:.1f} |")
    print(f"| floor (parse+validate+pack+compress+hash, one core), median of {len(floors.runs)} | {floor:.1f} "
          f"({floors.low:.1f}-{floors.high:.1f}) |")
    print(f"end to end / floor: {whole / floor:.2f}× (goal ≤ 1.3×)")
    print(servers_bound({name: used * 1e6 / total for name, used in cpu.items() if name != "importers (with encoders)"}, floor))
    if args.timed_workers:
        print_timings(timings)
    if wrong:
        raise SystemExit(f"{len(wrong)} orders not recorded exactly: {dict(list(wrong.items())[:5])}")


def print_timings(paths: list[Path]) -> None:
    """The timed workers' sections (tests/benchmarks/timed_worker.py) while the fleet ran."""
    for index, path in enumerate(paths):
        if not path.exists():
            continue
        print(f"worker {index + 1}, inside (ms; blocked = wall - CPU - run queue: for code without I/O, the GIL):")
        for name, row in sorted(json.loads(path.read_text()).items()):
            print(f"    {name}: n={row['count']}, wall p50 {row['wall_p50_ms']:.1f} p99 {row['wall_p99_ms']:.1f} "
                  f"mean {row['wall_mean_ms']:.1f}, cpu {row['cpu_mean_ms']:.1f}, run queue {row['runqueue_mean_ms']:.1f}, "
                  f"blocked {row['blocked_mean_ms']:.1f}")


def _moto_pid(endpoint: str) -> int:
    port = endpoint.rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"moto.server" in cmdline and port.encode() in cmdline:
                return int(entry.name)
    raise RuntimeError(f"no moto server process for {endpoint}")


def _server_pids(server: EmbeddedTemporal, moto_pid: int, workers: list[subprocess.Popen[str]]) -> dict[str, int]:
    pids = {"Temporal server": server.pid or 0, "moto S3": moto_pid}
    pids.update({f"worker {index + 1}": worker.pid for index, worker in enumerate(workers)})
    return pids


if __name__ == "__main__":
    main()
