"""Fault 2: the Temporal dev server (SQLite persistence) stops and restarts mid-import."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from temporalio.client import Client

from bulkorder.embedded import EmbeddedTemporal
from domain.application import Orders
from domain.identifiers import workflow_id_for
from storage.folder_store import FolderBlobStore
from tests.faults.harness import (
    closed,
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
from workflows.client import OrderClient

#: How long the server stays down (long enough for every client and the worker to notice).
OUTAGE_SECONDS = 5.0


async def _wait_out(seconds: float) -> None:
    """The fault's duration: deliberately wait while the server is down."""
    await asyncio.sleep(seconds)


async def test_temporal_server_restarted_mid_import(tmp_path: Path, encoded_batches: list[EncodedBatch]) -> None:
    # Its own server: persisted to a file, on one port kept across the restart.
    server = EmbeddedTemporal(tmp_path / "temporal.sqlite")
    await server.start()
    order_id = f"restart-{uuid.uuid4().hex[:10]}"
    task_queue = f"faults-{uuid.uuid4().hex[:8]}"
    store_env = sqlite_env(tmp_path / "events.sqlite")
    blobs = FolderBlobStore(tmp_path / "blobs")
    env = stack_env(
        home=tmp_path, temporal_address=server.address, task_queue=task_queue,
        event_store_env=store_env, blob_env={"BULKORDER_BLOB_DIR": str(blobs.root)},
    )
    worker = worker_process(env, tmp_path / "worker.log")
    orders = Orders(env=store_env)
    watch = Stopwatch()
    try:
        await worker.start()
        client = OrderClient(await Client.connect(server.address), task_queue=task_queue)
        driver = ClientImportDriver(client, blobs)
        importing = asyncio.create_task(driver.run(order_id, "customer-1", encoded_batches))

        half = len(encoded_batches) // 2
        await wait_until(lambda: orders.exists(order_id) and orders.summary(order_id).batch_count >= half, "half the import recorded")
        added_before = driver.added
        loop = asyncio.get_running_loop()
        down_since = loop.time()
        await server.stop()
        await _wait_out(OUTAGE_SECONDS)
        await server.start()
        downtime = loop.time() - down_since

        refs = await importing
        assert driver.added > added_before, "the import did not continue after the restart"
        assert driver.retries > 0, "no call met the outage"
        assert worker.process is not None and worker.process.returncode is None, "the worker died with the server"
        await retrying(lambda: client.submit(order_id), what="submit")
        final = await retrying(lambda: closed(client, order_id), what="wait for fulfillment")
        agreement = check_agreement(orders, order_id, refs, final)
        runs = await check_replays(client.client, [workflow_id_for(order_id)])
    finally:
        await worker.stop()
        await server.stop()
        orders.close()
    report(FaultLine(
        "Temporal dev server stopped and restarted", agreement.expected_items, agreement.recorded_items,
        agreement.duplicates, watch.seconds,
        f"server down {downtime:.1f} s, {driver.retries} calls retried, {runs} runs replayed",
    ))
