"""The end of an order's data: ``ItemsPurged`` (retention) and ``OrderErased`` (the right
to be forgotten), recorded idempotently through the orders application; old streams,
written before these events existed, read unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bulkorder.domain.application import Orders
from bulkorder.domain.errors import OrderClosedError, OrderErasedError
from bulkorder.domain.identifiers import aggregate_id_for
from bulkorder.domain.order import Order
from bulkorder.domain.summary import OrderChange
from tests.domain.test_order import ref, report
from tests.fixtures.orders import sqlite_env

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def orders(tmp_path: Path) -> Orders:
    return Orders(env=sqlite_env(tmp_path / "events.sqlite"))


def fulfilled(orders: Orders, order_id: str) -> None:
    orders.record(OrderChange(order_id, "c-1", create=True, batches=[ref("b1"), ref("b2")]))
    orders.record(OrderChange(order_id, submit=True))
    orders.record(OrderChange(order_id, report=report()))


def event_types(orders: Orders, order_id: str) -> list[str]:
    return [type(e).__name__ for e in orders.events.get(aggregate_id_for(order_id))]


def test_purging_is_recorded_once_and_keeps_the_counters(orders: Orders) -> None:
    fulfilled(orders, "o-1")
    before = orders.summary("o-1")
    assert orders.purge_items("o-1", "retention: closed before 30d") is True
    assert orders.purge_items("o-1", "retention again") is False
    order = orders.get_order("o-1")
    assert event_types(orders, "o-1")[-1] == "ItemsPurged" and event_types(orders, "o-1").count("ItemsPurged") == 1
    assert order.items_purged_at is not None and order.erased_at is None
    summary = orders.summary("o-1")
    assert (summary.item_count, summary.batch_count, summary.totals) == (before.item_count, before.batch_count, before.totals)


def test_an_order_still_being_fulfilled_is_never_purged(orders: Orders) -> None:
    orders.record(OrderChange("o-2", "c-1", create=True, batches=[ref("b1")], submit=True))
    with pytest.raises(OrderClosedError, match="submitted: cannot purge items"):
        orders.purge_items("o-2", "retention")
    assert "ItemsPurged" not in event_types(orders, "o-2")


def test_erasure_records_who_why_when_and_refuses_everything_after(orders: Orders) -> None:
    fulfilled(orders, "o-3")
    assert orders.erase("o-3", by="dpo", reason="GDPR art. 17 request 42", key_destroyed=False)
    assert not orders.erase("o-3", by="dpo", reason="again", key_destroyed=False)
    erased = [e for e in orders.events.get(aggregate_id_for("o-3")) if isinstance(e, Order.OrderErased)]
    assert len(erased) == 1
    assert (erased[0].by, erased[0].reason, erased[0].batches, erased[0].key_destroyed) == (
        "dpo", "GDPR art. 17 request 42", 2, False
    )
    order = orders.get_order("o-3")
    assert order.erased_at == erased[0].timestamp and order.items_purged_at == erased[0].timestamp
    with pytest.raises(OrderErasedError, match="'o-3' was erased at .*: cannot record a change"):
        orders.record(OrderChange("o-3", batches=[ref("b9")]))
    with pytest.raises(OrderErasedError, match="cannot purge items"):
        orders.purge_items("o-3", "retention")


@pytest.mark.parametrize("status_change", ["open", "submitted", "failed"])
def test_an_order_that_can_still_change_is_not_erased(orders: Orders, status_change: str) -> None:
    orders.record(OrderChange("o-4", "c-1", create=True, batches=[ref("b1")]))
    if status_change != "open":
        orders.record(OrderChange("o-4", submit=True))
    if status_change == "failed":
        orders.record(OrderChange("o-4", fulfillment_failure="disk on fire"))
    with pytest.raises(OrderClosedError, match="cancel it first"):
        orders.erase("o-4", by="dpo", reason="r", key_destroyed=False)
    assert "OrderErased" not in event_types(orders, "o-4")


def test_a_cancelled_order_can_be_erased(orders: Orders) -> None:
    orders.record(OrderChange("o-5", "c-1", create=True, batches=[ref("b1")], cancel_reason="changed my mind"))
    assert orders.erase("o-5", by="ops", reason="request", key_destroyed=True)
    assert orders.get_order("o-5").erased_by == "ops"


def test_old_event_streams_know_nothing_of_purges_and_still_read(tmp_path: Path) -> None:
    # An event store written by bulkorder 0.1.0, before ItemsPurged / OrderErased existed.
    db = tmp_path / "old.sqlite"
    shutil.copy(FIXTURES / "events-0.1.0.sqlite", db)
    orders = Orders(env=sqlite_env(db))
    ids = [e.order_id for e in _created_events(orders)]
    assert ids == ["o-fulfilled", "o-cancelled", "o-outbox"]
    for order_id in ids:
        order = orders.get_order(order_id)
        assert order.items_purged_at is None and order.erased_at is None and order.erased_by is None
    # A purge recorded on an old, closed order applies over its old events.
    assert orders.purge_items("o-fulfilled", "retention")
    assert orders.get_order("o-fulfilled").items_purged_at is not None
    with pytest.raises(OrderClosedError):
        orders.purge_items("o-outbox", "retention")  # still submitted


def _created_events(orders: Orders) -> list[Order.Created]:
    notifications = orders.recorder.select_notifications(start=1, limit=10_000)
    events = [orders.mapper.to_domain_event(n) for n in notifications]
    return [e for e in events if isinstance(e, Order.Created)]
