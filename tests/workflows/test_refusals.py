"""Requests the order workflow refuses synchronously, leaving nothing behind."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from temporalio.client import WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from bulkorder.domain.errors import OrderNotFoundError
from bulkorder.domain.errors import OrderCreateConflictError
from bulkorder.domain.identifiers import InvalidIdentifierError
from bulkorder.domain.refs import InvalidRefError
from tests.fixtures.orders import TEST_IDENTITY, OrderStack
from tests.workflows.helpers import event_types, store_generated
from bulkorder.workflows.errors import OrderRefusedError
from bulkorder.workflows.messages import CreateRequest, OrderInput
from bulkorder.workflows.order_workflow import OrderWorkflow


def new_order_id(customer: str = "customer-1") -> str:
    """A new order's name (customer/reference)."""
    return f"{customer}/t-{uuid.uuid4().hex[:12]}"


def reference_of(order_id: str) -> str:
    return order_id.rpartition("/")[2]


async def raw_create(stack: OrderStack, order_id: str, customer_id: str, refs: list) -> object:  # type: ignore[type-arg]
    """Update-With-Start without the client's local checks: what the server-side validator sees."""
    start = WithStartWorkflowOperation(
        OrderWorkflow.run,
        OrderInput(order_id=order_id, customer_id=customer_id),
        id=TEST_IDENTITY.workflow_id_of_stored(order_id) if "/" in order_id and " " not in order_id else "order-v2-raw",
        task_queue=stack.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
    )
    return await stack.client.client.execute_update_with_start_workflow(
        OrderWorkflow.create, CreateRequest(refs=refs), start_workflow_operation=start
    )


async def test_a_conflicting_create_is_refused_synchronously(order_stack: OrderStack) -> None:
    order_id = new_order_id()
    refs = store_generated(order_stack.batches, 300, 100, prefix=reference_of(order_id))
    await order_stack.client.create(order_id, refs=refs[:1])

    with pytest.raises(OrderCreateConflictError) as refused:
        await order_stack.client.create(order_id, refs=refs[1:])
    assert refused.value.type == "OrderConflict"
    assert refused.value.order_id == order_id and "already exists with another create request" in str(refused.value)
    # Another customer's order with the same reference is another order.
    other = await order_stack.client.create("customer-2", reference_of(order_id), refs[1:])
    assert (other.customer_id, other.batch_count) == ("customer-2", 2)

    # The original order is untouched: same customer, only its own batch.
    summary = await order_stack.client.summary(order_id)
    assert (summary.customer_id, summary.batch_count, summary.item_count) == ("customer-1", 1, 100)


async def test_another_create_of_a_closed_order_is_refused(order_stack: OrderStack) -> None:
    order_id = new_order_id()
    refs = store_generated(order_stack.batches, 100, 100, prefix=reference_of(order_id))
    await order_stack.client.create(order_id, refs=refs)
    await order_stack.client.submit(order_id)
    await order_stack.client.wait_closed(order_id)

    with pytest.raises(OrderRefusedError, match="already exists") as refused:
        await order_stack.client.create(order_id)
    assert refused.value.type == "OrderConflict"
    assert order_stack.orders.summary(order_id).status == "fulfilled"
    assert (await order_stack.client.create(order_id, refs=refs)).status == "fulfilled"  # the same request


async def test_bad_ref_is_refused_by_the_validator_and_nothing_is_recorded(order_stack: OrderStack) -> None:
    order_id = new_order_id()
    good = store_generated(order_stack.batches, 100, 100, prefix=reference_of(order_id))[0]
    bad = dataclasses.replace(good, sha256="0" * 64)  # key no longer matches the hash

    # The client refuses it before calling Temporal at all...
    with pytest.raises(InvalidRefError, match="is not the content key of its sha256"):
        await order_stack.client.create(order_id, refs=[bad])
    # ...and the workflow's validator refuses it from a caller that skips those checks.
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await raw_create(order_stack, order_id, "customer-1", [good, bad])
    assert "batch ref #1" in str(failed.value.cause) and "sha256" in str(failed.value.cause)

    # Nothing behind: no order in the event store, and the ID can still be used.
    assert not order_stack.orders.exists(order_id)
    with pytest.raises(OrderNotFoundError):
        order_stack.orders.summary(order_id)
    summary = await order_stack.client.create(order_id, refs=[good])
    assert summary.item_count == 100


async def test_bad_customer_id_is_refused_and_leaves_nothing(order_stack: OrderStack) -> None:
    order_id = new_order_id()
    with pytest.raises(InvalidIdentifierError, match="customer ID"):
        await order_stack.client.create("bad customer", reference_of(order_id))
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await raw_create(order_stack, "bad customer/" + reference_of(order_id), "bad customer", [])
    assert "customer ID" in str(failed.value.cause)
    assert not order_stack.orders.exists(order_id)


async def test_add_after_submit_is_refused(order_stack: OrderStack) -> None:
    order_id = new_order_id()
    refs = store_generated(order_stack.batches, 300, 100, prefix=reference_of(order_id))
    await order_stack.client.create(order_id, refs=refs[:1])
    await order_stack.client.submit(order_id)
    with pytest.raises(OrderRefusedError) as refused:
        await order_stack.client.add_batches(order_id, refs[1:2])
    assert refused.value.type == "OrderClosed" and "cannot add batches" in str(refused.value)
    final = await order_stack.client.wait_closed(order_id)
    assert final.item_count == 100


async def test_invalid_ref_in_a_signal_is_recorded_as_rejected(order_stack: OrderStack) -> None:
    order_id = new_order_id()
    refs = store_generated(order_stack.batches, 200, 100, prefix=reference_of(order_id))
    await order_stack.client.create(order_id, refs=refs[:1])
    bad = dataclasses.replace(refs[1], item_count=0)
    await order_stack.client.client.get_workflow_handle(TEST_IDENTITY.workflow_id(order_id)).signal(
        OrderWorkflow.add_batches_signal, [bad]
    )
    await order_stack.client.submit(order_id)
    final = await order_stack.client.wait_closed(order_id)
    assert (final.item_count, final.rejected_batches) == (100, 1)
    order = order_stack.orders.get_order(order_id)
    assert "item_count" in order.rejected_batch_ids[bad.batch_id]
    assert "BatchRejected" in event_types(order_stack.orders, order_id)


async def test_unknown_order_is_a_clear_error(order_stack: OrderStack) -> None:
    with pytest.raises(OrderNotFoundError, match="does not exist"):
        await order_stack.client.summary(new_order_id())
    with pytest.raises(OrderNotFoundError):
        await order_stack.client.submit(new_order_id())


async def test_submit_of_an_empty_order_is_refused(order_stack: OrderStack) -> None:
    order_id = new_order_id()
    await order_stack.client.create(order_id)
    with pytest.raises(OrderRefusedError, match="no items"):
        await order_stack.client.submit(order_id)
    cancelled = await order_stack.client.cancel(order_id, "changed my mind")
    assert cancelled.status == "cancelled"
    final = await order_stack.client.wait_closed(order_id)
    assert final.status == "cancelled"
    assert order_stack.orders.get_order(order_id).cancel_reason == "changed my mind"
