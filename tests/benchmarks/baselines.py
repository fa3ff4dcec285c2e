"""The two baselines bench_import compares bulkorder with: a plain entity workflow fed
items inline by signal, and the same with temporalio's ExternalStorage and the contrib S3
driver against moto's S3 server (benchmark code, not product code)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pydantic_core
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistoryEventFilterType
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError

from bulkorder.domain.items import ITEM_DICTS
from tests.benchmarks.baseline_worker import external_storage_converter
from tests.benchmarks.baseline_workflows import CountingItemsWorkflow, InlineItemsWorkflow
from tests.benchmarks.measure import Result, run_histories, stop_process, wait_for_line

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


async def run_external_storage(address: str, path: Path, count: int, per_signal: int, inflight: int, endpoint: str) -> Result:
    """The entity workflow with ExternalStorage on the S3 server at ``endpoint`` (the same
    one bulkorder's run used: like for like)."""
    import boto3

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
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
