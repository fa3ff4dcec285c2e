"""The orders application: idempotent recording, concurrency, snapshots, reads."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bulkorder.domain.application import SNAPSHOT_INTERVAL, Orders
from bulkorder.domain.errors import OrderAlreadyExistsError, OrderCreateConflictError, OrderNotFoundError
from bulkorder.domain.identity import OrderName, legacy_aggregate_id, request_digest
from bulkorder.domain.refs import BatchRef
from bulkorder.domain.summary import OrderChange, Rejection
from tests.domain.test_order import ref, report
from tests.fixtures.orders import sqlite_env


@pytest.fixture
def orders(tmp_path: Path) -> Orders:
    return Orders(env=sqlite_env(tmp_path / "events.sqlite"))


def stored_events(orders: Orders, order_id: str) -> list[str]:
    return [type(e).__name__ for e in orders.events.get(orders.aggregate_id(order_id))]


def test_the_same_change_applied_twice_is_recorded_once(orders: Orders) -> None:
    change = OrderChange("c-1/o-1", "c-1", create=True, batches=[ref("b1"), ref("b2")], rejections=[Rejection("b3", "bad")])
    first = orders.record(change)
    second = orders.record(change)  # a create of an existing order: its retry, nothing applied
    third = orders.record(dataclasses.replace(change, create=False))
    assert (first.new_events, first.applied_batch_ids) == (4, ["b1", "b2"])
    assert (second.new_events, second.existing) == (0, True)
    assert (third.new_events, third.applied_batch_ids, third.duplicate_batch_ids) == (0, [], ["b1", "b2"])
    assert stored_events(orders, "c-1/o-1") == ["Created", "ItemsAdded", "ItemsAdded", "BatchRejected"]
    assert second.summary == first.summary


def test_submit_and_fulfillment_repeat_harmlessly(orders: Orders) -> None:
    orders.record(OrderChange("c-1/o-1", "c-1", create=True, batches=[ref("b1")]))
    for _ in range(2):
        orders.record(OrderChange("c-1/o-1", batches=[ref("b1")], submit=True))
        orders.record(OrderChange("c-1/o-1", report=report()))
    assert stored_events(orders, "c-1/o-1") == ["Created", "ItemsAdded", "Submitted", "FulfillmentCompleted"]
    assert orders.summary("c-1/o-1").status == "fulfilled"


def create(name: str, refs: list[BatchRef] = (), key: str = "", **options: object) -> OrderChange:  # type: ignore[assignment]
    """The change ``OrderClient.create`` makes the workflow record (digest and all)."""
    parsed = OrderName.parse(name)
    return OrderChange(
        str(parsed), parsed.customer, create=True, batches=list(refs),
        request_digest=request_digest(parsed, [(r.batch_id, r.sha256) for r in refs], key),
        initial_batch_ids=[r.batch_id for r in refs], idempotency_key=key, **options,  # type: ignore[arg-type]
    )


def test_two_customers_may_use_one_reference(orders: Orders) -> None:
    orders.record(create("acme/PO-1001", [ref("b1")]))
    orders.record(create("alice@example.com/PO-1001", [ref("b2"), ref("b3")]))
    assert orders.summary("acme/PO-1001").batch_count == 1
    assert orders.summary("alice@example.com/PO-1001").batch_count == 2
    assert orders.aggregate_id("acme/PO-1001") != orders.aggregate_id("alice@example.com/PO-1001")
    with pytest.raises(OrderNotFoundError):
        orders.summary("bob/PO-1001")


def test_a_retried_create_returns_the_order_and_records_nothing(orders: Orders) -> None:
    first = orders.record(create("acme/PO-1", [ref("b1")]))
    orders.record(OrderChange("acme/PO-1", submit=True))
    again = orders.record(create("acme/PO-1", [ref("b1")]))
    assert (again.existing, again.new_events) == (True, 0)
    assert again.summary.status == "submitted" and again.summary.version == first.summary.version + 1
    # With an idempotency key, the key is the request: its batches are not added again.
    orders.record(create("acme/PO-2", [ref("k1")], key="req-7"))
    keyed = orders.record(create("acme/PO-2", [ref("k2")], key="req-7"))
    assert keyed.existing and keyed.summary.batch_count == 1


@pytest.mark.parametrize(
    ("retry", "difference"),
    [
        (create("acme/PO-1", [ref("b1"), ref("b9")]), "batches not in the original request: 'b9'"),
        (create("acme/PO-1", []), "batches of the original request missing: 'b1'"),
        (create("acme/PO-1", [ref("b1")], key="k"), "carries an idempotency key; the order was created without"),
    ],
)
def test_a_different_create_for_an_existing_name_is_a_conflict_naming_the_difference(
    orders: Orders, retry: OrderChange, difference: str
) -> None:
    orders.record(create("acme/PO-1", [ref("b1")]))
    with pytest.raises(OrderCreateConflictError, match=difference) as refused:
        orders.record(retry)
    assert isinstance(refused.value, OrderAlreadyExistsError)
    assert [type(e).__name__ for e in orders.events.get(orders.aggregate_id("acme/PO-1"))] == ["Created", "ItemsAdded"]


def test_the_created_event_records_the_request(orders: Orders) -> None:
    orders.record(create("Müller-GmbH/PO-1", [ref("b1")], key="k-1"))
    order = orders.get_order("Mu\u0308ller-GmbH/PO-1")  # NFD spelling: the same customer
    assert (order.order_id, order.customer_id, order.initial_batch_ids, order.idempotency_key) == (
        "Müller-GmbH/PO-1", "Müller-GmbH", ("b1",), "k-1",
    )
    assert order.request_digest == create("Müller-GmbH/PO-1", key="k-1").request_digest


def test_orders_from_before_identities_are_found_by_customer_and_reference(orders: Orders) -> None:
    # A 0.x order: bare order ID, legacy aggregate ID (what old workflows still record).
    orders.record(OrderChange("o-old", "acme", create=True, batches=[ref("b1")]))
    assert orders.aggregate_id("acme/o-old") == legacy_aggregate_id("o-old")
    assert orders.summary("acme/o-old").order_id == "acme/o-old"
    with pytest.raises(OrderNotFoundError):
        orders.summary("other/o-old")  # another customer's reference is not this order
    with pytest.raises(OrderCreateConflictError, match="created before create requests were recorded"):
        orders.record(create("acme/o-old", [ref("b1")]))
    # A new customer may use the reference: it is another order.
    orders.record(create("other/o-old"))
    assert orders.summary("other/o-old").batch_count == 0


def test_a_new_orders_creation_reads_one_query_per_candidate_id(orders: Orders, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its name's aggregate ID and the 0.x one are each asked for any event; neither is
    read whole (a snapshot query, then an events query) when it has none."""
    assert orders.snapshots is not None
    reads: list[str] = []
    for label, recorder in (("events", orders.recorder), ("snapshots", orders.snapshots.recorder)):
        select = recorder.select_events
        monkeypatch.setattr(recorder, "select_events", lambda *a, _s=select, _l=label, **k: reads.append(_l) or _s(*a, **k))
    orders.record(create("acme/PO-7", [ref("b1")]))
    assert reads == ["events", "events"]
    reads.clear()
    retry = orders.record(create("acme/PO-7", [ref("b1")]))  # exists: read whole, recorded nothing
    assert retry.existing and "snapshots" in reads
    assert stored_events(orders, "acme/PO-7") == ["Created", "ItemsAdded"]


