"""Order identity end to end on a real Temporal dev server: customer + reference names an
order, Temporal sees only keyed hashes, and every create is safe to retry."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from google.protobuf.message import Message
from temporalio.service import RPCError, RPCStatusCode

from bulkorder.domain.errors import OrderAlreadyExistsError, OrderCreateConflictError, OrderNotFoundError
from bulkorder.domain.identity import OrderName
from bulkorder.workflows.errors import OrderRefusedError
from tests.fixtures.orders import TEST_IDENTITY, OrderStack
from tests.fixtures.temporal import temporal_cli_path
from tests.workflows.helpers import event_types, store_generated


def without_payloads(message: Message) -> Message:
    """A copy of a history event with every payload (what a codec encodes) cleared."""
    copy = type(message)()
    copy.CopyFrom(message)
    _strip(copy)
    return copy


_PAYLOADS = ("temporal.api.common.v1.Payload", "temporal.api.common.v1.Payloads")


def _strip(message: Message) -> None:
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.full_name in _PAYLOADS:
            message.ClearField(field.name)
        elif isinstance(value, Message):
            _strip(value)
        else:  # a repeated field or a map of messages
            for item in value.values() if hasattr(value, "values") else value:
                if isinstance(item, Message):
                    item.Clear() if item.DESCRIPTOR.full_name in _PAYLOADS else _strip(item)


def new_reference() -> str:
    return f"PO-{uuid.uuid4().hex[:10]}"


async def recorded(stack: OrderStack, name: str, expected: list[str]) -> None:
    """Wait (with a deadline) until the order's events are ``expected``, then check they stay so."""
    deadline = asyncio.get_running_loop().time() + 30
    while event_types(stack.orders, name) != expected:
        assert asyncio.get_running_loop().time() < deadline, event_types(stack.orders, name)
        await asyncio.sleep(0.1)


async def test_two_customers_with_one_reference_each_see_only_their_own_order(order_stack: OrderStack) -> None:
    reference = new_reference()
    refs = store_generated(order_stack.batches, 3_000, 1_000, prefix=reference)
    client = order_stack.client
    acme = await client.create("acme", reference, refs[:1])
    alice = await client.create("alice@example.com", reference, refs[1:])
    assert (acme.order_id, acme.customer_id, acme.item_count) == (f"acme/{reference}", "acme", 1_000)
    assert (alice.order_id, alice.customer_id, alice.item_count) == (f"alice@example.com/{reference}", "alice@example.com", 2_000)
    # Each call answers about its own order only: no count, ID or customer of the other.
    await client.cancel(f"acme/{reference}", "not needed")
    assert (await client.summary(f"alice@example.com/{reference}")).status == "open"
    shown = json.dumps((await client.summary(f"alice@example.com/{reference}")).to_dict())
    assert "acme" not in shown
    assert order_stack.orders.summary(f"acme/{reference}").batch_count == 1
    assert order_stack.orders.summary(f"alice@example.com/{reference}").batch_count == 2
    with pytest.raises(OrderNotFoundError):
        await client.summary(f"bob/{reference}")


async def test_a_retried_create_returns_the_order_also_after_a_lost_response(order_stack: OrderStack) -> None:
    reference = new_reference()
    refs = store_generated(order_stack.batches, 2_000, 1_000, prefix=reference)
    client = order_stack.client
    first = await client.create("acme", reference, refs[:1])
    again = await client.create("acme", reference, refs[:1])
    # The retry answers with the order's current state: the first batch may have been
    # recorded in between (version and pending_batches move), its contents may not.
    assert (again.order_id, again.item_count, again.batch_count) == (first.order_id, 1_000, 1)
    assert again.version >= first.version

    # A lost response: the service's first call went through, its answer never arrived
    # (the test drops it); the service retries with the same idempotency key.
    keyed = new_reference()
    lost = asyncio.ensure_future(client.create("acme", keyed, refs[1:], idempotency_key="req-42"))
    await lost  # ... and the result is dropped
    retried = await client.create("acme", keyed, refs[1:], idempotency_key="req-42")
    assert (retried.order_id, retried.item_count, retried.batch_count) == (f"acme/{keyed}", 1_000, 1)
    await recorded(order_stack, f"acme/{keyed}", ["Created", "ItemsAdded"])


