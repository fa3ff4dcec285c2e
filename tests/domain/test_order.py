"""The Order aggregate's invariants."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from bulkorder.domain.errors import OrderClosedError, OrderConflictError
from bulkorder.domain.identifiers import InvalidIdentifierError
from bulkorder.domain.identity import OrderName
from bulkorder.domain.order import Order
from bulkorder.domain.refs import BatchRef, InvalidRefError, ReportRef
from tests.fixtures.orders import TEST_IDENTITY


def ref(batch_id: str, items: int = 10, totals: dict[str, int] | None = None) -> BatchRef:
    sha = hashlib.sha256(batch_id.encode()).hexdigest()
    return BatchRef(batch_id=batch_id, key=f"batches/{sha[:2]}/{sha}", sha256=sha, size=100,
                    item_count=items, quantity=items * 2, totals=totals or {"EUR": items * 100})


def new_order(name: str, **options: object) -> Order:
    """An order named ``name`` (``customer/reference``), with the tests' identity secret."""
    parsed = OrderName.parse(name)
    return Order.create(parsed, aggregate_id=TEST_IDENTITY.aggregate_id(parsed), **options)  # type: ignore[arg-type]


def report() -> ReportRef:
    sha = hashlib.sha256(b"report").hexdigest()
    return ReportRef(key=f"reports/{sha[:2]}/{sha}", sha256=sha, size=10, sku_count=1, item_count=10, quantity=20)


def test_counters_follow_the_batches() -> None:
    order = new_order("c-1/o-1")
    assert order.add_batch(ref("b1", 10, {"EUR": 500}))
    assert order.add_batch(ref("b2", 5, {"EUR": 100, "USD": 7}))
    assert (order.item_count, order.batch_count, order.quantity) == (15, 2, 30)
    assert order.totals == {"EUR": 600, "USD": 7}
    assert order.summary().version == 3


def test_a_batch_id_is_applied_at_most_once() -> None:
    order = new_order("c-1/o-1")
    assert order.add_batch(ref("b1")) is True
    assert order.add_batch(ref("b1")) is False
    assert (order.batch_count, order.item_count, len(order.pending_events)) == (1, 10, 2)


def test_no_additions_after_submit_or_cancel() -> None:
    order = new_order("c-1/o-1")
    order.add_batch(ref("b1"))
    assert order.submit() and not order.submit()  # a repeat is a no-op
    with pytest.raises(OrderClosedError, match="'c-1/o-1' is submitted: cannot add batch 'b2'"):
        order.add_batch(ref("b2"))
    assert order.add_batch(ref("b1")) is False  # a repeat of an applied batch is still fine
    with pytest.raises(OrderClosedError, match="cannot cancel"):
        order.cancel("too late")

    cancelled = new_order("c-1/o-2")
    cancelled.cancel("no")
    with pytest.raises(OrderClosedError, match="cancelled: cannot submit"):
        cancelled.submit()


def test_fulfillment_only_after_submit_and_once() -> None:
    order = new_order("c-1/o-1")
    order.add_batch(ref("b1"))
    with pytest.raises(OrderClosedError, match="cannot complete fulfillment"):
        order.complete_fulfillment(report())
    order.submit()
    assert order.complete_fulfillment(report()) is True
    assert order.complete_fulfillment(report()) is False
    other = dataclasses.replace(report(), sha256="f" * 64, key="reports/ff/" + "f" * 64)
    with pytest.raises(OrderConflictError, match="another report"):
        order.complete_fulfillment(other)
    assert order.status == "fulfilled" and order.closed_at is not None


def test_rejections_are_recorded_once_and_never_for_applied_batches() -> None:
    order = new_order("c-1/o-1")
    order.add_batch(ref("b1"))
    assert order.reject_batch("b2", "hash mismatch") is True
    assert order.reject_batch("b2", "hash mismatch") is False
    assert order.reject_batch("b1", "late duplicate") is False
    assert order.rejected_batch_ids == {"b2": "hash mismatch"}


def test_invalid_identifiers_and_refs_are_refused() -> None:
    with pytest.raises(InvalidIdentifierError):
        new_order("c-1/bad id")
    order = new_order("c-1/o-1")
    with pytest.raises(InvalidRefError):
        order.add_batch(dataclasses.replace(ref("b1"), item_count=0))


