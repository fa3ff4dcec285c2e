"""A hostile Temporal client on the namespace: it can send any ref to any order.

Its refs are checked by the workflow (shape, canonical key, order bounds) and proven by
the record activity (the writer's seal, or the blob's content); a bucket writer behind it
can swap bytes. Whatever it does, the event store records only what the content bears out,
the workflow agrees with it, and fulfillment reports exactly the items that were added.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from bulkorder.domain.items import validate_item_dicts
from bulkorder.domain.limits import MAX_ORDER_TOTAL
from bulkorder.domain.refs import BatchRef
from bulkorder.domain.sample_items import generate_items
from bulkorder.storage.folder_store import FolderBlobStore
from tests.adversarial.report import AttackLine, report
from tests.fixtures.orders import OrderStack
from tests.workflows.helpers import store_generated, totals_of
from temporalio.client import WorkflowUpdateFailedError

from bulkorder.workflows.errors import OrderRefusedError, refusal_from
from bulkorder.workflows.fulfillment import read_report
from bulkorder.workflows.messages import AddBatchesResult

ATTACKER = "temporal client"


def new_order_id() -> str:
    return f"acme/adv-{uuid.uuid4().hex[:12]}"


def usd_items(count: int, amount: int, quantity: int = 1, start: int = 0) -> list[dict]:
    items = list(generate_items(count, start=start))
    for item in items:
        item["unit_price"] = {"amount": amount, "currency": "USD"}
        item["quantity"] = quantity
    return validate_item_dicts(items)


async def hostile_add(stack: OrderStack, order_id: str, refs: list[BatchRef]) -> AddBatchesResult:
    """``add_batches`` as a client that skips every check of bulkorder's own client."""
    try:
        return await stack.client.handle(order_id).execute_update("add_batches", refs, result_type=AddBatchesResult)
    except WorkflowUpdateFailedError as err:
        raise refusal_from(err, order_id) from None


async def recorded_and_workflow_agree(stack: OrderStack, order_id: str) -> None:
    """The workflow's counters, once everything is recorded, are the event store's."""
    summary = await stack.client.summary(order_id)
    recorded = stack.orders.summary(order_id)
    assert summary.pending_batches == 0
    assert (summary.item_count, summary.quantity, summary.totals, summary.batch_count) == (
        recorded.item_count, recorded.quantity, recorded.totals, recorded.batch_count,
    )


async def wait_recorded(stack: OrderStack, order_id: str) -> None:
    """Submit and wait until fulfilled: the workflow records everything it accepted first."""
    await stack.client.submit(order_id)
    await stack.client.wait_closed(order_id)


async def test_a_key_that_merely_ends_with_the_hash_is_refused(order_stack: OrderStack) -> None:
    order_id = new_order_id()
    good = order_stack.batches.write(usd_items(4, 100), batch_id=f"{order_id}-good")
    await order_stack.client.create(order_id, refs=[good])
    evil = dataclasses.replace(good, batch_id=f"{order_id}-evil", key=f"batches/1d/v{good.sha256}")
    with pytest.raises(OrderRefusedError, match="is not the content key of its sha256") as refused:
        await hostile_add(order_stack, order_id, [evil])
    assert refused.value.type == "InvalidBatchRef"
    # By signal (no caller to tell): recorded as a rejection with its reason.
    await order_stack.client.handle(order_id).signal("add_batches", [evil])
    await wait_recorded(order_stack, order_id)
    order = order_stack.orders.get_order(order_id)
    assert "is not the content key" in order.rejected_batch_ids[evil.batch_id]
    assert (order.item_count, order.totals) == (4, {"USD": 400})
    await recorded_and_workflow_agree(order_stack, order_id)
    report(AttackLine(ATTACKER, "ref under a key that ends with the sha-256", "refused (update), rejected (signal)"))


async def test_inflated_claims_are_rejected_never_recorded_as_claimed(order_stack: OrderStack) -> None:
    order_id = new_order_id()
    good = order_stack.batches.write(usd_items(4, 100), batch_id=f"{order_id}-good")
    await order_stack.client.create(order_id, refs=[good])
    # Real bytes under their real key, claims inflated; unsealed, and with a forged seal.
    unsealed = dataclasses.replace(good, batch_id=f"{order_id}-inflated", totals={"USD": 1_620_100}, seal="")
    forged = dataclasses.replace(good, batch_id=f"{order_id}-forged", quantity=40, seal=good.seal)
    accepted = await hostile_add(order_stack, order_id, [unsealed, forged])
    assert set(accepted.accepted) == {unsealed.batch_id, forged.batch_id}  # shape is fine: proof comes next
    await wait_recorded(order_stack, order_id)
    order = order_stack.orders.get_order(order_id)
    assert "the ref's claims do not match its content" in order.rejected_batch_ids[unsealed.batch_id]
    assert "claims quantity 40" in order.rejected_batch_ids[forged.batch_id]
    assert (order.item_count, order.quantity, order.totals) == (4, 4, {"USD": 400})
    await recorded_and_workflow_agree(order_stack, order_id)
    final = await order_stack.client.wait_closed(order_id)
    assert final.report is not None and final.report.totals == {"USD": 400}
    report(AttackLine(ATTACKER, "real blob, inflated counters (unsealed / forged seal)", "rejected: unproven; totals exact"))


