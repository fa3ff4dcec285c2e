"""bulkorder import against the alternatives, side by side on the same generated items.

    python -m tests.benchmarks.bench_import                      # 1,000,000 items, all three
    python -m tests.benchmarks.bench_import --s3-latency-ms 0,20  # one table per added latency
    python -m tests.benchmarks.bench_import --items 10000000 --bulkorder-only   # make bench-10m

Like for like: bulkorder and ExternalStorage write to the same moto S3 server (its own
process), through the same loopback latency proxy (tests/fixtures/latency_proxy.py) when
latency is added (at 0 ms every system talks to moto directly: the proxy would only add
its own CPU; ``--proxy-at-0`` keeps it, to count S3 requests), with the same Temporal server; ``--folder`` adds bulkorder on the local folder store, labelled
apart (not a comparison with the others).

1. ``bulkorder import`` (a separate process) into an order served by ``bulkorder worker``
   (another process): items/s from the file to every event recorded, peak RSS of both,
   and the history of the order workflow's largest run.
2. A plain entity workflow receiving the items inline by signal, 2,000 per signal, until
   Temporal terminates it.
3. The same entity with temporalio's ``ExternalStorage`` and the contrib S3 driver against
   the same moto S3 server, 2,000 items per signal.

Both baselines read the same NDJSON file and validate each item with the same domain
rules (``bulkorder.domain.items.ITEM_DICTS``) in their client before sending it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
from temporalio.client import Client

from bulkorder.embedded import EmbeddedTemporal
from bulkorder.identity_secret import IdentitySettings
from tests.benchmarks.baselines import run_external_storage, run_inline
from tests.benchmarks.bench_codec import moto_server
from tests.fixtures.latency_proxy import latency_proxy_process, request_counts
from tests.benchmarks.floor import measure_floor, servers_bound
from tests.benchmarks.measure import PeakRss, Result, _cpu_seconds, listening_pid, machine, run_histories, stop_process, wait_for_line
from tests.importer.files import write_ndjson

BIN = Path(sys.executable).parent
HISTORY_EVENTS_LIMIT = 4_096
HISTORY_BYTES_LIMIT = 4 * 1024 * 1024


# ---- 1. bulkorder import -----------------------------------------------------------------


def run_bulkorder(
    address: str, path: Path, count: int, workdir: Path, batch_size: int, s3_endpoint: str | None,
    proxy_log: Path | None = None,
    servers: dict[str, int] | None = None,
) -> Result:
    """``bulkorder import`` into a worker's order: on the S3 server at ``s3_endpoint`` (a
    new bucket), or on a folder store when it is ``None``. With ``proxy_log`` (the latency
    proxy's), the S3 requests to its bucket are counted by kind; ``servers`` (name → pid:
    the Temporal server, moto, the proxy) have their CPU time over the run counted too."""
    servers = servers or {}
    home = workdir / f"bulkorder-{uuid.uuid4().hex[:6]}"
    if s3_endpoint is None:
        blobs = {"BULKORDER_BLOB_DIR": str(home / "blobs")}
    else:
        bucket = f"bench-bulkorder-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
        blobs = {"BULKORDER_S3_BUCKET": bucket, "BULKORDER_S3_ENDPOINT_URL": s3_endpoint, "BULKORDER_S3_REGION": "us-east-1"}
    env = dict(
        os.environ,
        **blobs,
        TEMPORAL_ADDRESS=address,
        BULKORDER_HOME=str(home),
        BULKORDER_TASK_QUEUE=f"bench-{uuid.uuid4().hex[:8]}",
        PERSISTENCE_MODULE="eventsourcing.sqlite",
        SQLITE_DBNAME=str(home / "events.sqlite"),
        SQLITE_LOCK_TIMEOUT="30",
    )
    worker = subprocess.Popen([str(BIN / "bulkorder"), "worker"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        wait_for_line(worker, "worker polling")
        worker_rss = PeakRss(worker.pid)
        # Its start-up (imports, connecting, the first polls) is once per worker, not per
        # import: counted apart, as the servers' CPU is counted over the import only.
        worker_ready_cpu = _cpu_seconds(worker.pid)
        order_id = f"bench/bench-{uuid.uuid4().hex[:8]}"  # the order's name: customer/reference
        command = [str(BIN / "bulkorder"), "import", order_id, str(path), "--create"]
        command += ["--batch-size", str(batch_size), "--json", "--quiet"]
        servers_before = {name: _cpu_seconds(pid) for name, pid in servers.items()}
        started = time.perf_counter()
        importer = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        importer_rss = PeakRss(importer.pid)
        assert importer.stdout is not None and importer.stderr is not None
        stdout, stderr = importer.stdout.read(), importer.stderr.read()  # small: --json --quiet
        # wait4 gives the CPU time of the importer and of its encoding processes (it reaps them).
        _, status, usage = os.wait4(importer.pid, 0)
        seconds = time.perf_counter() - started
        importer.returncode = os.waitstatus_to_exitcode(status)
        importer_cpu = usage.ru_utime + usage.ru_stime
        importer_own, encoder_peak = importer_rss.stop()
        main_cpu, encoders_cpu = importer_rss.cpu_split()
        if importer.returncode != 0:
            raise RuntimeError(f"bulkorder import failed ({importer.returncode}): {stderr.strip()}")
        try:
            summary = json.loads(stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            raise RuntimeError(f"bulkorder import printed no summary: {stdout[-2000:]!r}") from None
        if summary["items"] != count or summary["order_items"] != count:
            raise RuntimeError(f"bulkorder import recorded other counts than {count:,}: {summary}")

        async def histories() -> list[tuple[int, int, str]]:
            client = await Client.connect(address)
            # The workflow ID is the name's keyed hash, with the secret the processes made in home.
            return await run_histories(client, IdentitySettings().identity(home).workflow_id(order_id))

        servers_cpu = {name: _cpu_seconds(pid) - servers_before[name] for name, pid in servers.items()}
        worker_import_cpu = _cpu_seconds(worker.pid) - worker_ready_cpu
        runs = asyncio.run(histories())
        worker_own, _ = worker_rss.stop()
    except BaseException:
        stop_process(worker)  # else it outlives this benchmark
        raise
    worker_final, worker_cpu = stop_process(worker)
    worker_peak = max(worker_final, worker_own)
    shutil.rmtree(home, ignore_errors=True)
    largest = max(runs, key=lambda run: run[1])
    requests = request_counts(proxy_log, blobs["BULKORDER_S3_BUCKET"]) if proxy_log and s3_endpoint else {}
    return Result(
        "bulkorder import" + (" (folder store: not like for like)" if s3_endpoint is None else " (moto S3)"),
        count,
        seconds,
        note=f"{len(runs)} runs; every batch recorded in the event store",
        extra={
            "importer_seconds": summary["seconds"],
            "importer_cpu_seconds": importer_cpu,
            "importer_main_cpu_seconds": main_cpu,
            "encoders_cpu_seconds": encoders_cpu,
            "worker_cpu_seconds": worker_cpu,
            "worker_startup_cpu_seconds": worker_ready_cpu,
            "worker_import_cpu_seconds": worker_import_cpu,
            "importer_items_per_second": summary["items_per_second"],
            "importer_peak_rss_mb": importer_own / 1024,
            "encoder_peak_rss_mb": encoder_peak / 1024,
            "worker_peak_rss_mb": worker_peak / 1024,
            "runs": len(runs),
            "largest_run_events": largest[0],
            "largest_run_bytes": largest[1],
            "max_run_events": max(run[0] for run in runs),
            "max_run_bytes": max(run[1] for run in runs),
            "batches": summary["batches"],
            "s3_requests": requests,
            "servers_cpu_seconds": servers_cpu,
        },
    )


# ---- main --------------------------------------------------------------------------------


def report(results: list[Result], count: int, per_signal: int, floor: float = 0.0, legacy_floor: float = 0.0) -> None:
    print()
    print(f"| system ({count:,} items) | items | seconds | items/s | note |")
    print("| --- | ---: | ---: | ---: | --- |")
    for result in results:
        print(
            f"| {result.name} | {result.items:,} | {result.seconds:,.1f} | {result.items_per_second:,.0f} | {result.note} |"
        )
    bulk = results[0]
    for other in results[1:]:
        if other.items_per_second:
            print(f"bulkorder / {other.name}: {bulk.items_per_second / other.items_per_second:.1f}x items/s")
    extra = bulk.extra
    print()
    print(
        f"bulkorder: importer's own time {extra['importer_seconds']:.1f} s ({extra['importer_items_per_second']:,.0f} items/s; "
        "the end-to-end figure above includes starting the importer process)"
    )
    cpu_per_million = (extra["importer_cpu_seconds"] + extra["worker_cpu_seconds"]) * 1e6 / bulk.items
    print(
        f"CPU: importer {extra['importer_cpu_seconds']:.1f} s (sampled: main process ≥{extra['importer_main_cpu_seconds']:.1f} s, "
        f"encoding processes ≥{extra['encoders_cpu_seconds']:.1f} s), worker "
        f"{extra['worker_cpu_seconds']:.1f} s: {cpu_per_million:.1f} CPU-s per million items; with two idle cores "
        f"that bounds throughput at about {2e6 / cpu_per_million:,.0f} items/s (the Temporal server not counted)"
    )
    print(
        f"peak RSS: importer {extra['importer_peak_rss_mb']:.0f} MB, each encoding process ≤ {extra['encoder_peak_rss_mb']:.0f} MB, "
        f"worker {extra['worker_peak_rss_mb']:.0f} MB"
    )
    ok = extra["max_run_events"] <= HISTORY_EVENTS_LIMIT and extra["max_run_bytes"] <= HISTORY_BYTES_LIMIT
    print(
        f"history: {extra['runs']} runs; largest {extra['largest_run_events']:,} events, "
        f"{extra['largest_run_bytes']:,} bytes; every run ≤4,096 events and ≤4 MiB: {'yes' if ok else 'NO'}"
    )
    per_million = {
        "importer with its encoders": extra["importer_cpu_seconds"],  # from wait4: every process it reaped
        "worker over the import": extra["worker_import_cpu_seconds"],
        **extra.get("servers_cpu_seconds", {}),
    }
    per_million = {name: seconds * 1e6 / bulk.items for name, seconds in per_million.items()}
    everything = sum(per_million.values())
    print(
        "CPU-s per million items, by process: "
        + ", ".join(f"{name} {value:.1f}" for name, value in per_million.items())
        + f"; all {everything:.1f}"
        + (f" = {everything / floor:.2f}x the floor ({floor:.2f})" if floor else "")
        + (f"; {everything / legacy_floor:.2f}x the floor as before 2026-12-01 ({legacy_floor:.2f})" if legacy_floor else "")
    )
    servers = {name: value for name, value in per_million.items() if name != "importer with its encoders"}
    if floor and servers:
        print(servers_bound(servers, floor))
    print(
        f"worker: {extra['worker_startup_cpu_seconds']:.1f} CPU-s to start (once per worker, not counted above), "
        f"{extra['worker_cpu_seconds']:.1f} from start to exit; with its start-up, all "
        f"{everything + extra['worker_startup_cpu_seconds'] * 1e6 / bulk.items:.1f} CPU-s per million"
    )
    if extra.get("s3_requests"):
        requests = extra["s3_requests"]
        total = sum(requests.values())
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(requests.items(), key=lambda kv: -kv[1]))
        print(f"S3 requests (importer and worker): {total:,} for {extra['batches']} batches, "
              f"{total / max(extra['batches'], 1):.2f} per batch ({kinds})")
    elif "moto S3" in extra.get("servers_cpu_seconds", {}) and "proxy" not in extra["servers_cpu_seconds"]:
        print("S3 requests: not counted (no latency proxy at 0 ms: the run with added latency counts them)")
    for other in results[1:]:
        if other.extra:
            print(f"{other.name}: {json.dumps(other.extra)}")


def compiled_bytecode() -> None:
    """bulkorder's modules compiled to bytecode once, as a wheel install has them (pip
    compiles on install). With PYTHONDONTWRITEBYTECODE set (this sandbox sets it) an
    editable install never caches any, and every process of the run (importer, encoding
    processes, worker) compiled every module it imports at its start: ~0.1 CPU-s each."""
    import compileall

    root = Path(__file__).resolve().parents[2]
    for folder in ("bulkorder", "domain", "storage", "workflows"):
        if (root / folder).is_dir():
            compileall.compile_dir(root / folder, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--per-signal", type=int, default=2_000, help="items per signal for the baselines")
    parser.add_argument("--inflight", type=int, default=4, help="signals in flight for the baselines")
    parser.add_argument("--bulkorder-only", action="store_true")
    parser.add_argument("--s3-latency-ms", default="0", help="added latency per S3 request, one table each (e.g. 0,20)")
    parser.add_argument("--proxy-at-0", action="store_true", help="keep the latency proxy at 0 ms (counts S3 requests)")
    parser.add_argument("--folder", action="store_true", help="also bulkorder on the folder store (labelled apart)")
    parser.add_argument("--workdir", type=Path, help="keep the generated file here between runs")
    parser.add_argument("--no-compile", action="store_true", help="leave bulkorder's bytecode as it is (to compare)")
    args = parser.parse_args()

    if not args.no_compile:
        compiled_bytecode()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-import-"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"items-{args.items}.ndjson"
    if not path.exists():
        started = time.perf_counter()
        write_ndjson(path.with_suffix(".tmp"), args.items)
        path.with_suffix(".tmp").rename(path)
        print(f"generated {args.items:,} items ({path.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - started:.0f} s")
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at start (the machine may be shared)")
    print(f"input: {path} ({path.stat().st_size / 1e6:,.0f} MB NDJSON, {args.items:,} items of ~25 fields)")

    temporal_db = workdir / f"temporal-{uuid.uuid4().hex[:6]}.sqlite"
    server = EmbeddedTemporal(temporal_db)
    address = asyncio.run(server.start())
    tables: list[tuple[str, list[Result]]] = []
    try:
        with moto_server() as moto:
            for latency in [float(ms) for ms in args.s3_latency_ms.split(",")]:
                # At 0 ms every system talks to moto directly (the proxy would add no
                # latency, only its own CPU); --proxy-at-0 keeps it there, to count requests.
                proxied = latency > 0 or args.proxy_at_0
                proxy_log = workdir / f"proxy-{uuid.uuid4().hex[:6]}.log" if proxied else None
                proxy = latency_proxy_process(moto, latency, log=proxy_log) if proxied else contextlib.nullcontext(moto)
                with proxy as endpoint:
                    servers = {"Temporal server": server.pid or 0, "moto S3": listening_pid(moto)}
                    if proxied:
                        servers["proxy"] = listening_pid(endpoint)
                    results = [
                        run_bulkorder(address, path, args.items, workdir, args.batch_size, endpoint, proxy_log, servers)
                    ]
                    print(f"done: {results[-1].name} +{latency:g} ms: {results[-1].items_per_second:,.0f} items/s", flush=True)
                    if not args.bulkorder_only:
                        if latency == 0:  # the inline entity touches no S3: once is enough
                            results.append(asyncio.run(run_inline(address, path, args.items, args.per_signal, args.inflight)))
                            print(f"done: {results[-1].name}: {results[-1].items_per_second:,.0f} items/s", flush=True)
                        results.append(asyncio.run(
                            run_external_storage(address, path, args.items, args.per_signal, args.inflight, endpoint)
                        ))
                        print(f"done: {results[-1].name}: {results[-1].items_per_second:,.0f} items/s", flush=True)
                title = f"moto S3 +{latency:g} ms per request" + ("" if proxied else " (no proxy: straight to moto)")
                tables.append((title, results))
        if args.folder:
            folder = run_bulkorder(address, path, args.items, workdir, args.batch_size, None)
            print(f"done: {folder.name}: {folder.items_per_second:,.0f} items/s", flush=True)
            tables.append(("folder store, labelled apart", [folder]))
    finally:
        asyncio.run(server.stop())
        for leftover in workdir.glob(f"{temporal_db.stem}*"):
            leftover.unlink()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    floor_path = workdir / "floor-200000.ndjson"
    if not floor_path.exists():
        write_ndjson(floor_path, 200_000)
    floors = measure_floor(floor_path, args.batch_size)
    legacy_floors = measure_floor(floor_path, args.batch_size, sealed=False, collector=True)
    floor, legacy_floor = floors.median, legacy_floors.median
    print(f"floor (tests/benchmarks/floor.py, this machine, now): {floors.describe()} CPU-s per million items on one core "
          f"(sealed, no cyclic gc; as before 2026-12-01, plaintext with the collector on: {legacy_floors.describe()})")
    for title, results in tables:
        print()
        print(f"### {title}")
        report(results, args.items, args.per_signal, floor, legacy_floor)
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
