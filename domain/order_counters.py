"""How each event changes an order's counters: the one place that says so.

An order's counters (items, batches, quantity, per-currency totals, rejected batches and
items, status) are kept in four places: the ``Order`` aggregate, the analysts' read model
(:func:`bulkorder.analysis.read_model.project_summary`), the workflow's summary of what it
holds (recorded counters plus pending refs) and the history listing (``describe_events``).
They all count with the rules below, so a new event or counter is taught here once.

Pure and standard-library only (plus :mod:`bulkorder.domain.refs` and the statuses), so the
workflow sandbox imports it: nothing here does I/O or reads a clock. Events are known by
their class name (``Order.ItemsAdded`` is ``"ItemsAdded"``) because the aggregate imports
this module, not the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from bulkorder.domain.refs import BatchRef, add_totals
from bulkorder.domain.summary import OrderStatus

#: The status an order has after each event that changes it (``Order.<name>``).
STATUS_AFTER: dict[str, str] = {
    "Created": OrderStatus.OPEN,
    "Submitted": OrderStatus.SUBMITTED,
    "FulfillmentCompleted": OrderStatus.FULFILLED,
    "FulfillmentFailed": OrderStatus.FAILED,
    "FulfillmentRetried": OrderStatus.SUBMITTED,
    "Cancelled": OrderStatus.CANCELLED,
}


#: Events that change neither a counter nor the status: the end of an order's data
#: (retention purged its items; it was erased). Its counters stay what they were.
COUNTERS_UNCHANGED: frozenset[str] = frozenset({"ItemsPurged", "OrderErased"})


class BatchClaims(Protocol):
    """What a batch adds to: the counters its ref claims (the aggregate counts batches by ID)."""

    item_count: int
    quantity: int
    totals: dict[str, int]


class OrderCounts(BatchClaims, Protocol):
    """The counters of an order summary (``OrderSummary``, ``OrderSummaryRow``, :class:`RunningCounts`)."""

    status: str
    batch_count: int
    rejected_batches: int


def add_batch_claims(counts: BatchClaims, batch: BatchRef) -> None:
    """An added batch's items, quantity and totals, counted into ``counts`` (in place)."""
    counts.item_count += batch.item_count
    counts.quantity += batch.quantity
    add_totals(counts.totals, batch.totals)


def add_batch(counts: OrderCounts, batch: BatchRef) -> None:
    """One more batch (``ItemsAdded``, or a ref the workflow holds but has not recorded yet)."""
    add_batch_claims(counts, batch)
    counts.batch_count += 1


def add_rejections(counts: OrderCounts, batches: int = 1) -> None:
    """Batches refused (``BatchRejected``, or rejections the workflow holds but has not
    recorded yet): each counts one rejected batch, whatever its reason."""
    counts.rejected_batches += batches


def rejected_items(event: Any) -> int:
    """Items a ``BatchRejected`` takes out of fulfillment: only a batch the order had added
    and fulfillment could not read; a batch refused when added never counted."""
    return event.item_count if event.at_fulfillment else 0


def status_after(event: Any) -> str:
    """The order's status after ``event``, one of those in :data:`STATUS_AFTER`."""
    return STATUS_AFTER[type(event).__name__]


def count_event(counts: OrderCounts, event: Any) -> None:
    """Apply one ``Order`` event to a summary's counters (in place).

    ``FulfillmentRetried`` reads the batches fulfillment could not read again: the
    aggregate, which knows its rejections by batch ID, forgets those, and a summary that
    only counts them takes out the number the event carries (``reread_batches``; 0 on
    events from before it did, whose rejections stay counted).
    """
    kind = type(event).__name__
    if kind == "ItemsAdded":
        add_batch(counts, event.batch)
    elif kind == "BatchRejected":
        add_rejections(counts)
    elif kind == "FulfillmentRetried":
        counts.rejected_batches = max(0, counts.rejected_batches - getattr(event, "reread_batches", 0))
    status = STATUS_AFTER.get(kind)
    if status is not None:
        counts.status = status


@dataclass
class RunningCounts:
    """Counters built up event by event, where no summary is kept (the history listing)."""

    status: str = OrderStatus.OPEN
    item_count: int = 0
    batch_count: int = 0
    quantity: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    rejected_batches: int = 0
