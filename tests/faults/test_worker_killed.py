"""Fault 1: the worker process is SIGKILLed several times during a large import."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from domain.application import Orders
from domain.identifiers import workflow_id_for
from tests.faults.harness import (
    SCALE,
    FaultLine,
    Stopwatch,
    check_agreement,
    check_replays,
    closed,
    deployment_client,
    failed_attempts,
    recorded_batches,
    report,
    retrying,
    stack_env,
    wait_until,
    worker_process,
)
from tests.faults.importing import CliImportDriver, ItemsFile
from tests.fixtures.orders import sqlite_env
from workflows.client import OrderClient
from workflows.messages import RECORD_ACTIVITY


async def test_worker_killed_during_import(temporal_address: str, task_queue: str, tmp_path: Path, items_file: ItemsFile) -> None:
    order_id = f"kill-{uuid.uuid4().hex[:10]}"
    store_env = sqlite_env(tmp_path / "events.sqlite")
    env = stack_env(
        home=tmp_path, temporal_address=temporal_address, task_queue=task_queue,
        event_store_env=store_env, blob_env={"BULKORDER_BLOB_DIR": str(tmp_path / "blobs")},
        # Small record calls (the order takes this limit from the importer that creates
        # it): recording advances step by step, so a kill is likely to cut one short.
        extra={"BULKORDER_MAX_REFS_PER_RECORD": "20"},
    )
    worker = worker_process(env, tmp_path / "worker.log")
    orders = Orders(env=store_env)
    client = OrderClient(await deployment_client(env), task_queue=task_queue)
    importer = CliImportDriver(env, tmp_path / "import.log", batch_size=SCALE.import_batch_items)
    batches = -(-items_file.items // SCALE.import_batch_items)
    watch = Stopwatch()
    await worker.start()
    try:
        gate = importer.gate(items_file)
        importing = asyncio.create_task(importer.run(order_id, "customer-1", gate))
        for kill in range(1, SCALE.worker_kills + 1):
            threshold = batches * kill // (SCALE.worker_kills + 1)
            await gate.release_batches(threshold)  # the rest only after this kill
            await wait_until(
                lambda: recorded_batches(orders, order_id) >= threshold, f"{threshold} batches recorded", interval=0.05
            )
            assert not importing.done(), "the import ended before the worker was killed"
            await worker.kill()
            await gate.release_batches(batches * (kill + 1) // (SCALE.worker_kills + 1))
            await worker.start()
        await gate.release_all()
        await importing
        await retrying(lambda: client.submit(order_id), what="submit")
        final = await closed(client, order_id)
        agreement = check_agreement(orders, order_id, final, expected_items=items_file.items, expected_batches=batches)
        runs = await check_replays(client.client, [workflow_id_for(order_id)])
        attempts, _ = await failed_attempts(client.client, workflow_id_for(order_id), RECORD_ACTIVITY)
    finally:
        await worker.stop()
        orders.close()
    assert worker.starts == SCALE.worker_kills + 1
    report(FaultLine(
        f"worker SIGKILLed x{SCALE.worker_kills} during import", agreement.expected_items,
        agreement.recorded_items, agreement.duplicates, watch.seconds,
        f"{attempts} record attempts lost with a worker, {importer.reruns} import reruns, {runs} runs replayed",
    ))
