"""The order flow end to end on a real Temporal dev server: create, grow, submit, fulfill."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Mapping

import pytest

from tests.fixtures.orders import OrderStack, sqlite_env
from tests.workflows.helpers import event_types, expected_per_sku, recorded_batch_ids, store_generated, totals_of
from bulkorder.workflows.fulfillment import read_report


@pytest.fixture(params=["sqlite", "postgres"])
def event_store_env(request: pytest.FixtureRequest, tmp_path: Path) -> Mapping[str, str]:
    """The same flow on both event stores users run: SQLite embedded, PostgreSQL at scale."""
    if request.param == "sqlite":
        return sqlite_env(tmp_path / "events.sqlite")
    return request.getfixturevalue("postgres_env")


def new_order_id() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


async def test_order_created_grown_submitted_and_fulfilled(order_stack: OrderStack) -> None:
    order_id = new_order_id()
    refs = store_generated(order_stack.batches, 10_000, 1_000, prefix=order_id)
    client = order_stack.client

    order_id = f"customer-1/{order_id}"  # the order's name: customer/reference
    created = await client.create(order_id, refs=refs[:2])
    assert (created.status, created.item_count, created.batch_count) == ("open", 2_000, 2)
    assert created.version >= 1  # returned only once Created is in the event store

    added = await client.add_batches(order_id, refs[2:6])
    assert added is not None and added.accepted == [r.batch_id for r in refs[2:6]] and added.duplicates == []
    await client.add_batches(order_id, refs[6:], wait=False)  # as signals

    submitted = await client.submit(order_id)
    assert submitted.status == "submitted"
    final = await client.wait_closed(order_id)

    expected = totals_of(refs)
    assert final.status == "fulfilled"
    assert (final.item_count, final.batch_count, final.quantity) == (10_000, 10, expected["quantity"])
    assert final.totals == expected["totals"]
    assert final.pending_batches == 0

    # The event store holds the same order, every batch exactly once.
    recorded = order_stack.orders.summary(order_id)
    assert (recorded.status, recorded.item_count, recorded.batch_count) == ("fulfilled", 10_000, 10)
    assert recorded == final
    assert recorded_batch_ids(order_stack.orders, order_id) == {r.batch_id: 1 for r in refs}
    types = event_types(order_stack.orders, order_id)
    assert types[0] == "Created" and types[-2:] == ["Submitted", "FulfillmentCompleted"]
    assert types.count("ItemsAdded") == 10

    # The fulfillment report was computed from the items streamed back from the blob store.
    assert final.report is not None and final.report.item_count == 10_000
    report = read_report(order_stack.batches.blobs, final.report, order_stack.batches.protection)
    assert {sku: qty for sku, qty, _ in report["skus"]} == expected_per_sku(10_000)
    assert report["totals"] == expected["totals"]

