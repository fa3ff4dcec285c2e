"""Fault 7: a duplicated signal and a replayed update carrying the same batch IDs, within
a run and again after a continue-as-new hand-over (where the run's own memory is gone)."""

from __future__ import annotations

import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from bulkorder.storage.folder_store import FolderBlobStore
from tests.faults.harness import (
    refs_expectation,
    deployment_client,
    closed,
    EncodedBatch,
    FaultLine,
    Stopwatch,
    check_agreement,
    check_replays,
    order_refs,
    report,
    case_orders,
    stack_env,
    wait_until,
    worker_process,
)
from tests.fixtures.orders import TEST_IDENTITY, sqlite_env
from bulkorder.workflows.client import OrderClient
from bulkorder.workflows.messages import OrderLimits
from bulkorder.workflows.order_workflow import OrderWorkflow


async def test_duplicated_signal_and_replayed_update(
    temporal_env: WorkflowEnvironment, temporal_address: str, task_queue: str, tmp_path: Path,
    encoded_batches: list[EncodedBatch],
) -> None:
    order_id = f"customer-1/dup-{uuid.uuid4().hex[:10]}"
    store_env = sqlite_env(tmp_path / "events.sqlite")
    blobs = FolderBlobStore(tmp_path / "blobs")
    refs = order_refs(order_id, encoded_batches[:40])
    for batch in encoded_batches[:40]:
        blobs.put(batch.ref.key, batch.data)
    signalled, updated, filler = refs[:10], refs[10:20], refs[20:]
    env = stack_env(
        home=tmp_path, temporal_address=temporal_address, task_queue=task_queue,
        event_store_env=store_env, blob_env={"BULKORDER_BLOB_DIR": str(blobs.root)},
    )
    orders = case_orders(env, store_env)
    worker = worker_process(env, tmp_path / "worker.log")
    client = OrderClient(await deployment_client(env), task_queue=task_queue, limits=OrderLimits(max_updates=15, max_signals=15))
    handle = client.handle(order_id)
    watch = Stopwatch()
    await worker.start()
    try:
        await client.create(order_id)
        # The same signal delivered twice (a sender that retried after a lost ack).
        await handle.signal(OrderWorkflow.add_batches_signal, signalled)
        await handle.signal(OrderWorkflow.add_batches_signal, signalled)
        # The same update replayed under its update ID: Temporal answers it once...
        first = await handle.execute_update(OrderWorkflow.add_batches, updated, id="import-call-1")
        replayed = await handle.execute_update(OrderWorkflow.add_batches, updated, id="import-call-1")
        assert replayed.accepted == first.accepted == [ref.batch_id for ref in updated]
        # ...and under a new ID (a client that lost the first answer), the workflow does.
        again = await handle.execute_update(OrderWorkflow.add_batches, updated, id="import-call-1-retry")
        assert (again.accepted, again.duplicates) == ([], [ref.batch_id for ref in updated])

        # Push the order through a continue-as-new, then send everything once more: the new
        # run has forgotten what it saw, and the event store still applies each ID once.
        for ref in filler:
            await client.add_batches(order_id, [ref])
        await wait_until(lambda: _runs(client, order_id, at_least=2), "a continue-as-new hand-over")
        await handle.signal(OrderWorkflow.add_batches_signal, signalled)
        after = await handle.execute_update(OrderWorkflow.add_batches, updated, id="import-call-1")
        assert after.accepted == [ref.batch_id for ref in updated]  # the new run takes them...
        await client.submit(order_id)
        final = await closed(client, order_id)
        stats = await client.stats(order_id)
        agreement = check_agreement(orders, order_id, final, **refs_expectation(refs))  # ...and records them once
        runs = await check_replays(client.client, [TEST_IDENTITY.workflow_id(order_id)])
    finally:
        await worker.stop()
        orders.close()
    report(FaultLine(
        "duplicated signal + replayed update (same batch IDs)", agreement.expected_items,
        agreement.recorded_items, agreement.duplicates, watch.seconds,
        f"{stats.duplicates_ignored} duplicate batch deliveries absorbed, {runs} runs replayed",
    ))


async def _runs(client: OrderClient, order_id: str, *, at_least: int) -> bool:
    return (await client.stats(order_id)).runs >= at_least
