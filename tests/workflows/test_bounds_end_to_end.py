"""The domain's bounds hold end to end (issue 15): every item, batch and order the domain
accepts can be counted, stored, recorded, fulfilled, reported and projected, exactly;
what would pass a bound is refused when it is added, naming the item and the limit.

A property-based test draws items at and around every bound (quantity, unit amount, line
total, the order totals) and pushes each draw through the whole pipeline against the real
Temporal server, a folder blob store and SQLite.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.client import Client

from bulkorder.domain.application import Orders
from bulkorder.analysis.history import describe_events
from bulkorder.domain.items import MAX_QUANTITY, MAX_UNIT_AMOUNT, ItemValidationError
from bulkorder.domain.limits import MAX_LINE_TOTAL, MAX_ORDER_QUANTITY, MAX_ORDER_TOTAL
from bulkorder.analysis.read_model import project_summary
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.folder_store import FolderBlobStore
from tests.fixtures.orders import TEST_SEALER, sqlite_env
from bulkorder.workflows.client import OrderClient
from bulkorder.workflows.errors import OrderRefusedError
from bulkorder.workflows.fulfillment import decode_report
from bulkorder.workflows.worker import build_worker

QUANTITIES = st.sampled_from([1, 2, 999, MAX_QUANTITY - 1, MAX_QUANTITY]) | st.integers(1, MAX_QUANTITY)
AMOUNTS = st.sampled_from([0, 1, 10**9, MAX_UNIT_AMOUNT - 1, MAX_UNIT_AMOUNT]) | st.integers(0, MAX_UNIT_AMOUNT)


@st.composite
def items(draw: Any) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 12))
    currency = draw(st.sampled_from(["EUR", "USD"]))
    return [
        {
            "sku": f"SKU-{draw(st.integers(0, 3))}",
            "quantity": draw(QUANTITIES),
            "unit_price": {"amount": draw(AMOUNTS), "currency": currency if draw(st.booleans()) else "JPY"},
            "name": "bound case",
        }
        for _ in range(count)
    ]


def expected(drawn: list[dict[str, Any]]) -> tuple[str | None, dict[str, int], int]:
    """What the domain must say: the first limit passed (or None), the totals, the quantity."""
    totals: dict[str, int] = {}
    quantity = 0
    for item in drawn:
        line = item["quantity"] * item["unit_price"]["amount"]
        if line > MAX_LINE_TOTAL:
            return "MAX_LINE_TOTAL", {}, 0
        quantity += item["quantity"]
        currency = item["unit_price"]["currency"]
        totals[currency] = totals.get(currency, 0) + line
    if quantity > MAX_ORDER_QUANTITY or any(total > MAX_ORDER_TOTAL for total in totals.values()):
        return "MAX_ORDER_(TOTAL|QUANTITY)", {}, 0
    return None, totals, quantity


async def run_case(address: str, drawn: list[dict[str, Any]], folder: Path) -> None:
    client = await Client.connect(address)
    task_queue = f"bounds-{uuid.uuid4().hex[:8]}"
    orders = Orders(env=sqlite_env(folder / "events.sqlite"))
    batches = BatchStore(FolderBlobStore(folder / "blobs"), sealer=TEST_SEALER)
    worker = build_worker(client, orders=orders, batches=batches, task_queue=task_queue)
    orders_client = OrderClient(client, task_queue=task_queue, batches=batches)
    order_id = f"b-{uuid.uuid4().hex[:12]}"
    limit, totals, quantity = expected(drawn)
    try:
        async with worker:
            order_id = f"customer-1/{order_id}"  # the order's name: customer/reference
            await orders_client.create(order_id)
            if limit is not None:
                with pytest.raises(ItemValidationError, match=f"exceeds the limit {limit} = ") as refused:
                    await orders_client.add_items(order_id, drawn, batch_size=5)
                assert "item" in str(refused.value) or "batch" in str(refused.value)
                summary = await orders_client.summary(order_id)
                assert (summary.item_count, summary.totals) == (0, {})  # nothing partial
                await orders_client.cancel(order_id, "refused items")
                return
            await orders_client.add_items(order_id, drawn, batch_size=5)
            await orders_client.submit(order_id)
            final = await orders_client.wait_closed(order_id)
        assert (final.status, final.item_count, final.quantity, final.totals) == ("fulfilled", len(drawn), quantity, totals)
        assert final.report is not None and final.report.totals == totals
        report = decode_report(batches.blobs.get(final.report.key))
        assert report["totals"] == totals and report["quantity"] == quantity
        per_sku: dict[str, dict[str, int]] = {}
        for item in drawn:
            entry = per_sku.setdefault(item["sku"], {})
            currency = item["unit_price"]["currency"]
            entry[currency] = entry.get(currency, 0) + item["quantity"] * item["unit_price"]["amount"]
        assert {sku: money for sku, _, money in report["skus"]} == per_sku
        recorded = orders.summary(order_id)
        assert (recorded.status, recorded.totals, recorded.quantity) == ("fulfilled", totals, quantity)
        # The analysts' projection and history count the same, in 64-bit-safe values.
        events = list(orders.events.get(orders.aggregate_id(order_id)))
        row = None
        for event in events:
            row = project_summary(row, event)
        assert row is not None and (row.totals, row.quantity, row.status) == (totals, quantity, "fulfilled")
        assert all(value < 2**63 for value in [*row.totals.values(), row.quantity])
        assert list(describe_events(events))[-1].type == "FulfillmentCompleted"
    finally:
        orders.close()


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(drawn=items())
def test_items_at_and_around_every_bound_flow_end_to_end_or_are_refused_at_add_time(
    temporal_address: str, drawn: list[dict[str, Any]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        # Its own event loop: hypothesis runs the body once per example.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, run_case(temporal_address, drawn, Path(folder))).result(timeout=120)


async def test_the_issue_case_3000_items_up_to_the_bounds_is_refused_at_add_time_in_seconds(order_stack) -> None:  # type: ignore[no-untyped-def]
    """3,000 items with quantities up to 10^9 and unit amounts up to 10^15: the first line
    past MAX_LINE_TOTAL is refused when added, naming it; nothing is recorded; no order hangs."""
    drawn = [
        {"sku": f"S-{n}", "quantity": 10**9 - n, "unit_price": {"amount": 10**15 - n, "currency": "EUR"}, "name": "big"}
        for n in range(3_000)
    ]
    order_id = f"big-{uuid.uuid4().hex[:10]}"
    order_id = f"customer-1/{order_id}"  # the order's name: customer/reference
    await order_stack.client.create(order_id)
    with pytest.raises(ItemValidationError, match=r"item\[0\]: quantity: the line total .* exceeds the limit MAX_LINE_TOTAL = 1,000,000,000,000,000,000"):
        await order_stack.client.add_items(order_id, drawn)
    assert order_stack.orders.summary(order_id).item_count == 0
    with pytest.raises(OrderRefusedError, match="has no items to submit"):
        await order_stack.client.submit(order_id)
