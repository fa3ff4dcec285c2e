"""Fault 2: the Temporal dev server (SQLite persistence) stops and restarts mid-import."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from bulkorder.embedded import EmbeddedTemporal
from tests.faults.harness import FaultLine, recorded_batches, report, wait_until
from tests.faults.importing import ImportCase, ItemsFile
from tests.fixtures.orders import sqlite_env

#: How long the server stays down (long enough for every client and the worker to notice).
OUTAGE_SECONDS = 5.0


async def test_temporal_server_restarted_mid_import(tmp_path: Path, items_file: ItemsFile) -> None:
    # Its own server: persisted to a file, on one port kept across the restart.
    server = EmbeddedTemporal(tmp_path / "temporal.sqlite")
    await server.start()
    case = ImportCase(
        "restart", tmp_path, items_file, temporal_address=server.address, task_queue=f"faults-{uuid.uuid4().hex[:8]}",
        event_store_env=sqlite_env(tmp_path / "events.sqlite"), blob_env={"BULKORDER_BLOB_DIR": str(tmp_path / "blobs")},
    )
    try:
        await case.start()
        third = case.batches // 3
        await case.gate.release_batches(third)  # the rest only once the server is down
        importing = case.import_task()
        await wait_until(lambda: recorded_batches(case.orders, case.order_id) >= third, "a third of the import recorded")
        assert not importing.done(), "the import ended before the server was stopped"
        loop = asyncio.get_running_loop()
        down_since = loop.time()
        await server.stop()
        await case.gate.release_all()  # the import goes on against a server that is away
        await asyncio.sleep(OUTAGE_SECONDS)  # the fault's duration
        await server.start()
        downtime = loop.time() - down_since

        await importing
        worker = case.worker.process
        assert worker is not None and worker.returncode is None, "the worker died with the server"
        agreement, runs = await case.finish()
    finally:
        await case.stop()
        await server.stop()
    report(FaultLine(
        "Temporal dev server stopped and restarted", agreement.expected_items, agreement.recorded_items,
        agreement.duplicates, case.watch.seconds,
        f"server down {downtime:.1f} s, {case.importer.reruns} import reruns, {runs} runs replayed",
    ))