def test_a_batch_fulfillment_cannot_read_is_recorded_once_with_its_items() -> None:
    order = new_order("c-1/o-1")
    order.add_batch(ref("b1", 10))
    order.add_batch(ref("b2", 5))
    with pytest.raises(OrderClosedError, match="is open: cannot reject batch 'b1' at fulfillment"):
        order.reject_unfulfillable_batch("b1", "blob gone", "k", 10)  # only a submitted order is fulfilled
    order.submit()
    with pytest.raises(OrderConflictError, match="has no batch 'b9'"):
        order.reject_unfulfillable_batch("b9", "blob gone", "k", 1)
    assert order.reject_unfulfillable_batch("b1", "blob gone", "k", 10) is True
    assert order.reject_unfulfillable_batch("b1", "blob gone", "k", 10) is False
    summary = order.summary()
    assert (summary.item_count, summary.batch_count, summary.rejected_batches, summary.rejected_items) == (15, 2, 1, 10)
    rejected = order.pending_events[-1]
    assert isinstance(rejected, Order.BatchRejected)
    assert (rejected.code, rejected.at_fulfillment, rejected.item_count) == ("unreadable", True, 10)


def test_a_fulfillment_failure_closes_the_order_as_failed() -> None:
    order = new_order("c-1/o-1")
    order.add_batch(ref("b1"))
    with pytest.raises(OrderClosedError, match="is open: cannot record a fulfillment failure"):
        order.fail_fulfillment("boom")
    order.submit()
    assert order.fail_fulfillment("boom") is True
    assert order.fail_fulfillment("boom") is False
    assert (order.status, order.failure_reason, order.closed_at is not None) == ("failed", "boom", True)
    assert order.submit() is False  # a repeat, not an error
    with pytest.raises(OrderClosedError, match="is failed: cannot add batch"):
        order.add_batch(ref("late"))
    with pytest.raises(OrderClosedError, match="is failed: cannot complete fulfillment"):
        order.complete_fulfillment(report())


def test_a_failed_order_is_retried_or_cancelled_by_an_operator() -> None:
    order = new_order("c-1/o-1")
    order.add_batch(ref("b1"))
    order.add_batch(ref("b2"))
    order.submit()
    order.reject_unfulfillable_batch("b2", "blob gone", ref("b2").key, 10)
    order.fail_fulfillment("none readable")
    with pytest.raises(OrderClosedError, match="is open: cannot retry fulfillment"):
        new_order("c-1/o-2").retry_fulfillment("x")
    assert order.retry_fulfillment("blob restored") is True
    assert order.retry_fulfillment("again") is False  # submitted again already: a repeat
    assert (order.status, order.failure_reason, order.closed_at, order.fulfillment_retries) == ("submitted", None, None, 1)
    # The batches fulfillment could not read are read again; add-time rejections stay.
    assert (order.rejected_items, order.rejected_batch_ids) == (0, {})
    order.fail_fulfillment("still broken")
    assert order.cancel("given up") is True
    assert (order.status, order.cancel_reason) == ("cancelled", "given up")
    with pytest.raises(OrderClosedError, match="is cancelled: cannot retry fulfillment"):
        order.retry_fulfillment("too late")


def test_a_batch_past_the_order_bounds_is_refused_and_counters_stay_exact() -> None:
    from bulkorder.domain.errors import OrderLimitError
    from bulkorder.domain.limits import MAX_ORDER_TOTAL

    order = new_order("c-1/o-1")
    assert order.add_batch(ref("b1", 10, {"EUR": MAX_ORDER_TOTAL - 5}))
    with pytest.raises(OrderLimitError, match=r"EUR total would be 1000000000000000095 minor units, above the limit"):
        order.add_batch(ref("b2", 1, {"EUR": 100}))
    assert order.add_batch(ref("b3", 1, {"EUR": 5}))
    assert order.totals == {"EUR": MAX_ORDER_TOTAL}


def test_changes_via_the_outbox_are_marked() -> None:
    db_first = new_order("c-1/o-1", via_outbox=True)
    db_first.add_batch(ref("b1"), via_outbox=True)
    db_first.submit(via_outbox=True)
    workflow_first = new_order("c-1/o-2")
    workflow_first.add_batch(ref("b1"))
    workflow_first.cancel("no")
    assert [(type(e).__name__, e.via_outbox) for e in db_first.pending_events] == [
        ("Created", True), ("ItemsAdded", True), ("Submitted", True),
    ]
    assert [e.via_outbox for e in workflow_first.pending_events] == [False, False, False]
    assert db_first.via_outbox and not workflow_first.via_outbox