async def test_a_different_create_for_an_existing_name_is_refused_naming_the_difference(order_stack: OrderStack) -> None:
    reference = new_reference()
    refs = store_generated(order_stack.batches, 2_000, 1_000, prefix=reference)
    client = order_stack.client
    await client.create("acme", reference, refs[:1])
    with pytest.raises(OrderCreateConflictError, match=f"batches not in the original request: '{refs[1].batch_id}'") as refused:
        await client.create("acme", reference, refs)
    assert isinstance(refused.value, OrderRefusedError) and isinstance(refused.value, OrderAlreadyExistsError)
    assert refused.value.type == "OrderConflict" and refused.value.order_id == f"acme/{reference}"
    with pytest.raises(OrderCreateConflictError, match="carries an idempotency key"):
        await client.create("acme", reference, refs[:1], idempotency_key="k")
    # Nothing was recorded by the refused calls.
    summary = await client.summary(f"acme/{reference}")
    assert summary.batch_count == 1
    await recorded(order_stack, f"acme/{reference}", ["Created", "ItemsAdded"])


async def _delete_history(stack: OrderStack, address: str, workflow_id: str) -> None:
    """``temporal workflow delete`` every run of ``workflow_id``, as retention would, and
    wait until Temporal knows none of them (deletion is asynchronous)."""
    client = stack.client.client
    query = f"WorkflowId = '{workflow_id}'"
    run_ids = [execution.run_id async for execution in client.list_workflows(query)]
    assert run_ids
    for run_id in run_ids:
        process = await asyncio.create_subprocess_exec(
            temporal_cli_path(), "workflow", "delete", "--yes", "--address", address,
            "--workflow-id", workflow_id, "--run-id", run_id,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0, (out, err)
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        try:
            await client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:
            assert err.status == RPCStatusCode.NOT_FOUND, err
            return
        assert asyncio.get_running_loop().time() < deadline, "the workflow's runs were not deleted"
        await asyncio.sleep(0.2)


async def test_a_name_is_never_reused_after_close_nor_after_the_history_is_deleted(
    order_stack: OrderStack, temporal_address: str
) -> None:
    reference = new_reference()
    refs = store_generated(order_stack.batches, 2_000, 1_000, prefix=reference)
    client = order_stack.client
    name = OrderName("Müller-GmbH", reference)
    await client.create(name, refs=refs[:1])
    cancelled = await client.cancel(name, "changed our minds")
    assert cancelled.status == "cancelled"
    await client.wait_closed(name)

    # Closed: the same request is answered with the order, another is refused.
    after_close = await client.create(name, refs=refs[:1])
    assert (after_close.status, after_close.item_count) == ("cancelled", 1_000)
    with pytest.raises(OrderCreateConflictError, match="batches"):
        await client.create(name, refs=refs[1:])

    # Temporal's retention drops the history (here: deleted at once): the event store still guards the name.
    await _delete_history(order_stack, temporal_address, TEST_IDENTITY.workflow_id(name))
    after_delete = await client.create(name, refs=refs[:1])
    stored = order_stack.orders.summary(str(name))
    assert (after_delete.status, after_delete.item_count, after_delete.version) == ("cancelled", 1_000, stored.version)
    with pytest.raises(OrderCreateConflictError, match="batches"):
        await client.create(name, refs=refs[1:])
    with pytest.raises(OrderCreateConflictError, match="idempotency key"):
        await client.create(name, refs=refs[:1], idempotency_key="another")
    assert event_types(order_stack.orders, str(name)) == ["Created", "ItemsAdded", "Cancelled"]


async def test_submit_and_cancel_repeated_return_the_current_state(order_stack: OrderStack) -> None:
    reference = new_reference()
    refs = store_generated(order_stack.batches, 1_000, 1_000, prefix=reference)
    client = order_stack.client
    name = f"acme/{reference}"
    await client.create("acme", reference, refs)
    assert (await client.submit(name)).status == "submitted"
    assert (await client.submit(name)).status in ("submitted", "fulfilled")
    final = await client.wait_closed(name)
    assert (await client.submit(name)) == final  # the workflow has completed: its final state
    with pytest.raises(OrderRefusedError, match="fulfilled|closed"):
        await client.cancel(name, "too late")  # not a repeat: refused

    other = f"acme/{new_reference()}"
    await client.create(other)
    assert (await client.cancel(other, "no")).status == "cancelled"
    assert (await client.cancel(other, "no again")).status == "cancelled"
    await client.wait_closed(other)
    assert (await client.cancel(other, "and again")).status == "cancelled"


async def test_temporal_holds_no_customer_or_reference_in_clear(order_stack: OrderStack) -> None:
    customer, reference = "secret.person@example.com", f"REF-{uuid.uuid4().hex[:8]}"
    refs = store_generated(order_stack.batches, 1_000, 1_000, prefix="opaque")
    client = order_stack.client
    await client.create(customer, reference, refs)
    workflow_id = await client.resolve(f"{customer}/{reference}")
    assert workflow_id == TEST_IDENTITY.workflow_id(f"{customer}/{reference}")
    assert workflow_id.startswith("order-v2-") and "secret" not in workflow_id and reference not in workflow_id
    handle = client.client.get_workflow_handle(workflow_id)
    description = await handle.describe()
    info = description.raw_description.workflow_execution_info
    visible = " ".join(
        [info.execution.workflow_id, str(info.search_attributes), str(info.memo), str(description.static_summary or "")]
    )
    for text in ("secret", "example.com", reference):
        assert text not in visible
    # The name travels only inside payloads (which a codec may encrypt): no activity
    # summary, failure message or other clear-text field of the history holds it.
    async for event in handle.fetch_history_events():
        clear = str(without_payloads(event))
        assert "secret" not in clear and reference not in clear, clear
    # The readable name still answers.
    assert (await client.summary(f"{customer}/{reference}")).order_id == f"{customer}/{reference}"


async def test_an_order_from_before_identities_takes_batches_sealed_for_it(order_stack: OrderStack) -> None:
    """A 0.x order (workflow ``order-<reference>``, bare order ID, its own data key) still
    open after the upgrade: items added by its name are stored as *its* batches (its key,
    seals bound to it), so the record proves them and fulfilment reads every one."""
    from bulkorder.domain.identity import legacy_workflow_id
    from bulkorder.workflows.messages import OrderInput
    from bulkorder.workflows.order_workflow import OrderWorkflow
    from bulkorder.domain.sample_items import generate_items

    reference = f"old-{uuid.uuid4().hex[:8]}"
    client = order_stack.client
    await client.client.start_workflow(
        OrderWorkflow.run, OrderInput(order_id=reference, customer_id="acme", create_via_update=False),
        id=legacy_workflow_id(reference), task_queue=order_stack.task_queue,
    )
    name = f"acme/{reference}"
    assert await client.stored_order_id(name) == reference
    result = await client.add_items(name, list(generate_items(300)), batch_size=100)
    assert result is not None and len(result.accepted) == 3
    await client.submit(name)
    final = await client.wait_closed(name)
    assert final.status == "fulfilled" and final.report is not None and final.report.item_count == 300
    recorded = order_stack.orders.get_order(reference)
    assert (recorded.item_count, recorded.rejected_batch_ids) == (300, {})
    # Another customer's name for the same reference is not that order.
    assert await client.stored_order_id(f"other/{reference}") == f"other/{reference}"
