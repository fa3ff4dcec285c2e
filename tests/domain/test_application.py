"""The orders application: idempotent recording, concurrency, snapshots, reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkorder.domain.application import SNAPSHOT_INTERVAL, Orders
from bulkorder.domain.errors import OrderConflictError, OrderNotFoundError
from bulkorder.domain.identifiers import aggregate_id_for
from bulkorder.domain.summary import OrderChange, Rejection
from tests.domain.test_order import ref, report
from tests.fixtures.orders import sqlite_env


@pytest.fixture
def orders(tmp_path: Path) -> Orders:
    return Orders(env=sqlite_env(tmp_path / "events.sqlite"))


def stored_events(orders: Orders, order_id: str) -> list[str]:
    return [type(e).__name__ for e in orders.events.get(aggregate_id_for(order_id))]


def test_the_same_change_applied_twice_is_recorded_once(orders: Orders) -> None:
    change = OrderChange("o-1", "c-1", create=True, batches=[ref("b1"), ref("b2")], rejections=[Rejection("b3", "bad")])
    first = orders.record(change)
    second = orders.record(change)
    assert (first.new_events, first.applied_batch_ids) == (4, ["b1", "b2"])
    assert (second.new_events, second.applied_batch_ids, second.duplicate_batch_ids) == (0, [], ["b1", "b2"])
    assert stored_events(orders, "o-1") == ["Created", "ItemsAdded", "ItemsAdded", "BatchRejected"]
    assert second.summary == first.summary


def test_submit_and_fulfillment_repeat_harmlessly(orders: Orders) -> None:
    orders.record(OrderChange("o-1", "c-1", create=True, batches=[ref("b1")]))
    for _ in range(2):
        orders.record(OrderChange("o-1", batches=[ref("b1")], submit=True))
        orders.record(OrderChange("o-1", report=report()))
    assert stored_events(orders, "o-1") == ["Created", "ItemsAdded", "Submitted", "FulfillmentCompleted"]
    assert orders.summary("o-1").status == "fulfilled"


def test_create_for_another_customer_conflicts(orders: Orders) -> None:
    orders.record(OrderChange("o-1", "c-1", create=True))
    with pytest.raises(OrderConflictError, match="already exists for customer 'c-1', not 'c-2'"):
        orders.record(OrderChange("o-1", "c-2", create=True))


def test_unknown_order(orders: Orders) -> None:
    with pytest.raises(OrderNotFoundError, match="'nope' does not exist"):
        orders.record(OrderChange("nope", batches=[ref("b1")]))
    with pytest.raises(OrderNotFoundError):
        orders.summary("nope")
    with pytest.raises(OrderNotFoundError):
        list(orders.iter_batch_refs("nope"))
    assert not orders.exists("nope")


def test_two_writers_racing_record_each_batch_once(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path / "shared.sqlite")
    writer_a, writer_b = Orders(env=env), Orders(env=env)
    writer_a.record(OrderChange("o-1", "c-1", create=True))
    # B loads the order, A saves a batch in between, then B saves: B's first attempt
    # conflicts on the aggregate version and its retry sees A's batch as a duplicate.
    stale = writer_b.get_order("o-1")
    writer_a.record(OrderChange("o-1", batches=[ref("b1")]))
    original_get = writer_b.repository.get
    calls = {"n": 0}

    def get_stale_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return stale if calls["n"] == 1 else original_get(*args, **kwargs)

    writer_b.repository.get = get_stale_once  # type: ignore[method-assign]
    outcome = writer_b.record(OrderChange("o-1", batches=[ref("b1"), ref("b2")]))
    assert calls["n"] == 2
    assert (outcome.applied_batch_ids, outcome.duplicate_batch_ids) == (["b2"], ["b1"])
    assert stored_events(writer_a, "o-1") == ["Created", "ItemsAdded", "ItemsAdded"]


def test_snapshots_bound_the_rebuild_and_old_versions_stay_readable(orders: Orders) -> None:
    orders.record(OrderChange("o-1", "c-1", create=True))
    for start in range(0, 250, 50):
        orders.record(OrderChange("o-1", batches=[ref(f"b{i}") for i in range(start, start + 50)]))
    snapshots = list(orders.snapshots.get(aggregate_id_for("o-1")))  # type: ignore[union-attr]
    assert [s.originator_version for s in snapshots] == [SNAPSHOT_INTERVAL, 2 * SNAPSHOT_INTERVAL]
    assert orders.summary("o-1").batch_count == 250
    assert orders.summary("o-1", version=11).batch_count == 10
    assert [r.batch_id for r in orders.iter_batch_refs("o-1", up_to_version=4)] == ["b0", "b1", "b2"]


def test_outbox_changes_are_marked_and_fulfillment_outcomes_recorded(orders: Orders) -> None:
    orders.record(OrderChange("o-1", "c-1", create=True, batches=[ref("b1"), ref("b2", 5)], via_outbox=True))
    orders.record(OrderChange("o-1", submit=True, via_outbox=True))
    unreadable = Rejection("b2", "blob gone", ref("b2").key, at_fulfillment=True, item_count=5)
    done = orders.record(OrderChange("o-1", rejections=[unreadable], report=report()))
    again = orders.record(OrderChange("o-1", rejections=[unreadable], report=report()))
    assert (done.new_events, again.new_events) == (2, 0)
    assert stored_events(orders, "o-1") == [
        "Created", "ItemsAdded", "ItemsAdded", "Submitted", "BatchRejected", "FulfillmentCompleted",
    ]
    assert [e.via_outbox for e in list(orders.events.get(aggregate_id_for("o-1")))[:4]] == [True] * 4
    summary = orders.summary("o-1")
    assert (summary.status, summary.item_count, summary.rejected_items) == ("fulfilled", 15, 5)
    assert orders.get_order("o-1").via_outbox

    orders.record(OrderChange("o-2", "c-1", create=True, batches=[ref("b1")]))
    orders.record(OrderChange("o-2", submit=True))
    orders.record(OrderChange("o-2", fulfillment_failure="no batch could be read"))
    failed = orders.get_order("o-2")
    assert (failed.status, failed.failure_reason, failed.via_outbox) == ("failed", "no batch could be read", False)
