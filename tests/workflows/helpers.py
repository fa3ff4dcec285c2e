"""Helpers for workflow tests: stored batches of generated items and expected counters."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bulkorder.domain.application import Orders
from bulkorder.domain.items import validate_item_dicts
from bulkorder.domain.refs import BatchRef
from bulkorder.domain.sample_items import generate_items
from bulkorder.storage.batches import BatchStore


def store_generated(
    batches: BatchStore, count: int, batch_size: int, *, prefix: str, start: int = 0, order_id: str | None = None
) -> list[BatchRef]:
    """``count`` generated items in batches; with ``order_id``, stored as that order's (its
    key, seals bound to it: recorded without reading them), else as no order's."""
    refs = []
    for index, offset in enumerate(range(start, start + count, batch_size)):
        items = validate_item_dicts(list(generate_items(min(batch_size, start + count - offset), start=offset)))
        refs.append(batches.write(items, batch_id=f"{prefix}-{index:06d}", order_id=order_id))
    return refs


def expected_per_sku(count: int, start: int = 0) -> dict[str, int]:
    quantities: Counter[str] = Counter()
    for item in generate_items(count, start=start):
        quantities[item["sku"]] += item["quantity"]
    return dict(quantities)


def recorded_batch_ids(orders: Orders, order_id: str) -> Counter[str]:
    return Counter(ref.batch_id for ref in orders.iter_batch_refs(order_id))


def event_types(orders: Orders, order_id: str) -> list[str]:
    return [type(event).__name__ for event in orders.events.get(orders.aggregate_id(order_id))]


def totals_of(refs: list[BatchRef]) -> dict[str, Any]:
    totals: dict[str, int] = {}
    for ref in refs:
        for currency, amount in ref.totals.items():
            totals[currency] = totals.get(currency, 0) + amount
    return {"items": sum(r.item_count for r in refs), "quantity": sum(r.quantity for r in refs), "totals": totals}


def worker_serving(client: Any, activities: Any, task_queue: str) -> Any:
    """A worker running ``OrderWorkflow`` with these activities (a test's own, e.g. one that
    injects a bug) on ``task_queue``, so the fixture's worker never takes its orders."""
    from concurrent.futures import ThreadPoolExecutor

    from temporalio.worker import Worker

    from bulkorder.workflows.order_workflow import OrderWorkflow

    return Worker(
        client, task_queue=task_queue, workflows=[OrderWorkflow], activities=activities.all(),
        activity_executor=ThreadPoolExecutor(max_workers=4),
    )
