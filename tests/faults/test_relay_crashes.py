"""Fault 6: the relay (``bulkorder relay``) is killed at each of its crash points: after
writing its position but before starting the next workflows, after starting workflows but
before writing its position, and between one workflow and the next. Restarted, it
converges: every DB-first order gets exactly one workflow, every batch is applied once."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from bulkorder.domain.refs import BatchRef
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.folder_store import FolderBlobStore
from tests.faults.harness import (
    refs_expectation,
    deployment_client,
    closed,
    SCALE,
    BulkorderProcess,
    EncodedBatch,
    FaultLine,
    Stopwatch,
    check_agreement,
    check_replays,
    order_refs,
    report,
    case_orders,
    stack_env,
    worker_process,
)
from tests.fixtures.orders import TEST_IDENTITY, sqlite_env
from bulkorder.workflows.client import OrderClient
from bulkorder.workflows.outbox import OrderOutbox
from bulkorder.workflows.relay import AFTER_DELIVERY, AFTER_TRACKING, CRASH_EXIT_CODE, MID_DELIVERY, OrderRelay

PAGE_SIZE = 10  # small pages: many chances to crash mid-stream


def write_orders(outbox: OrderOutbox, orders: list[str], refs: dict[str, list[BatchRef]]) -> dict[str, str]:
    """What a DB-first service does: record each order, batch by batch, then submit it
    (every sixth is cancelled instead). Returns the status each order must end in."""
    outcome = {}
    for index, order_id in enumerate(orders):
        outbox.create(order_id, refs=refs[order_id][:1])
        for ref in refs[order_id][1:]:
            outbox.add_batches(order_id, [ref])
        if index % 6 == 5:
            outbox.cancel(order_id, "customer cancelled")
            outcome[order_id] = "cancelled"
        else:
            outbox.submit(order_id)
            outcome[order_id] = "fulfilled"
    return outcome


async def test_relay_killed_at_every_crash_point_converges(
    temporal_env: WorkflowEnvironment, temporal_address: str, task_queue: str, tmp_path: Path,
    encoded_batches: list[EncodedBatch],
) -> None:
    store_env = sqlite_env(tmp_path / "events.sqlite")
    blobs = FolderBlobStore(tmp_path / "blobs")
    order_ids = [f"customer-{index}/relay-{index:03d}-{uuid.uuid4().hex[:8]}" for index in range(SCALE.relay_orders)]
    chosen = encoded_batches[: SCALE.relay_batches_per_order]
    refs = {order_id: order_refs(order_id, chosen) for order_id in order_ids}
    for batch in chosen:
        blobs.put(batch.ref.key, batch.data)
    env = stack_env(
        home=tmp_path, temporal_address=temporal_address, task_queue=task_queue,
        event_store_env=store_env, blob_env={"BULKORDER_BLOB_DIR": str(blobs.root)},
    )
    orders = case_orders(env, store_env)
    outbox = OrderOutbox(orders, BatchStore(blobs))
    worker = worker_process(env, tmp_path / "worker.log")
    client = OrderClient(await deployment_client(env), task_queue=task_queue)
    position = OrderRelay(client.client, orders, task_queue=task_queue).position  # read-only use
    watch = Stopwatch()

    async def relay(crash_at: str | None = None) -> int:
        extra = {"BULKORDER_RELAY_CRASH_AT": crash_at} if crash_at else {}
        process = BulkorderProcess(
            ["relay", "--once", "--page-size", str(PAGE_SIZE)], {**env, **extra}, tmp_path / "relay.log"
        )
        await process.start()
        return await process.wait()

    await worker.start()
    try:
        half = len(order_ids) // 2
        expected = write_orders(outbox, order_ids[:half], refs)

        # Killed after writing its position, before starting the next page's workflows.
        assert await relay(f"{AFTER_TRACKING}:2") == CRASH_EXIT_CODE
        tracked = position()
        assert tracked > 0
        # Killed after starting/signalling a page's workflows, before writing its position:
        # the position does not move, and the restart delivers that page again.
        assert await relay(f"{AFTER_DELIVERY}:1") == CRASH_EXIT_CODE
        assert position() == tracked
        # Killed between one workflow and the next within a page.
        assert await relay(f"{MID_DELIVERY}:1") == CRASH_EXIT_CODE
        assert position() == tracked

        # The service kept writing all along; the relay restarts and catches up.
        expected |= await asyncio.to_thread(write_orders, outbox, order_ids[half:], refs)
        assert await relay(f"{AFTER_TRACKING}:3") == CRASH_EXIT_CODE
        assert await relay() == 0

        expected_items = recorded_items = duplicates = 0
        for order_id in order_ids:
            try:
                final = await closed(client, order_id)
            except Exception as exc:  # noqa: BLE001 - name the order in the failure
                raise AssertionError(f"{order_id}: {exc}") from exc
            agreement = check_agreement(
                orders, order_id, final, status=expected[order_id], **refs_expectation(refs[order_id])
            )
            expected_items += agreement.expected_items
            recorded_items += agreement.recorded_items
            duplicates += agreement.duplicates
            chain = await client.run_histories(order_id)
            listed = [w async for w in client.client.list_workflows(f'WorkflowId = "{TEST_IDENTITY.workflow_id(order_id)}"')]
            assert len(listed) == len(chain), f"{order_id}: {len(listed)} workflow runs, one chain of {len(chain)}"
        runs = await check_replays(client.client, [TEST_IDENTITY.workflow_id(order_id) for order_id in order_ids])
    finally:
        await worker.stop()
        orders.close()
    report(FaultLine(
        "relay killed at its 3 crash points (4 kills)", expected_items, recorded_items, duplicates,
        watch.seconds, f"{len(order_ids)} DB-first orders, one workflow each, {runs} runs replayed",
    ))
