"""What the event store says about blobs: every order's status, and every key a recorded
event references, read from the notification log (the whole log, page by page).

Garbage collection, retention and erasure read it twice, on purpose: first the orders
(:func:`index_orders`: which are open, closed when, purged, erased), then, after the open
workflows' pending refs were read, every key a recorded event of a non-purged order
references (:func:`recorded_roots`). The log only grows, so a ref recorded at any time
before that second read is in it.

Memory: one small record per order, and one entry per referenced blob (32 bytes of
digest for content-addressed keys).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator
from uuid import UUID

from eventsourcing.utils import get_topic

from bulkorder.domain.application import Orders
from bulkorder.domain.order import Order
from bulkorder.domain.order_counters import STATUS_AFTER
from bulkorder.domain.refs import BatchRef
from bulkorder.domain.summary import OrderStatus
from bulkorder.storage.blob_store import expected_sha256

#: Notifications read per request.
PAGE_SIZE = 1_000

RootId = bytes | str


def root_id(key: str) -> RootId:
    """How a key is remembered: the 32 bytes of its sha-256 for a content-addressed key
    (identical content is the same blob, whatever its prefix), else the key itself."""
    digest = expected_sha256(key)
    return bytes.fromhex(digest) if digest is not None else key


@dataclass
class OrderRecord:
    """One order as its events tell it (no refs kept: they are read again when needed)."""

    order_id: str
    status: str = OrderStatus.OPEN
    closed_at: datetime | None = None
    purged_at: datetime | None = None
    erased_at: datetime | None = None


@dataclass
class OrderIndex:
    orders: dict[UUID, OrderRecord] = field(default_factory=dict)
    #: The last notification read.
    position: int = 0

    def open_order_ids(self) -> list[str]:
        """Orders whose recorded status is still open: only their workflows can hold refs
        not yet recorded (an order is recorded submitted or cancelled only once its
        workflow has recorded every ref it held)."""
        return sorted(r.order_id for r in self.orders.values() if r.status == OrderStatus.OPEN)

    def purged(self) -> set[UUID]:
        return {aggregate for aggregate, r in self.orders.items() if r.purged_at is not None}

    def by_order_id(self, order_id: str) -> tuple[UUID, OrderRecord] | None:
        for aggregate, record in self.orders.items():
            if record.order_id == order_id:
                return aggregate, record
        return None


def _events(orders: Orders, after: int = 0) -> Iterator[tuple[int, object]]:
    to_domain_event = orders.mapper.to_domain_event
    position = after
    while True:
        page = orders.recorder.select_notifications(start=position, limit=PAGE_SIZE, inclusive_of_start=False)
        if not page:
            return
        for notification in page:
            yield notification.id, to_domain_event(notification)
        position = page[-1].id


_CLOSING = (Order.FulfillmentCompleted, Order.FulfillmentFailed, Order.Cancelled)


def index_orders(orders: Orders) -> OrderIndex:
    """Every order's status, when it closed, and whether its items were purged or erased."""
    index = OrderIndex()
    for position, event in _events(orders):
        index.position = position
        aggregate = event.originator_id  # type: ignore[attr-defined]
        if isinstance(event, Order.Created):
            index.orders[aggregate] = OrderRecord(order_id=event.order_id)
            continue
        record = index.orders.get(aggregate)
        if record is None:
            continue  # not an order's event
        status = STATUS_AFTER.get(type(event).__name__)  # the domain's one rule
        if status is not None:
            record.status = status
            record.closed_at = event.timestamp if isinstance(event, _CLOSING) else None  # type: ignore[attr-defined]
        if isinstance(event, Order.ItemsPurged):
            record.purged_at = event.timestamp
        elif isinstance(event, Order.OrderErased):
            record.erased_at = event.timestamp
            record.purged_at = record.purged_at or event.timestamp
    return index


@dataclass
class RecordedRoots:
    """Keys referenced by recorded events of orders not purged (the roots), and the
    report keys of purged orders (gc may delete those no other order references)."""

    roots: set[RootId] = field(default_factory=set)
    purged_reports: set[RootId] = field(default_factory=set)
    events_read: int = 0


def recorded_roots(orders: Orders, purged: set[UUID]) -> RecordedRoots:
    """Every batch and report key a recorded event of a non-purged order references.
    An order purged after ``purged`` was computed counts as not purged: more is kept."""
    found = RecordedRoots()
    for _, event in _events(orders):
        found.events_read += 1
        key: str | None = None
        if isinstance(event, Order.ItemsAdded):
            key = event.batch.key
        elif isinstance(event, Order.FulfillmentCompleted):
            key = event.report.key
            if event.originator_id in purged:
                found.purged_reports.add(root_id(key))
                continue
        if key is not None and event.originator_id not in purged:  # type: ignore[attr-defined]
            found.roots.add(root_id(key))
    return found


def purged_orders(orders: Orders) -> set[UUID]:
    """The orders whose items were purged or erased: only those events are read (the
    notification log filtered by topic), so it is cheap whatever the log's size."""
    topics = [get_topic(Order.ItemsPurged), get_topic(Order.OrderErased)]
    purged: set[UUID] = set()
    position = 0
    while True:
        page = orders.recorder.select_notifications(
            start=position, limit=PAGE_SIZE, topics=topics, inclusive_of_start=False
        )
        if not page:
            return purged
        purged.update(notification.originator_id for notification in page)
        position = page[-1].id


def order_keys(orders: Orders, aggregate: UUID) -> Iterator[tuple[str, int]]:
    """Every blob key (batches, then the report) the order's events reference, with the
    size its ref states."""
    for event in orders.events.get(aggregate):
        if isinstance(event, Order.ItemsAdded):
            batch: BatchRef = event.batch
            yield batch.key, batch.size
        elif isinstance(event, Order.FulfillmentCompleted):
            yield event.report.key, event.report.size
