"""What fulfillment cannot read is recorded on the order, never dropped or retried forever."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Mapping

import pytest

from bulkorder.domain.refs import BatchRef
from bulkorder.storage.folder_store import FolderBlobStore
from tests.fixtures.orders import TEST_KEYRING, OrderStack
from tests.workflows.helpers import event_types, store_generated
from bulkorder.workflows.errors import OrderRefusedError
from bulkorder.workflows.fulfillment import read_report


def new_order_id() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def blob_path(stack: OrderStack, ref: BatchRef) -> Path:
    blobs = stack.batches.blobs
    assert isinstance(blobs, FolderBlobStore)
    return blobs.path_for(ref.key)


async def show(stack: OrderStack, order_id: str, temporal_address: str, event_store_env: Mapping[str, str]) -> dict:
    """``bulkorder show --json``, run as a user would (without blocking this process's
    event loop, where the worker that answers the query runs)."""
    env = {
        **os.environ,
        **event_store_env,
        "TEMPORAL_ADDRESS": temporal_address,
        "BULKORDER_TASK_QUEUE": stack.task_queue,
        # The stack's blobs and keyring: its events are encrypted with keys kept there.
        "BULKORDER_BLOB_DIR": str(stack.batches.blobs.root),
        "BULKORDER_KEYRING": str(TEST_KEYRING),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bulkorder.cli", "show", order_id, "--json",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    return json.loads(stdout.decode().splitlines()[-1])


async def test_unreadable_batches_are_recorded_and_the_rest_is_fulfilled(
    order_stack: OrderStack, temporal_address: str, event_store_env: Mapping[str, str]
) -> None:
    order_id = new_order_id()
    name = f"customer-1/{order_id}"  # the order's name: customer/reference
    # The order's own batches: recorded on their seals, never read before fulfilment.
    refs = store_generated(order_stack.batches, 2_500, 500, prefix=order_id, order_id=name)
    order_id = name
    await order_stack.client.create(order_id, refs=refs)
    blob_path(order_stack, refs[1]).unlink()  # gone
    blob_path(order_stack, refs[3]).write_bytes(b"not the bytes that were written")  # corrupt

    await order_stack.client.submit(order_id)
    final = await order_stack.client.wait_closed(order_id)

    assert (final.status, final.item_count, final.rejected_batches, final.rejected_items) == ("fulfilled", 2_500, 2, 1_000)
    assert final.report is not None and final.report.item_count == 1_500
    report = read_report(order_stack.batches.blobs, final.report, order_stack.batches.protection)
    assert report["item_count"] == 1_500
    recorded = order_stack.orders.summary(order_id)
    assert (recorded.status, recorded.rejected_items, recorded.version) == ("fulfilled", 1_000, final.version)
    assert event_types(order_stack.orders, order_id)[-4:] == ["Submitted", "BatchRejected", "BatchRejected", "FulfillmentCompleted"]

    shown = await show(order_stack, order_id, temporal_address, event_store_env)
    reasons = {r["batch_id"]: r["reason"] for r in shown["rejections"]}
    assert set(reasons) == {refs[1].batch_id, refs[3].batch_id}
    assert "not found" in reasons[refs[1].batch_id] and refs[1].key in reasons[refs[1].batch_id]
    assert "corrupt" in reasons[refs[3].batch_id]
    assert (shown["status"], shown["rejected_items"], shown["source"]) == ("fulfilled", 1_000, "event store")


async def test_a_fulfillment_that_cannot_succeed_is_recorded_then_retried_once_fixed(
    order_stack: OrderStack, temporal_address: str, event_store_env: Mapping[str, str]
) -> None:
    order_id = new_order_id()
    refs = store_generated(order_stack.batches, 400, 200, prefix=order_id, order_id=f"customer-1/{order_id}")
    order_id = f"customer-1/{order_id}"  # the order's name: customer/reference
    await order_stack.client.create(order_id, refs=refs)
    kept = {ref.key: blob_path(order_stack, ref).read_bytes() for ref in refs}
    for ref in refs:
        blob_path(order_stack, ref).unlink()

    await order_stack.client.submit(order_id)
    with pytest.raises(OrderRefusedError, match="none of the order's 2 batches could be read") as failed:
        await order_stack.client.wait_closed(order_id)
    assert failed.value.type == "FulfillmentFailed"

    order = order_stack.orders.get_order(order_id)
    assert (order.status, order.rejected_items, len(order.rejected_batch_ids)) == ("failed", 400, 2)
    assert "none of the order's 2 batches" in (order.failure_reason or "")
    assert event_types(order_stack.orders, order_id)[-1] == "FulfillmentFailed"
    shown = await show(order_stack, order_id, temporal_address, event_store_env)
    assert shown["status"] == "failed" and "could be read" in shown["reason"]

    # The cause fixed (the blobs restored), an operator retries: recorded, then fulfilled.
    for key, data in kept.items():
        order_stack.batches.blobs.put(key, data)
    retried = await order_stack.client.retry_fulfillment(order_id, "blobs restored")
    assert retried.status == "submitted"
    final = await order_stack.client.wait_closed(order_id)
    assert (final.status, final.item_count, final.rejected_items) == ("fulfilled", 400, 0)
    assert final.report is not None and final.report.item_count == 400
    assert event_types(order_stack.orders, order_id)[-3:] == ["FulfillmentFailed", "FulfillmentRetried", "FulfillmentCompleted"]
    assert order_stack.orders.summary(order_id).status == "fulfilled"


async def test_a_failed_order_an_operator_gives_up_on_is_cancelled(order_stack: OrderStack) -> None:
    order_id = new_order_id()
    refs = store_generated(order_stack.batches, 200, 200, prefix=order_id, order_id=f"customer-1/{order_id}")
    order_id = f"customer-1/{order_id}"  # the order's name: customer/reference
    await order_stack.client.create(order_id, refs=refs)
    blob_path(order_stack, refs[0]).unlink()
    await order_stack.client.submit(order_id)
    with pytest.raises(OrderRefusedError, match="could be read"):
        await order_stack.client.wait_closed(order_id)
    cancelled = await order_stack.client.cancel(order_id, "supplier gone")
    assert cancelled.status == "cancelled"
    final = await order_stack.client.wait_closed(order_id)
    assert final.status == "cancelled"
    assert event_types(order_stack.orders, order_id)[-2:] == ["FulfillmentFailed", "Cancelled"]
    with pytest.raises(OrderRefusedError, match="is closed") as refused:
        await order_stack.client.retry_fulfillment(order_id, "x")
    assert refused.value.type == "OrderClosed"
