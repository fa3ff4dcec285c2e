"""Fault 2: the Temporal dev server (SQLite persistence) stops and restarts mid-import."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from bulkorder.embedded import EmbeddedTemporal
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

#: How long the server stays down (long enough for every client and the worker to notice).
OUTAGE_SECONDS = 5.0


async def test_temporal_server_restarted_mid_import(tmp_path: Path, items_file: ItemsFile) -> None:
    # Its own server: persisted to a file, on one port kept across the restart.
    server = EmbeddedTemporal(tmp_path / "temporal.sqlite")
    await server.start()
    order_id = f"restart-{uuid.uuid4().hex[:10]}"
    task_queue = f"faults-{uuid.uuid4().hex[:8]}"
    store_env = sqlite_env(tmp_path / "events.sqlite")
    env = stack_env(
        home=tmp_path, temporal_address=server.address, task_queue=task_queue,
        event_store_env=store_env, blob_env={"BULKORDER_BLOB_DIR": str(tmp_path / "blobs")},
    )
    worker = worker_process(env, tmp_path / "worker.log")
    orders = Orders(env=store_env)
    importer = CliImportDriver(env, tmp_path / "import.log", batch_size=SCALE.import_batch_items)
    batches = -(-items_file.items // SCALE.import_batch_items)
    watch = Stopwatch()
    try:
        await worker.start()
        gate = importer.gate(items_file)
        await gate.release_batches(batches // 3)  # the rest only once the server is down
        importing = asyncio.create_task(importer.run(order_id, "customer-1", gate))
        await wait_until(lambda: recorded_batches(orders, order_id) >= batches // 3, "a third of the import recorded")
        assert not importing.done(), "the import ended before the server was stopped"
        loop = asyncio.get_running_loop()
        down_since = loop.time()
        await server.stop()
        await gate.release_all()  # the import goes on against a server that is away
        await asyncio.sleep(OUTAGE_SECONDS)  # the fault's duration
        await server.start()
        downtime = loop.time() - down_since

        await importing
        assert worker.process is not None and worker.process.returncode is None, "the worker died with the server"
        client = OrderClient(await deployment_client(env), task_queue=task_queue)
        await retrying(lambda: client.submit(order_id), what="submit")
        final = await closed(client, order_id)
        agreement = check_agreement(orders, order_id, final, expected_items=items_file.items, expected_batches=batches)
        runs = await check_replays(client.client, [workflow_id_for(order_id)])
    finally:
        await worker.stop()
        await server.stop()
        orders.close()
    report(FaultLine(
        "Temporal dev server stopped and restarted", agreement.expected_items, agreement.recorded_items,
        agreement.duplicates, watch.seconds,
        f"server down {downtime:.1f} s, {importer.reruns} import reruns, {runs} runs replayed",
    ))
