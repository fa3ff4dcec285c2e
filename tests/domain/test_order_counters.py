"""The counter rules: the aggregate and a summary counted event by event agree."""

from __future__ import annotations

from typing import Any

from bulkorder.domain.order import Order
from tests.domain.test_order import new_order
from bulkorder.domain.order_counters import COUNTERS_UNCHANGED, STATUS_AFTER, RunningCounts, add_batch, count_event, status_after
from bulkorder.domain.summary import OrderStatus, OrderSummary
from tests.domain.test_order import ref, report

#: Events that leave the status as it is; every other event must say what it becomes.
COUNTING_ONLY = {"ItemsAdded", "BatchRejected"}


def counted(events: list[Any]) -> RunningCounts:
    counts = RunningCounts()
    for event in events:
        count_event(counts, event)
    return counts


def counters_of(order: Order) -> tuple[Any, ...]:
    summary = order.summary()
    return (summary.status, summary.item_count, summary.batch_count, summary.quantity, summary.totals,
            summary.rejected_batches)


def counters_counted(counts: RunningCounts) -> tuple[Any, ...]:
    return (counts.status, counts.item_count, counts.batch_count, counts.quantity, counts.totals,
            counts.rejected_batches)


def test_every_order_event_is_known_to_the_rules() -> None:
    events = {name for name, value in vars(Order).items() if isinstance(value, type) and issubclass(value, Order.Event)}
    # "Event": eventsourcing's base, never stored
    assert events - {"Event"} == set(STATUS_AFTER) | COUNTING_ONLY | COUNTERS_UNCHANGED


def test_a_fulfilled_order_counts_the_same_both_ways() -> None:
    order = new_order("c-1/o-1")
    order.add_batch(ref("b1", 10, {"EUR": 500}))
    order.add_batch(ref("b2", 5, {"EUR": 100, "USD": 7}))
    order.add_batch(ref("b1", 10, {"EUR": 500}))  # a repeat counts once
    order.reject_batch("b3", "order is closed", code="order_closed")
    order.submit()
    order.complete_fulfillment(report())
    counts = counted(order.collect_events())
    assert counters_counted(counts) == counters_of(order)
    assert counters_of(order) == (OrderStatus.FULFILLED, 15, 2, 30, {"EUR": 600, "USD": 7}, 1)


def test_cancelled_and_failed_orders_count_the_same_both_ways() -> None:
    cancelled = new_order("c-1/o-1")
    cancelled.add_batch(ref("b1"))
    cancelled.cancel("no")
    assert counters_counted(counted(cancelled.collect_events())) == counters_of(cancelled)

    failed = new_order("c-1/o-2")
    failed.add_batch(ref("b1"))
    failed.submit()
    failed.fail_fulfillment("blob gone")
    assert counters_counted(counted(failed.collect_events())) == counters_of(failed)
    assert failed.status == OrderStatus.FAILED


def test_a_rejection_at_fulfillment_takes_its_items_out_and_a_retry_puts_them_back() -> None:
    order = new_order("c-1/o-1")
    order.add_batch(ref("b1", 10))
    order.add_batch(ref("b2", 4))
    order.submit()
    order.reject_unfulfillable_batch("b2", "blob gone", key="k", item_count=4)
    assert (order.rejected_items, len(order.rejected_batch_ids)) == (4, 1)
    order.fail_fulfillment("nothing left")
    order.retry_fulfillment("blob restored")
    assert (order.status, order.rejected_items, len(order.rejected_batch_ids)) == (OrderStatus.SUBMITTED, 0, 0)
    # A summary that only counts rejections takes out those read again, as the aggregate
    # (which knows them by ID) forgets them; rejected again, each counts once.
    order.reject_unfulfillable_batch("b2", "blob gone again", key="k", item_count=4)
    events = order.collect_events()
    retried = next(event for event in events if isinstance(event, Order.FulfillmentRetried))
    assert retried.reread_batches == 1
    counts = counted(events)
    assert counters_counted(counts) == counters_of(order)
    assert (counts.status, counts.item_count, counts.batch_count, counts.rejected_batches) == (OrderStatus.SUBMITTED, 14, 2, 1)


def test_a_retried_event_from_before_the_count_reads_as_none_reread() -> None:
    state: dict[str, object] = {"reason": "blob restored"}
    Order.FulfillmentRetried.upcast_v1_v2(state)
    assert state == {"reason": "blob restored", "reread_batches": 0}


def test_status_after_names_the_event() -> None:
    order = new_order("c-1/o-1")
    order.add_batch(ref("b1"))
    order.submit()
    created, _added, submitted = order.collect_events()
    assert (status_after(created), status_after(submitted)) == (OrderStatus.OPEN, OrderStatus.SUBMITTED)


def test_pending_refs_add_to_a_summary_as_recorded_ones_do() -> None:
    summary = OrderSummary(order_id="o-1", customer_id="c-1", totals={"EUR": 1})
    add_batch(summary, ref("b1", 3, {"EUR": 300, "USD": 2}))
    assert (summary.item_count, summary.batch_count, summary.quantity, summary.totals) == (3, 1, 6, {"EUR": 301, "USD": 2})