def test_unknown_order(orders: Orders) -> None:
    with pytest.raises(OrderNotFoundError, match="'c-1/nope' does not exist"):
        orders.record(OrderChange("c-1/nope", batches=[ref("b1")]))
    with pytest.raises(OrderNotFoundError):
        orders.summary("c-1/nope")
    with pytest.raises(OrderNotFoundError):
        list(orders.iter_batch_refs("c-1/nope"))
    assert not orders.exists("c-1/nope")


def test_two_writers_racing_record_each_batch_once(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path / "shared.sqlite")
    writer_a, writer_b = Orders(env=env), Orders(env=env)
    writer_a.record(OrderChange("c-1/o-1", "c-1", create=True))
    # B loads the order, A saves a batch in between, then B saves: B's first attempt
    # conflicts on the aggregate version and its retry sees A's batch as a duplicate.
    stale = writer_b.get_order("c-1/o-1")
    writer_a.record(OrderChange("c-1/o-1", batches=[ref("b1")]))
    original_get = writer_b.repository.get
    calls = {"n": 0}

    def get_stale_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return stale if calls["n"] == 1 else original_get(*args, **kwargs)

    writer_b.repository.get = get_stale_once  # type: ignore[method-assign]
    outcome = writer_b.record(OrderChange("c-1/o-1", batches=[ref("b1"), ref("b2")]))
    assert calls["n"] == 2
    assert (outcome.applied_batch_ids, outcome.duplicate_batch_ids) == (["b2"], ["b1"])
    assert stored_events(writer_a, "c-1/o-1") == ["Created", "ItemsAdded", "ItemsAdded"]