async def test_claims_past_the_counter_bounds_are_refused(order_stack: OrderStack) -> None:
    order_id = new_order_id()
    good = order_stack.batches.write(usd_items(4, 100), batch_id=f"{order_id}-good")
    await order_stack.client.create(order_id, refs=[good])
    huge = [dataclasses.replace(good, batch_id=f"{order_id}-huge-{n}", quantity=2**62) for n in range(2)]
    with pytest.raises(OrderRefusedError, match="quantity must be an integer from 4 to 1000000000000000000"):
        await hostile_add(order_stack, order_id, huge)
    await order_stack.client.handle(order_id).signal("add_batches", huge)
    await wait_recorded(order_stack, order_id)
    order = order_stack.orders.get_order(order_id)
    assert all(ref.batch_id in order.rejected_batch_ids for ref in huge)
    assert (order.quantity, order.totals) == (4, {"USD": 400})
    report(AttackLine(ATTACKER, "two refs claiming quantity 2**62", "refused (update), rejected (signal)"))


async def test_sealed_batches_that_would_pass_the_order_total_are_refused(order_stack: OrderStack) -> None:
    """Even the deployment's own writer cannot take an order past what columns hold."""
    order_id = new_order_id()
    big = 600 * 10**15  # one line, within MAX_LINE_TOTAL; two of them pass MAX_ORDER_TOTAL
    first = order_stack.batches.write(usd_items(1, 10**15, quantity=600), batch_id=f"{order_id}-1")
    second = order_stack.batches.write(usd_items(1, 10**15, quantity=600, start=1), batch_id=f"{order_id}-2")
    await order_stack.client.create(order_id, refs=[first])
    with pytest.raises(OrderRefusedError, match="order limit: batch .* USD total would be 1200000000000000000") as refused:
        await hostile_add(order_stack, order_id, [second])
    assert refused.value.type == "OrderLimitExceeded"
    await order_stack.client.handle(order_id).signal("add_batches", [second])
    await wait_recorded(order_stack, order_id)
    order = order_stack.orders.get_order(order_id)
    assert order.totals == {"USD": big} and order.totals["USD"] <= MAX_ORDER_TOTAL
    assert "order limit" in order.rejected_batch_ids[second.batch_id]
    final = await order_stack.client.wait_closed(order_id)
    assert (final.status, final.report.totals if final.report else None) == ("fulfilled", {"USD": big})
    report(AttackLine(ATTACKER, "sealed batches past MAX_ORDER_TOTAL", "refused: OrderLimitExceeded; report exact"))


async def test_bytes_swapped_after_acceptance_are_never_fulfilled(order_stack: OrderStack) -> None:
    """The issue's case: the order said USD 400, its report must never say USD 1,620,100."""
    order_id = new_order_id()
    small = order_stack.batches.write(usd_items(4, 100), batch_id=f"{order_id}-small")
    other = store_generated(order_stack.batches, 50, 50, prefix=f"{order_id}-x")
    await order_stack.client.create(order_id, refs=[small, *other])
    await order_stack.client.submit(order_id)
    # A bucket writer swaps the small batch's bytes for a costly batch's.
    costly: BatchRef = order_stack.batches.write(usd_items(4, 405_025), batch_id=f"{order_id}-costly")
    blobs = order_stack.batches.blobs
    assert isinstance(blobs, FolderBlobStore)
    blobs.path_for(small.key).write_bytes(blobs.get(costly.key))
    final = await order_stack.client.wait_closed(order_id)
    assert final.report is not None
    report_body = read_report(blobs, final.report, order_stack.batches.protection)
    assert report_body["totals"] == totals_of(other)["totals"] and final.report.item_count == 50
    order = order_stack.orders.get_order(order_id)
    assert small.batch_id in order.rejected_batch_ids and order.rejected_items == 4
    report(AttackLine(ATTACKER, "blob bytes swapped after the ref was recorded", "rejected at fulfillment; report exact"))


async def test_a_ref_copied_from_another_order_never_brings_its_items(order_stack: OrderStack) -> None:
    """A client that can read one order's refs (it holds the codec) copies them into
    another order: the copy is rejected when recorded, whether its seal was made for that
    order (it proves nothing in another) or is of the kind made before seals named their
    order (its batch is sealed with the first order's data key, which the record reads)."""
    first, second = new_order_id(), new_order_id()
    batches = order_stack.batches
    theirs = batches.write(usd_items(4, 9_900), batch_id=f"{first}-theirs", order_id=first)
    ref, data = batches.encode(usd_items(3, 7_700, start=10), batch_id=f"{first}-legacy", order_id=first)
    legacy = batches.sealer.seal(dataclasses.replace(ref, seal=""))  # unscoped: as before scopes
    batches.put_encoded(legacy, data)
    await order_stack.client.create(first, refs=[theirs, legacy])
    mine = batches.write(usd_items(2, 100), batch_id=f"{second}-mine", order_id=second)
    await order_stack.client.create(second, refs=[mine])

    accepted = await hostile_add(order_stack, second, [theirs, legacy])  # the shape is fine
    assert set(accepted.accepted) == {theirs.batch_id, legacy.batch_id}
    await order_stack.client.submit(second)
    final = await order_stack.client.wait_closed(second)
    order = order_stack.orders.get_order(second)
    assert "sealed with another order's data key" in order.rejected_batch_ids[theirs.batch_id]  # when recorded
    assert "sealed with another order's data key" in order.rejected_batch_ids[legacy.batch_id]
    assert "at fulfillment" not in order.rejected_batch_ids[legacy.batch_id]
    assert (order.item_count, order.totals) == (2, {"USD": 200})  # never counted
    assert final.status == "fulfilled" and final.report is not None
    report_body = read_report(batches.blobs, final.report, batches.protection)
    assert report_body["totals"] == {"USD": 200} and final.report.item_count == 2
    # The first order still has its own, untouched.
    await wait_recorded(order_stack, first)
    assert order_stack.orders.summary(first).totals == {"USD": 4 * 9_900 + 3 * 7_700}
    report(AttackLine(ATTACKER, "refs copied from another order's history", "rejected when recorded (seal or data key); totals exact"))
