"""Fault 1: the worker process is SIGKILLed several times during a large import."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from domain.application import Orders
from storage.folder_store import FolderBlobStore
from tests.faults.harness import (
    failed_attempts,
    closed,
    SCALE,
    ClientImportDriver,
    EncodedBatch,
    FaultLine,
    Stopwatch,
    check_agreement,
    check_replays,
    report,
    retrying,
    stack_env,
    wait_until,
    worker_process,
)
from tests.fixtures.orders import sqlite_env
from domain.identifiers import workflow_id_for
from workflows.client import OrderClient
from workflows.messages import RECORD_ACTIVITY


async def test_worker_killed_during_import(
    temporal_env: WorkflowEnvironment, temporal_address: str, task_queue: str, tmp_path: Path,
    encoded_batches: list[EncodedBatch],
) -> None:
    order_id = f"kill-{uuid.uuid4().hex[:10]}"
    store_env = sqlite_env(tmp_path / "events.sqlite")
    blobs = FolderBlobStore(tmp_path / "blobs")
    env = stack_env(
        home=tmp_path, temporal_address=temporal_address, task_queue=task_queue,
        event_store_env=store_env, blob_env={"BULKORDER_BLOB_DIR": str(blobs.root)},
    )
    worker = worker_process(env, tmp_path / "worker.log")
    orders = Orders(env=store_env)
    client = OrderClient(temporal_env.client, task_queue=task_queue)
    driver = ClientImportDriver(client, blobs)
    total = len(encoded_batches)
    watch = Stopwatch()
    await worker.start()
    try:
        async def recorded_batches() -> int:
            return orders.summary(order_id).batch_count if await asyncio.to_thread(orders.exists, order_id) else 0

        async def kill_during_import() -> None:
            for kill in range(1, SCALE.worker_kills + 1):
                threshold = total * kill // (SCALE.worker_kills + 1)
                await wait_until(lambda: _at_least(recorded_batches, threshold), f"{threshold} batches recorded")
                await worker.kill()
                await worker.start()

        importing = asyncio.create_task(driver.run(order_id, "customer-1", encoded_batches))
        await kill_during_import()
        refs = await importing
        await retrying(lambda: client.submit(order_id), what="submit")
        final = await closed(client, order_id)
        agreement = check_agreement(orders, order_id, refs, final)
        runs = await check_replays(temporal_env.client, [workflow_id_for(order_id)])
        attempts, _ = await failed_attempts(temporal_env.client, workflow_id_for(order_id), RECORD_ACTIVITY)
    finally:
        await worker.stop()
        orders.close()
    assert worker.starts == SCALE.worker_kills + 1
    report(FaultLine(
        f"worker SIGKILLed x{SCALE.worker_kills} during import", agreement.expected_items,
        agreement.recorded_items, agreement.duplicates, watch.seconds,
        f"{attempts} record attempts lost with a worker and retried, {runs} runs replayed",
    ))


async def _at_least(count: object, threshold: int) -> bool:
    return await count() >= threshold  # type: ignore[operator]
