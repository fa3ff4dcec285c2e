"""bulkorder import against the alternatives, side by side on the same generated items.

    python -m tests.benchmarks.bench_import                      # 1,000,000 items, all three
    python -m tests.benchmarks.bench_import --items 10000000 --bulkorder-only   # make bench-10m

1. ``bulkorder import`` (a separate process) into an order served by ``bulkorder worker``
   (another process): items/s from the file to every event recorded, peak RSS of both,
   and the history of the order workflow's largest run.
2. A plain entity workflow receiving the items inline by signal, 2,000 per signal, until
   Temporal terminates it.
3. The same entity with temporalio's ``ExternalStorage`` and the contrib S3 driver against
   moto's S3 server (a separate process), 2,000 items per signal.

Both baselines read the same NDJSON file and validate each item with the same domain
rules (``domain.items.ITEM_DICTS``) in their client before sending it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pydantic_core
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistoryEventFilterType
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError

from bulkorder.embedded import EmbeddedTemporal, free_port
from domain.items import ITEM_DICTS
from tests.benchmarks.baseline_worker import external_storage_converter
from tests.benchmarks.baseline_workflows import CountingItemsWorkflow, InlineItemsWorkflow
from tests.workflows.importer.files import write_ndjson

BIN = Path(sys.executable).parent
HISTORY_EVENTS_LIMIT = 4_096
HISTORY_BYTES_LIMIT = 4 * 1024 * 1024


_quiet_runtime: Runtime | None = None


def quiet_runtime() -> Runtime:
    """A Temporal runtime that logs errors only: the baselines' 1 MB signals would
    otherwise print a payload-size warning each."""
    global _quiet_runtime
    if _quiet_runtime is None:
        _quiet_runtime = Runtime(
            telemetry=TelemetryConfig(logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR")))
        )
    return _quiet_runtime


@dataclass
class Result:
    name: str
    items: int
    seconds: float
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0


# ---- machine and processes -------------------------------------------------------------


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor()
    )
    mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return f"{os.cpu_count()} CPUs ({cpu}), {mem_kb / 1024 / 1024:.0f} GiB RAM, Python {platform.python_version()}"


class PeakRss:
    """Samples VmHWM of a process and its children while it runs (the encoding processes
    of the importer are its children); ``os.wait4`` gives the final figure for the tree."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.by_pid: dict[int, int] = {}
        self.cpu_by_pid: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for pid in [self.pid, *self._children()]:
                hwm = _vm_hwm_kb(pid)
                if hwm:
                    self.by_pid[pid] = max(self.by_pid.get(pid, 0), hwm)
                cpu = _cpu_seconds(pid)
                if cpu:
                    self.cpu_by_pid[pid] = max(self.cpu_by_pid.get(pid, 0.0), cpu)

    def cpu_split(self) -> tuple[float, float]:
        """(CPU seconds of the process itself, of all its children), as last sampled."""
        own = self.cpu_by_pid.get(self.pid, 0.0)
        return own, sum(cpu for pid, cpu in self.cpu_by_pid.items() if pid != self.pid)

    def _children(self) -> list[int]:
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split()]

    def stop(self) -> tuple[int, int]:
        """(peak RSS of the process itself, largest peak of its children), in KiB."""
        self._stop.set()
        self._thread.join()
        own = self.by_pid.get(self.pid, 0)
        children = max((kb for pid, kb in self.by_pid.items() if pid != self.pid), default=0)
        return own, children


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_for_line(process: subprocess.Popen[str], marker: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if marker in line:
            return
        if not line and process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode} before printing {marker!r}")
    raise RuntimeError(f"{process.args} did not print {marker!r} within {timeout:.0f} s")


def stop_process(process: subprocess.Popen[str]) -> tuple[int, float]:
    """SIGINT, then the peak RSS (KiB) and CPU seconds the kernel reports once it exits."""
    process.send_signal(signal.SIGINT)
    _, _, usage = os.wait4(process.pid, 0)
    process.returncode = 0
    return usage.ru_maxrss, usage.ru_utime + usage.ru_stime


async def run_histories(client: Client, workflow_id: str) -> list[tuple[int, int, str]]:
    """(events, bytes, status) of every run of a workflow, following continue-as-new."""
    latest = await client.get_workflow_handle(workflow_id).describe()
    run_id: str | None = latest.raw_description.workflow_execution_info.first_run_id or latest.run_id
    runs = []
    while run_id:
        handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(workflow_id, run_id=run_id)
        info = (await handle.describe()).raw_description.workflow_execution_info
        runs.append((info.history_length, info.history_size_bytes, str(info.status)))
        run_id = None
        async for event in handle.fetch_history_events(event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT):
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                run_id = event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id or None
    return runs


