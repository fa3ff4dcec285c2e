"""Historical streams stay readable: a ``BatchRejected`` stored in its v1 shape (before
``code`` existed) is read back through the upcasters, by the aggregate and by the analysts;
events stored before ``via_outbox`` existed read as not via the outbox."""

from __future__ import annotations

import dataclasses
import io
import json
from datetime import datetime, timezone

from eventsourcing.domain import Snapshot
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from bulkorder.domain.identifiers import aggregate_id_for
from bulkorder.domain.order import REJECTED_INVALID_REF, REJECTED_ORDER_CLOSED, Order, rejection_code
from bulkorder.domain.order_upcasts import OrderSnapshotDefaults
from bulkorder.domain.summary import OrderChange, Rejection
from tests.domain.test_order import new_order, ref, report
from tests.fixtures.analysts import AnalystStore, write_order


def test_a_v1_batch_rejected_event_is_upcast_when_read(analyst_store: AnalystStore) -> None:
    orders = analyst_store.orders
    write_order(analyst_store, "upcast-1", [2, 3])
    # Exactly what bulkorder wrote before BatchRejected had a version 2: no "code", no
    # "class_version" (eventsourcing writes it only from version 2 on).
    v1_state = {
        "timestamp": datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc),
        "batch_id": "old-batch",
        "reason": "order is cancelled",
        "key": "",
    }
    orders.recorder.insert_events(
        [
            StoredEvent(
                originator_id=aggregate_id_for("upcast-1"),
                originator_version=4,
                topic=get_topic(Order.BatchRejected),
                state=orders.mapper.transcoder.encode(v1_state),
            )
        ]
    )
    # A new rejection is written in the v2 shape.
    orders.record(OrderChange(order_id="upcast-1", rejections=[Rejection("new-batch", "invalid batch ref: size")]))

    old, new = list(orders.events.get(aggregate_id_for("upcast-1"), gt=3))
    assert isinstance(old, Order.BatchRejected) and old.code == REJECTED_ORDER_CLOSED
    assert old.reason == "order is cancelled" and old.timestamp == v1_state["timestamp"]
    assert new.code == REJECTED_INVALID_REF
    stored_new = orders.recorder.select_events(aggregate_id_for("upcast-1"), gt=4)[0]
    assert json.loads(stored_new.state)["class_version"] == 3

    order = orders.get_order("upcast-1")
    assert order.rejected_batch_ids == {"old-batch": "order is cancelled", "new-batch": "invalid batch ref: size"}
    assert order.summary().rejected_batches == 2 and order.summary().item_count == 5

    with analyst_store.analyst() as analyst:
        details = [r.detail for r in analyst.events("upcast-1") if r.type == "BatchRejected"]
        assert details == ["order_closed: order is cancelled", "invalid_ref: invalid batch ref: size"]
        out = io.BytesIO()
        analyst.export(out, since=3)
        exported = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["batch_id"], e["code"], e["class_version"]) for e in exported] == [
        ("old-batch", "order_closed", 3),
        ("new-batch", "invalid_ref", 3),
    ]
    assert not old.at_fulfillment and old.item_count == 0


def test_rejection_codes_follow_the_workflows_reasons() -> None:
    assert rejection_code("order is submitted") == REJECTED_ORDER_CLOSED
    assert rejection_code("invalid batch ref: batch x: sha256 must be 64 lower-case hex digits") == REJECTED_INVALID_REF
    assert rejection_code("something else") == "other"


def test_events_stored_before_via_outbox_existed_read_as_not_via_the_outbox(analyst_store: AnalystStore) -> None:
    orders = analyst_store.orders
    order_id = "upcast-2"
    aggregate_id = aggregate_id_for(order_id)
    at = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    # v1 shapes: no "via_outbox", no "class_version".
    v1_events = [
        (Order.Created, {"timestamp": at, "originator_topic": get_topic(Order), "order_id": order_id, "customer_id": "c"}),
        (Order.Submitted, {"timestamp": at}),
    ]
    orders.recorder.insert_events(
        [
            StoredEvent(
                originator_id=aggregate_id, originator_version=version, topic=get_topic(cls),
                state=orders.mapper.transcoder.encode(state),
            )
            for version, (cls, state) in enumerate(v1_events, start=1)
        ]
    )
    created, submitted = orders.events.get(aggregate_id)
    assert (created.via_outbox, submitted.via_outbox) == (False, False)
    order = orders.get_order(order_id)
    assert (order.via_outbox, order.status, order.rejected_items, order.failure_reason) == (False, "submitted", 0, None)


def snapshot_defaults() -> dict[str, object]:
    return {
        name: getattr(OrderSnapshotDefaults, name)
        for name in OrderSnapshotDefaults.__annotations__
    }


def test_every_attribute_only_events_set_has_a_snapshot_default() -> None:
    # A snapshot holds the attributes its order had: one set only by an event the order
    # had not had (retention, erasure) is missing from it and must default.
    new = new_order("c/snap-1")
    order = new_order("c/snap-2")
    order.add_batch(ref("b1"))
    order.submit()
    order.fail_fulfillment("blob gone")
    order.retry_fulfillment("restored")
    order.complete_fulfillment(report())
    order.purge_items("retention")
    order.erase("ops", "asked", key_destroyed=True)
    only_by_events = set(vars(order)) - set(vars(new))
    assert only_by_events and only_by_events <= set(snapshot_defaults())


def test_an_order_from_a_snapshot_without_the_later_attributes_reads_their_defaults() -> None:
    order = new_order("c/snap-3")
    order.add_batch(ref("b1"))
    snapshot = Snapshot.take(order)
    # As a snapshot taken before every later attribute existed stored it.
    older = dataclasses.replace(snapshot, state={k: v for k, v in snapshot.state.items() if k not in snapshot_defaults()})
    rebuilt = older.mutate(None)
    assert type(rebuilt) is Order
    assert {name: getattr(rebuilt, name) for name in snapshot_defaults()} == snapshot_defaults()
    assert rebuilt.summary() == order.summary()
    assert rebuilt.submit() and rebuilt.summary().status == "submitted"