def test_snapshots_bound_the_rebuild_and_old_versions_stay_readable(orders: Orders) -> None:
    orders.record(OrderChange("c-1/o-1", "c-1", create=True))
    for start in range(0, 250, 50):
        orders.record(OrderChange("c-1/o-1", batches=[ref(f"b{i}") for i in range(start, start + 50)]))
    snapshots = list(orders.snapshots.get(orders.aggregate_id("c-1/o-1")))  # type: ignore[union-attr]
    assert [s.originator_version for s in snapshots] == [SNAPSHOT_INTERVAL, 2 * SNAPSHOT_INTERVAL]
    assert orders.summary("c-1/o-1").batch_count == 250
    assert orders.summary("c-1/o-1", version=11).batch_count == 10
    assert [r.batch_id for r in orders.iter_batch_refs("c-1/o-1", up_to_version=4)] == ["b0", "b1", "b2"]


def test_outbox_changes_are_marked_and_fulfillment_outcomes_recorded(orders: Orders) -> None:
    orders.record(OrderChange("c-1/o-1", "c-1", create=True, batches=[ref("b1"), ref("b2", 5)], via_outbox=True))
    orders.record(OrderChange("c-1/o-1", submit=True, via_outbox=True))
    unreadable = Rejection("b2", "blob gone", ref("b2").key, at_fulfillment=True, item_count=5)
    done = orders.record(OrderChange("c-1/o-1", rejections=[unreadable], report=report()))
    again = orders.record(OrderChange("c-1/o-1", rejections=[unreadable], report=report()))
    assert (done.new_events, again.new_events) == (2, 0)
    assert stored_events(orders, "c-1/o-1") == [
        "Created", "ItemsAdded", "ItemsAdded", "Submitted", "BatchRejected", "FulfillmentCompleted",
    ]
    assert [e.via_outbox for e in list(orders.events.get(orders.aggregate_id("c-1/o-1")))[:4]] == [True] * 4
    summary = orders.summary("c-1/o-1")
    assert (summary.status, summary.item_count, summary.rejected_items) == ("fulfilled", 15, 5)
    assert orders.get_order("c-1/o-1").via_outbox

    orders.record(OrderChange("c-1/o-2", "c-1", create=True, batches=[ref("b1")]))
    orders.record(OrderChange("c-1/o-2", submit=True))
    orders.record(OrderChange("c-1/o-2", fulfillment_failure="no batch could be read"))
    failed = orders.get_order("c-1/o-2")
    assert (failed.status, failed.failure_reason, failed.via_outbox) == ("failed", "no batch could be read", False)