# ---- 1. bulkorder import -----------------------------------------------------------------


def run_bulkorder(address: str, path: Path, count: int, workdir: Path, batch_size: int) -> Result:
    home = workdir / f"bulkorder-{uuid.uuid4().hex[:6]}"
    env = dict(
        os.environ,
        TEMPORAL_ADDRESS=address,
        BULKORDER_HOME=str(home),
        BULKORDER_BLOB_DIR=str(home / "blobs"),
        BULKORDER_TASK_QUEUE=f"bench-{uuid.uuid4().hex[:8]}",
        PERSISTENCE_MODULE="eventsourcing.sqlite",
        SQLITE_DBNAME=str(home / "events.sqlite"),
        SQLITE_LOCK_TIMEOUT="30",
    )
    worker = subprocess.Popen([str(BIN / "bulkorder"), "worker"], env=env, stdout=subprocess.PIPE, text=True)
    wait_for_line(worker, "worker polling")
    worker_rss = PeakRss(worker.pid)
    order_id = f"bench-{uuid.uuid4().hex[:8]}"
    command = [str(BIN / "bulkorder"), "import", order_id, str(path), "--create", "--customer", "bench"]
    command += ["--batch-size", str(batch_size), "--json", "--quiet"]
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
        stop_process(worker)
        raise RuntimeError(f"bulkorder import failed ({importer.returncode}): {stderr.strip()}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["items"] == count and summary["order_items"] == count, summary

    async def histories() -> list[tuple[int, int, str]]:
        client = await Client.connect(address)
        return await run_histories(client, f"order-{order_id}")

    runs = asyncio.run(histories())
    worker_own, _ = worker_rss.stop()
    worker_final, worker_cpu = stop_process(worker)
    worker_peak = max(worker_final, worker_own)
    shutil.rmtree(home, ignore_errors=True)
    largest = max(runs, key=lambda run: run[1])
    return Result(
        "bulkorder import",
        count,
        seconds,
        note=f"{len(runs)} runs; every batch recorded in the event store",
        extra={
            "importer_seconds": summary["seconds"],
            "importer_cpu_seconds": importer_cpu,
            "importer_main_cpu_seconds": main_cpu,
            "encoders_cpu_seconds": encoders_cpu,
            "worker_cpu_seconds": worker_cpu,
            "importer_items_per_second": summary["items_per_second"],
            "importer_peak_rss_mb": importer_own / 1024,
            "encoder_peak_rss_mb": encoder_peak / 1024,
            "worker_peak_rss_mb": worker_peak / 1024,
            "runs": len(runs),
            "largest_run_events": largest[0],
            "largest_run_bytes": largest[1],
            "max_run_events": max(run[0] for run in runs),
            "max_run_bytes": max(run[1] for run in runs),
        },
    )


# ---- 2 and 3. the baselines --------------------------------------------------------------


def item_chunks(path: Path, size: int) -> Iterator[list[dict[str, Any]]]:
    """Validated items, ``size`` at a time (parsed as one array, validated as a list)."""
    with open(path, "rb") as file:
        while True:
            lines = [file.readline() for _ in range(size)]
            lines = [line.rstrip(b"\n") for line in lines if line.strip()]
            if not lines:
                return
            yield ITEM_DICTS.validate_python(pydantic_core.from_json(b"[" + b",".join(lines) + b"]"))  # type: ignore[misc]


async def send_all(handle: WorkflowHandle[Any, Any], signal_name: str, path: Path, per_signal: int, inflight: int) -> tuple[int, str]:
    """Send every chunk as a signal, ``inflight`` at a time; stop at the first refusal."""
    sent = 0
    refusal = ""
    slots = asyncio.Semaphore(inflight)
    tasks: set[asyncio.Task[None]] = set()

    async def send(chunk: list[dict[str, Any]]) -> None:
        nonlocal sent, refusal
        try:
            if not refusal:
                await handle.signal(signal_name, chunk)
                sent += len(chunk)
        except RPCError as err:
            refusal = refusal or str(err)
        finally:
            slots.release()

    for chunk in item_chunks(path, per_signal):
        await slots.acquire()
        if refusal:
            slots.release()
            break
        task = asyncio.create_task(send(chunk))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return sent, refusal


def start_baseline_worker(address: str, task_queue: str, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tests.benchmarks.baseline_worker", address, task_queue, *extra]
    # Its log (payload-size warnings, "workflow didn't yield" as its history grows) goes to a file.
    log = open(Path(tempfile.gettempdir()) / f"bench-import-{task_queue}.log", "w")  # noqa: SIM115
    worker = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
    log.close()
    wait_for_line(worker, "worker ready")
    return worker


async def run_inline(address: str, path: Path, count: int, per_signal: int, inflight: int) -> Result:
    task_queue = f"inline-{uuid.uuid4().hex[:8]}"
    worker = start_baseline_worker(address, task_queue)
    try:
        client = await Client.connect(address, runtime=quiet_runtime())
        workflow_id = f"inline-{uuid.uuid4().hex[:8]}"
        handle = await client.start_workflow(InlineItemsWorkflow.run, id=workflow_id, task_queue=task_queue)
        started = time.perf_counter()
        sent, refusal = await send_all(handle, "add_items", path, per_signal, inflight)
        seconds = time.perf_counter() - started
        info = (await handle.describe()).raw_description.workflow_execution_info
        reason = ""
        async for event in handle.fetch_history_events(event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT):
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
                reason = event.workflow_execution_terminated_event_attributes.reason
        if not reason:
            await handle.signal(InlineItemsWorkflow.close)
        note = (
            f"terminated by Temporal after {sent:,} items ({reason})" if reason else f"not terminated; {refusal}".strip("; ")
        )
        return Result(
            "plain entity workflow, items inline by signal",
            sent,
            seconds,
            note=note,
            extra={"history_events": info.history_length, "history_bytes": info.history_size_bytes, "completed": sent == count},
        )
    finally:
        stop_process(worker)


async def counted(client: Client, workflow_id: str) -> int:
    try:
        return await client.get_workflow_handle(workflow_id).query(CountingItemsWorkflow.count)
    except RPCError:
        return -1


async def run_external_storage(address: str, path: Path, count: int, per_signal: int, inflight: int) -> Result:
    import boto3

    port = free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        for _ in range(100):
            try:
                s3.create_bucket(Bucket=bucket)
                break
            except Exception:  # noqa: BLE001 - the server is still starting
                await asyncio.sleep(0.1)
        task_queue = f"s3-{uuid.uuid4().hex[:8]}"
        worker = start_baseline_worker(address, task_queue, "--s3-endpoint", endpoint, "--bucket", bucket)
        try:
            client = await Client.connect(
                address, data_converter=external_storage_converter(endpoint, bucket), runtime=quiet_runtime()
            )
            workflow_id = f"s3-{uuid.uuid4().hex[:8]}"
            handle = await client.start_workflow(
                CountingItemsWorkflow.run, None, id=workflow_id, task_queue=task_queue
            )
            started = time.perf_counter()
            sent, refusal = await send_all(handle, "add_items", path, per_signal, inflight)
            # Counted by the workflow, which fetched every payload back from S3. A busy
            # worker may let a query time out: ask again.
            while await counted(client, workflow_id) < sent:
                await asyncio.sleep(0.05)
            seconds = time.perf_counter() - started
            await client.get_workflow_handle(workflow_id).signal(CountingItemsWorkflow.close)
            runs = await run_histories(client, workflow_id)
            largest = max(runs, key=lambda run: run[1])
            return Result(
                "plain entity workflow + ExternalStorage (S3 driver, moto)",
                sent,
                seconds,
                note=f"{len(runs)} runs" + (f"; refused: {refusal}" if refusal else ""),
                extra={"runs": len(runs), "largest_run_events": largest[0], "largest_run_bytes": largest[1]},
            )
        finally:
            stop_process(worker)
    finally:
        moto.terminate()
        moto.wait()


# ---- main --------------------------------------------------------------------------------


def report(results: list[Result], count: int, per_signal: int) -> None:
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
    for other in results[1:]:
        if other.extra:
            print(f"{other.name}: {json.dumps(other.extra)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--per-signal", type=int, default=2_000, help="items per signal for the baselines")
    parser.add_argument("--inflight", type=int, default=4, help="signals in flight for the baselines")
    parser.add_argument("--bulkorder-only", action="store_true")
    parser.add_argument("--workdir", type=Path, help="keep the generated file here between runs")
    args = parser.parse_args()

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
    try:
        results = [run_bulkorder(address, path, args.items, workdir, args.batch_size)]
        print(f"done: {results[-1].name}: {results[-1].items_per_second:,.0f} items/s", flush=True)
        if not args.bulkorder_only:
            results.append(asyncio.run(run_inline(address, path, args.items, args.per_signal, args.inflight)))
            print(f"done: {results[-1].name}: {results[-1].items_per_second:,.0f} items/s", flush=True)
            results.append(asyncio.run(run_external_storage(address, path, args.items, args.per_signal, args.inflight)))
            print(f"done: {results[-1].name}: {results[-1].items_per_second:,.0f} items/s", flush=True)
    finally:
        asyncio.run(server.stop())
        for leftover in workdir.glob(f"{temporal_db.stem}*"):
            leftover.unlink()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    report(results, args.items, args.per_signal)
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
