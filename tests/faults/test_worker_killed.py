"""Fault 1: the worker process is SIGKILLed several times during a large import."""

from __future__ import annotations

from pathlib import Path

from tests.faults.harness import SCALE, FaultLine, failed_attempts, recorded_batches, report, wait_until
from tests.faults.importing import ImportCase, ItemsFile
from tests.fixtures.orders import TEST_IDENTITY, sqlite_env
from bulkorder.workflows.messages import RECORD_ACTIVITY


async def test_worker_killed_during_import(temporal_address: str, task_queue: str, tmp_path: Path, items_file: ItemsFile) -> None:
    case = ImportCase(
        "kill", tmp_path, items_file, temporal_address=temporal_address, task_queue=task_queue,
        event_store_env=sqlite_env(tmp_path / "events.sqlite"), blob_env={"BULKORDER_BLOB_DIR": str(tmp_path / "blobs")},
        # Small record calls (the order takes this limit from the importer that creates
        # it): recording advances step by step, so a kill is likely to cut one short.
        extra={"BULKORDER_MAX_REFS_PER_RECORD": "20"},
    )
    kills = SCALE.worker_kills
    try:
        await case.start()
        importing = case.import_task()
        for kill in range(1, kills + 1):
            threshold = case.batches * kill // (kills + 1)
            await case.gate.release_batches(threshold)  # the rest only after this kill
            await wait_until(
                lambda: recorded_batches(case.orders, case.order_id) >= threshold,
                f"{threshold} batches recorded", interval=0.05,
            )
            assert not importing.done(), "the import ended before the worker was killed"
            await case.worker.kill()
            await case.gate.release_batches(case.batches * (kill + 1) // (kills + 1))
            await case.worker.start()
        await case.gate.release_all()
        await importing
        agreement, runs = await case.finish()
        client = await case.client()
        attempts, _ = await failed_attempts(client.client, TEST_IDENTITY.workflow_id(case.order_id), RECORD_ACTIVITY)
    finally:
        await case.stop()
    assert case.worker.starts == kills + 1
    report(FaultLine(
        f"worker SIGKILLed x{kills} during import", agreement.expected_items,
        agreement.recorded_items, agreement.duplicates, case.watch.seconds,
        f"{attempts} record attempts lost with a worker, {case.importer.reruns} import reruns, {runs} runs replayed",
    ))
