"""Garbage collection's roots in a real Temporal dev server: an open workflow's pending
refs (query ``pending_keys``) are kept by a sweep with no grace at all, and recorded ones
after they move to the event store; an open order nobody can ask stops the sweep."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from temporalio.worker import Worker

from bulkorder.data_lifecycle import collect_garbage
from bulkorder.storage.gc import KEPT_PENDING, KEPT_RECORDED, GcError
from bulkorder.storage.leases import LEASE_PREFIX
from bulkorder.workflows.activities import OrderActivities
from bulkorder.workflows.gc_roots import OrderRoots
from bulkorder.workflows.order_workflow import OrderWorkflow
from bulkorder.workflows.worker import build_worker
from tests.fixtures.orders import OrderStack
from tests.storage.items import make_items

import pytest


async def test_pending_refs_are_roots_until_recorded_then_recorded_ones_are(order_stack: OrderStack) -> None:
    client, orders, batches = order_stack.client, order_stack.orders, order_stack.batches
    blobs = batches.blobs
    await client.create("c-1/gc-open")
    orphan = batches.write(make_items(2) + [{"sku": "ORPHAN", "quantity": 1, "unit_price": {"amount": 1, "currency": "EUR"}, "name": "o"}])
    # The running worker records; stop it and run one that takes no activity tasks (its
    # activities are registered only for the creation's local activity, which a replay
    # of the workflow needs): accepted refs now wait in the workflow, unrecorded.
    await order_stack.worker.shutdown()
    idle = Worker(
        client.client, task_queue=order_stack.task_queue, workflows=[OrderWorkflow],
        activities=OrderActivities(orders, batches).all(), activity_executor=ThreadPoolExecutor(max_workers=2),
        no_remote_activities=True,
    )
    async with idle:
        refs = [batches.write(make_items(3 + i)) for i in range(3)]
        await client.add_batches("c-1/gc-open", refs)
        roots = OrderRoots(orders, client.client)
        assert sorted(await roots.pending_keys(["c-1/gc-open"])) == sorted(ref.key for ref in refs)

        report = await collect_garbage(blobs, orders, client.client, grace=0.0)

        assert report.kept[KEPT_PENDING].blobs == 3 and report.deleted.blobs == 1
        assert {ref.key for ref in refs} <= set(blobs.iter_keys("batches/"))
        assert orphan.key not in set(blobs.iter_keys("batches/"))
    async with build_worker(client.client, orders=orders, batches=batches, task_queue=order_stack.task_queue):
        summary = await client.submit("c-1/gc-open")
        await client.wait_closed("c-1/gc-open")
        assert summary.batch_count == 3
        report = await collect_garbage(blobs, orders, client.client, grace=0.0)
    assert report.kept[KEPT_RECORDED].blobs == 4 and report.deleted.blobs == 0  # 3 batches, the report


async def test_add_items_leaves_no_lease_behind(order_stack: OrderStack) -> None:
    client = order_stack.client
    await client.create("c-1/gc-leases")
    await client.add_items("c-1/gc-leases", make_items(50), batch_size=10)
    await client.add_items("c-1/gc-leases", make_items(20), batch_size=10, wait=False)
    assert list(order_stack.batches.blobs.iter_keys(LEASE_PREFIX + "/")) == []


async def test_an_open_order_without_an_answer_stops_the_sweep(order_stack: OrderStack) -> None:
    client, orders, batches = order_stack.client, order_stack.orders, order_stack.batches
    await client.create("c-1/gc-silent")
    orphan = batches.write(make_items(4))
    with pytest.raises(GcError, match="no Temporal server is configured"):
        await collect_garbage(batches.blobs, orders, None, grace=0.0)
    assert orphan.key in set(batches.blobs.iter_keys("batches/"))
