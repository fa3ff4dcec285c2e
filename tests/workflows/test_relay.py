"""The relay drives DB-first orders' workflows to exactly what the event store records."""

from __future__ import annotations

import asyncio
import uuid
from typing import Awaitable, Callable

import pytest

from bulkorder.domain.summary import OrderSummary
from tests.fixtures.orders import TEST_IDENTITY, OrderStack
from tests.workflows.helpers import recorded_batch_ids, store_generated
from bulkorder.workflows.errors import OrderRefusedError
from bulkorder.workflows.outbox import OrderOutbox
from bulkorder.workflows.relay import OrderRelay, crash_at


def new_order_id(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Wait until ``check`` holds (a real condition, polled), or fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s")
        await asyncio.sleep(0.1)


def same_record(workflow: OrderSummary, store: OrderSummary) -> None:
    assert (workflow.status, workflow.item_count, workflow.batch_count, workflow.quantity, workflow.totals) == (
        store.status, store.item_count, store.batch_count, store.quantity, store.totals,
    )
    assert workflow.version == store.version and workflow.pending_batches == 0


async def run_count(stack: OrderStack, order_id: str) -> int:
    runs = [w async for w in stack.client.client.list_workflows(f'WorkflowId = "{TEST_IDENTITY.workflow_id(order_id)}"')]
    return len(runs)


async def test_relay_brings_db_first_orders_to_what_the_store_records(order_stack: OrderStack) -> None:
    outbox = OrderOutbox(order_stack.orders, order_stack.batches)
    full, cancelled, growing = new_order_id("full"), new_order_id("cancelled"), new_order_id("growing")
    refs = store_generated(order_stack.batches, 4_000, 500, prefix=full)
    full = f"c1/{full}"  # the order's name: customer/reference
    outbox.create(full, refs=refs[:2])
    outbox.add_batches(full, refs[2:])
    outbox.submit(full)
    cancelled = f"c2/{cancelled}"  # the order's name: customer/reference
    outbox.create(cancelled, refs=refs[:1])
    outbox.cancel(cancelled, "out of stock")
    growing = f"c3/{growing}"  # the order's name: customer/reference
    outbox.create(growing, refs=refs[:3])
    workflow_first = new_order_id("wf")
    workflow_first = f"c4/{workflow_first}"  # the order's name: customer/reference
    await order_stack.client.create(workflow_first, refs=refs[:1])  # same store, not relayed

    relay = OrderRelay(order_stack.client.client, order_stack.orders, task_queue=order_stack.task_queue)
    stats = await relay.drain()
    # One add_batches signal per order (refs grouped), then submit / cancel.
    assert (stats.deliveries, stats.closed) == (5, 0)

    same_record(await order_stack.client.wait_closed(full), order_stack.orders.summary(full))
    same_record(await order_stack.client.wait_closed(cancelled), order_stack.orders.summary(cancelled))

    async def growing_recorded() -> bool:
        return (await order_stack.client.summary(growing)).pending_batches == 0

    await eventually(growing_recorded)
    same_record(await order_stack.client.summary(growing), order_stack.orders.summary(growing))

    # The service keeps going; the relay follows from its position.
    outbox.add_batches(growing, refs[3:])
    outbox.submit(growing)
    assert (await relay.drain()).deliveries == 7
    final = await order_stack.client.wait_closed(growing)
    same_record(final, order_stack.orders.summary(growing))
    assert final.report is not None and final.report.item_count == 4_000
    assert recorded_batch_ids(order_stack.orders, growing) == {ref.batch_id: 1 for ref in refs}
    assert (await order_stack.client.stats(workflow_first)).signals_this_run == 0
    # What the workflows recorded since is not for the relay: it moves past it.
    assert (await relay.drain()).deliveries == 7
    assert relay.lag() == 0


async def test_relaying_the_whole_log_again_starts_no_second_workflow(order_stack: OrderStack) -> None:
    outbox = OrderOutbox(order_stack.orders, order_stack.batches)
    done, still_open = new_order_id("done"), new_order_id("open")
    refs = store_generated(order_stack.batches, 1_000, 250, prefix=done)
    done = f"c1/{done}"  # the order's name: customer/reference
    outbox.create(done, refs=refs)
    outbox.submit(done)
    still_open = f"c2/{still_open}"  # the order's name: customer/reference
    outbox.create(still_open, refs=refs[:2])
    first = OrderRelay(order_stack.client.client, order_stack.orders, task_queue=order_stack.task_queue)
    await first.drain()
    await order_stack.client.wait_closed(done)
    versions = (order_stack.orders.summary(done).version, order_stack.orders.summary(still_open).version)

    # A relay that lost its position (a new name) re-delivers everything from the start.
    replay = OrderRelay(order_stack.client.client, order_stack.orders, task_queue=order_stack.task_queue, name="again")
    stats = await replay.drain()
    assert stats.closed == 1  # the fulfilled order's workflow is never started again
    assert stats.deliveries == 1  # the open order gets its batches again, as duplicates

    async def open_recorded() -> bool:
        return (await order_stack.client.summary(still_open)).pending_batches == 0

    await eventually(open_recorded)
    assert (order_stack.orders.summary(done).version, order_stack.orders.summary(still_open).version) == versions
    assert await run_count(order_stack, done) == 1 and await run_count(order_stack, still_open) == 1
    assert (await order_stack.client.stats(still_open)).duplicates_ignored >= 2


async def test_a_db_first_order_refuses_changes_through_the_workflow(order_stack: OrderStack) -> None:
    outbox = OrderOutbox(order_stack.orders, order_stack.batches)
    order_id = new_order_id("db")
    refs = store_generated(order_stack.batches, 200, 100, prefix=order_id)
    order_id = f"c1/{order_id}"  # the order's name: customer/reference
    outbox.create(order_id, refs=refs[:1])
    await OrderRelay(order_stack.client.client, order_stack.orders, task_queue=order_stack.task_queue).drain()
    for call in (
        order_stack.client.add_batches(order_id, refs[1:]),
        order_stack.client.submit(order_id),
        order_stack.client.cancel(order_id, "no"),
    ):
        with pytest.raises(OrderRefusedError, match="recorded DB-first") as refused:
            await call
        assert refused.value.type == "OrderIsDbFirst"
    assert order_stack.orders.summary(order_id).batch_count == 1


def test_crash_points_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown relay crash point 'nowhere'"):
        crash_at("nowhere")
    with pytest.raises(ValueError, match="count must be positive"):
        crash_at("after-tracking:0")
    hook = crash_at("after-tracking:2")
    hook("after-delivery")  # other points pass through


async def test_a_submit_already_recorded_when_its_signal_arrives_still_fulfills(order_stack: OrderStack) -> None:
    """The workflow can learn the order was submitted from the store (a record returning
    "submitted") before the relay's submit signal reaches it: it must still fulfill."""
    outbox = OrderOutbox(order_stack.orders, order_stack.batches)
    order_id = new_order_id("race")
    refs = store_generated(order_stack.batches, 300, 100, prefix=order_id)
    order_id = f"c1/{order_id}"  # the order's name: customer/reference
    outbox.create(order_id, refs=refs[:1])
    relay = OrderRelay(order_stack.client.client, order_stack.orders, task_queue=order_stack.task_queue, page_size=1)
    await relay.drain()
    outbox.add_batches(order_id, refs[1:])
    outbox.submit(order_id)
    for _ in refs[1:]:
        await relay.relay_page()  # one ItemsAdded a page: recording it returns "submitted"

    async def store_state_seen() -> bool:
        return (await order_stack.client.summary(order_id)).version == order_stack.orders.summary(order_id).version

    await eventually(store_state_seen)
    before = relay.stats.deliveries
    await relay.drain()
    assert relay.stats.deliveries == before + 1  # the submit signal, alone
    final = await asyncio.wait_for(order_stack.client.wait_closed(order_id), timeout=60)
    same_record(final, order_stack.orders.summary(order_id))
    assert final.status == "fulfilled"


def test_the_relay_retries_what_may_pass_and_stops_on_what_cannot() -> None:
    from eventsourcing.persistence import DataError, OperationalError
    from temporalio.service import RPCError, RPCStatusCode

    from bulkorder.workflows.relay import is_transient

    assert is_transient(RPCError("unavailable", RPCStatusCode.UNAVAILABLE, b""))
    assert is_transient(RPCError("deadline", RPCStatusCode.DEADLINE_EXCEEDED, b""))
    assert is_transient(OperationalError("database is locked"))
    assert is_transient(ConnectionRefusedError())
    assert not is_transient(RPCError("too big", RPCStatusCode.INVALID_ARGUMENT, b""))
    assert not is_transient(RPCError("denied", RPCStatusCode.PERMISSION_DENIED, b""))
    assert not is_transient(DataError("bad row"))
