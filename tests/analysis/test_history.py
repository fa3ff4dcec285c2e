"""Instants and event records as analysts see them (pure functions, no store)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bulkorder.analysis.history import InvalidInstantError, describe_events, event_document, from_micros, parse_instant, to_micros
from bulkorder.domain.order import Order
from bulkorder.analysis.read_model import ProjectionOrderError, project_summary
from bulkorder.domain.refs import BatchRef
from tests.domain.test_order import new_order

UTC = timezone.utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T12:30:00Z", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
        ("2024-05-01T12:30:00", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
        ("2024-05-01T14:30:00.000250+02:00", datetime(2024, 5, 1, 12, 30, 0, 250, tzinfo=UTC)),
    ],
)
def test_instants_are_read_as_utc(text: str, expected: datetime) -> None:
    assert parse_instant(text) == expected
    assert from_micros(to_micros(expected)) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01", "1714566600"])
def test_text_that_is_not_an_instant_is_refused_with_an_example(text: str) -> None:
    with pytest.raises(InvalidInstantError, match="is not an ISO 8601 date or date-time .e.g. 2024-05-01"):
        parse_instant(text)


def _ref(batch_id: str, items: int) -> BatchRef:
    sha = f"{items:064x}"
    return BatchRef(batch_id, f"batches/{sha[:2]}/{sha}", sha, 100, items, items * 2, {"EUR": items * 100})


def test_records_and_documents_describe_events_without_items() -> None:
    order = new_order("cust-1/hist-1")
    order.add_batch(_ref("b-1", 10))
    order.reject_batch("b-x", "order is submitted")
    order.add_batch(_ref("b-2", 5))
    order.submit()
    events = order.collect_events()
    records = list(describe_events(events))
    assert [(r.version, r.type, r.batch_id, r.items, r.item_count) for r in records] == [
        (1, "Created", None, 0, 0),
        (2, "ItemsAdded", "b-1", 10, 10),
        (3, "BatchRejected", "b-x", 0, 10),
        (4, "ItemsAdded", "b-2", 5, 15),
        (5, "Submitted", None, 0, 15),
    ]
    assert records[2].detail == "order_closed: order is submitted"
    document = event_document(events[1], position=42, order_id="hist-1")
    assert document["position"] == 42 and document["order_id"] == "hist-1" and document["version"] == 2
    assert document["batch"]["item_count"] == 10 and document["batch"]["totals"] == {"EUR": 1000}
    assert document["timestamp"] == events[1].timestamp.isoformat()

    row = None
    for event in events:
        row = project_summary(row, event)
    assert row is not None and (row.status, row.item_count, row.batch_count, row.rejected_batches) == ("submitted", 15, 2, 1)
    assert row.totals == {"EUR": 1500} and row.submitted_at == events[-1].timestamp
    with pytest.raises(ProjectionOrderError, match="arrived before the order's Created event"):
        project_summary(None, events[1])


def test_fulfillment_rejections_and_failures_are_described_and_projected() -> None:
    order = new_order("cust-1/hist-2", via_outbox=True)
    order.add_batch(_ref("b-1", 10), via_outbox=True)
    order.submit(via_outbox=True)
    order.reject_unfulfillable_batch("b-1", "unreadable at fulfillment: blob gone", "k", 10)
    order.fail_fulfillment("fulfillment failed: none of the order's 1 batches could be read")
    events = order.collect_events()
    records = list(describe_events(events))
    assert [r.type for r in records][-2:] == ["BatchRejected", "FulfillmentFailed"]
    assert records[-2].detail == "unreadable: unreadable at fulfillment: blob gone"
    assert records[-1].detail.startswith("fulfillment failed: none of")
    assert event_document(events[1], position=2, order_id="hist-2")["via_outbox"] is True

    row = None
    for event in events:
        row = project_summary(row, event)
    assert row is not None and (row.status, row.item_count, row.rejected_batches) == ("failed", 10, 1)
