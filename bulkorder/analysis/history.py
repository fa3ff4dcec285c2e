"""An order's history as analysts read it: one record per event, and instants in time.

Pure functions over ``Order`` events (no I/O): the event store hands them the events, the
CLI and the export print what they return. Nothing here touches items: an ``ItemsAdded``
event is described by its :class:`~bulkorder.domain.refs.BatchRef`'s counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any, Iterable, Iterator
from uuid import UUID

from bulkorder.domain.errors import BulkorderError, OrderError
from bulkorder.domain.order import Order
from bulkorder.domain.order_counters import RunningCounts, count_event
from bulkorder.domain.refs import BatchRef, ReportRef

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class VersionOutOfRangeError(OrderError, ValueError):
    """A version the order never had."""

    def __init__(self, order_id: str, version: int, latest: int):
        self.order_id = order_id
        self.version = version
        self.latest = latest
        super().__init__(f"order {order_id!r} has versions 1 to {latest}: there is no version {version}")


class BeforeCreationError(OrderError, ValueError):
    """An instant before the order existed."""

    def __init__(self, order_id: str, at: datetime, created_at: datetime):
        self.order_id = order_id
        self.at = at
        self.created_at = created_at
        super().__init__(
            f"order {order_id!r} did not exist at {at.isoformat()}: it was created at {created_at.isoformat()}"
        )


class InvalidInstantError(BulkorderError, ValueError):
    """Text that is not an ISO 8601 date or date-time."""


def parse_instant(text: str) -> datetime:
    """An ISO 8601 date or date-time as an aware UTC datetime.

    ``2024-05-01T12:30:00+02:00`` and ``...Z`` keep their offset; a date-time without one
    is taken as UTC, and a bare date as midnight UTC at its start.
    """
    value = text.strip()
    try:
        if len(value) == 10:
            parsed = datetime.combine(date.fromisoformat(value), time(0), tzinfo=timezone.utc)
        else:
            parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        raise InvalidInstantError(
            f"{text!r} is not an ISO 8601 date or date-time (e.g. 2024-05-01 or 2024-05-01T12:30:00Z)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def to_micros(instant: datetime) -> int:
    """Microseconds since the Unix epoch (how the time index stores instants)."""
    delta = instant - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    seconds, micro = divmod(micros, 1_000_000)
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=micro)


def event_type(event: object) -> str:
    return type(event).__qualname__.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class EventRecord:
    """One line of an order's history: what happened, when, and the running item count."""

    version: int
    type: str
    timestamp: datetime
    #: The batch an ``ItemsAdded`` or ``BatchRejected`` event names, else ``None``.
    batch_id: str | None
    #: Items this event added to the order (the batch's count for ``ItemsAdded``, else 0).
    items: int
    #: The order's item count once this event applied.
    item_count: int
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "type": self.type,
            "timestamp": self.timestamp.isoformat(),
            "batch_id": self.batch_id,
            "items": self.items,
            "item_count": self.item_count,
            "detail": self.detail,
        }


def describe_events(events: Iterable[Any], item_count: int = 0) -> Iterator[EventRecord]:
    """An :class:`EventRecord` per event; ``item_count`` is the count before the first one."""
    counts = RunningCounts(item_count=item_count)
    for event in events:
        count_event(counts, event)
        batch_id: str | None = None
        items = 0
        detail = ""
        if isinstance(event, Order.ItemsAdded):
            batch_id, items = event.batch.batch_id, event.batch.item_count
            detail = f"quantity {event.batch.quantity}"
        elif isinstance(event, Order.BatchRejected):
            batch_id, detail = event.batch_id, f"{event.code}: {event.reason}"
        elif isinstance(event, Order.Created):
            detail = f"customer {event.customer_id}"
        elif isinstance(event, Order.Cancelled):
            detail = event.reason
        elif isinstance(event, Order.FulfillmentCompleted):
            detail = f"report {event.report.key} ({event.report.item_count} items, {event.report.sku_count} SKUs)"
        elif isinstance(event, (Order.FulfillmentFailed, Order.FulfillmentRetried)):
            detail = event.reason
        elif isinstance(event, Order.ItemsPurged):
            detail = f"items purged ({event.batches} batches): {event.reason}"
        elif isinstance(event, Order.OrderErased):
            shredded = "data key destroyed" if event.key_destroyed else "no data key to destroy"
            detail = f"erased by {event.by} ({shredded}): {event.reason}"
        yield EventRecord(
            version=event.originator_version,
            type=event_type(event),
            timestamp=event.timestamp,
            batch_id=batch_id,
            items=items,
            item_count=counts.item_count,
            detail=detail,
        )


def _plain(value: Any) -> Any:
    if isinstance(value, (BatchRef, ReportRef)):
        # Metadata only: a ref never holds items. (vars() not asdict(): 5x faster, flat fields.)
        return {**vars(value), "totals": dict(value.totals)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def event_document(event: Any, position: int, order_id: str) -> dict[str, Any]:
    """One event as a JSON-ready dict for the export: where it is, whose, and its fields."""
    document: dict[str, Any] = {
        "position": position,
        "order_id": order_id,
        "aggregate_id": str(event.originator_id),
        "version": event.originator_version,
        "type": event_type(event),
        "class_version": getattr(type(event), "class_version", 1),
    }
    for name, value in vars(event).items():
        if name not in ("originator_id", "originator_version", "originator_topic"):
            document[name] = _plain(value)
    return document
