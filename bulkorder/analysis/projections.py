"""Projections of the orders' event log into read models, and the loop that runs them.

Each projection is an eventsourcing :class:`~eventsourcing.projection.Projection` over a
view (:mod:`bulkorder.analysis.views`). It processes events a page at a time: loads the rows the page
touches, applies the page with the pure functions of :mod:`bulkorder.analysis.read_model`, and commits
the rows with the tracking record of the page's last event in one transaction - only if
the view is still at the position the page started from. A run stopped anywhere (Ctrl-C,
a crash, a missing blob) leaves the view at the end of its last committed page, and the
next run starts right after it: no event is applied twice, none is skipped.

A batch that cannot be read (missing, corrupt, not a batch, or not holding what its ref
claims) or whose counters would take its order's row past the domain's bounds never stops
the projection: it is skipped, recorded with the reason in the view (per order, and in
``bulkorder report``), and the projection goes on and its position advances. A transient
store error (:class:`~bulkorder.storage.errors.TransientStoreError`) does stop the run, so the next
run reads the batch again; ``project --rebuild`` re-reads skipped batches once repaired.

``process_event`` processes one event the same way, so a projection also runs under
eventsourcing's own :class:`~eventsourcing.projection.ProjectionRunner` where the recorder
has subscriptions (PostgreSQL). :class:`PollingProjectionRunner` reads the notification log
itself, which works on SQLite too (its recorder has no subscriptions), a page at a time.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Callable, ClassVar, Generic, Sequence, TypeVar
from uuid import UUID

from eventsourcing.persistence import Tracking, TrackingRecorder
from eventsourcing.projection import Projection

from bulkorder.domain.application import Orders
from bulkorder.domain.items import MAX_ORDER_QUANTITY, MAX_ORDER_TOTAL
from bulkorder.domain.order import Order
from bulkorder.domain.refs import BatchRef
from bulkorder.storage.errors import BlobNotFoundError, TransientStoreError
from bulkorder.analysis.read_model import OrderSummaryRow, project_summary, sku_quantities
from bulkorder.analysis.summaries import SUMMARY_VIEW, SkippedBatch, SummariesSql
from bulkorder.analysis.time_index import TIME_INDEX_VIEW, TimeIndexSql, row_of
from bulkorder.analysis.views import ViewMovedError

_ORDER_EVENTS = (
    Order.Created, Order.ItemsAdded, Order.BatchRejected, Order.Submitted, Order.FulfillmentCompleted, Order.Cancelled,
    Order.FulfillmentFailed, Order.FulfillmentRetried,
)
TView = TypeVar("TView", bound=TrackingRecorder)
EventAndTracking = tuple[Any, Tracking]


class PagedProjection(Projection[TView], Generic[TView]):
    """A projection that commits a page of events at a time, resuming after its last commit."""

    #: Events per transaction when run by :class:`PollingProjectionRunner`.
    page_size: ClassVar[int] = 500

    def __init__(self, view: TView) -> None:
        super().__init__(view)
        self.position: int = view.position()  # type: ignore[attr-defined]

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:  # type: ignore[override]
        self.process_events([(domain_event, tracking)])

    def process_events(self, page: Sequence[EventAndTracking]) -> None:
        if not page:
            return
        last = page[-1][1]
        try:
            self._commit([(event, tracking) for event, tracking in page if isinstance(event, _ORDER_EVENTS)], last)
        except ViewMovedError:
            self.position = self.view.position()  # type: ignore[attr-defined]
            raise
        self.position = last.notification_id

    @abstractmethod
    def _commit(self, page: Sequence[EventAndTracking], last: Tracking) -> None:
        """Apply ``page`` and record ``last`` in one transaction, expecting ``self.position``."""


class TimeIndexProjection(PagedProjection[TimeIndexSql]):
    name = TIME_INDEX_VIEW
    page_size = 2_000

    def _commit(self, page: Sequence[EventAndTracking], last: Tracking) -> None:
        self.view.record([row_of(event) for event, _ in page], self.position or None, last)


class OrderSummaryProjection(PagedProjection[SummariesSql]):
    """Per-order summaries, and per-SKU quantities read from each added batch's items."""

    name = SUMMARY_VIEW
    page_size = 50  # each ItemsAdded reads a batch: keep a page's items in the thousands

    def __init__(
        self,
        view: SummariesSql,
        read_items: Callable[[BatchRef], list[dict[str, Any]]],
        threads: int = 4,
        purged: Callable[[], set[UUID]] | None = None,
    ):
        super().__init__(view)
        self.read_items = read_items
        self.threads = threads
        #: The orders whose items were purged or erased (asked only when a blob is missing).
        self.purged = purged

    def _count(self, ref: BatchRef, order: UUID | None = None) -> dict[str, list[int]] | str:
        """``{sku: [quantity, lines]}`` of the batch, or why it cannot be counted."""
        try:
            items = self.read_items(ref)
        except TransientStoreError:
            raise  # worth another run: the batch may well be readable then
        except BlobNotFoundError as exc:
            if order is not None and self.purged is not None and order in self.purged():
                return "items purged (retention or erasure): not counted"
            return _reason(exc)
        except Exception as exc:  # noqa: BLE001 - whatever the bytes do, the read model goes on
            return _reason(exc)
        try:
            by_sku = sku_quantities(items)
            quantity = sum(entry[0] for entry in by_sku.values())
        except Exception as exc:  # noqa: BLE001 - items of a shape no writer produces
            return f"items of an unexpected shape: {_reason(exc)}"
        if len(items) != ref.item_count or quantity != ref.quantity:
            return (
                f"the batch holds {len(items):,} items of quantity {quantity:,}; "
                f"the ref says {ref.item_count:,} items of quantity {ref.quantity:,}"
            )
        return by_sku

    def _commit(self, page: Sequence[EventAndTracking], last: Tracking) -> None:
        rows = self.view.load(event.originator_id.hex for event, _ in page)
        changed: dict[str, OrderSummaryRow] = {}
        added = [(event, tracking) for event, tracking in page if isinstance(event, Order.ItemsAdded)]
        deltas: dict[tuple[str, str], list[int]] = {}
        skipped: list[SkippedBatch] = []
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            # Batches are read (and hash-checked) ahead, in order, while earlier ones are counted.
            counted = pool.map(lambda pair: self._count(pair[0].batch, pair[0].originator_id), added)
            for (event, tracking), by_sku in zip(added, counted):
                aggregate_id = event.originator_id.hex
                if isinstance(by_sku, str):
                    skipped.append(SkippedBatch(aggregate_id, event.batch.batch_id, tracking.notification_id, by_sku))
                    continue
                for sku, (quantity, lines) in by_sku.items():
                    entry = deltas.get((aggregate_id, sku))
                    if entry is None:
                        deltas[(aggregate_id, sku)] = [quantity, lines]
                    else:
                        entry[0] += quantity
                        entry[1] += lines
        for event, tracking in page:
            aggregate_id = event.originator_id.hex
            before = changed.get(aggregate_id) or rows.get(aggregate_id)
            row = project_summary(before, event)
            if before is not None and isinstance(event, Order.ItemsAdded) and (problem := _past_bounds(row)):
                # Counters no column could hold (a ref claiming more than any order may):
                # the row keeps what it had, and the batch is listed as skipped.
                row = replace(before, totals=dict(before.totals), version=event.originator_version)
                skipped.append(SkippedBatch(aggregate_id, event.batch.batch_id, tracking.notification_id, problem))
            changed[aggregate_id] = row
        self.view.save(changed.values(), deltas, self.position or None, last, skipped=skipped)


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 500 else text[:497] + "..."


def _past_bounds(row: OrderSummaryRow) -> str | None:
    if row.item_count > MAX_ORDER_QUANTITY:  # every item has a quantity of at least 1
        return f"the order's item count would reach {row.item_count:,}, past MAX_ORDER_QUANTITY = {MAX_ORDER_QUANTITY:,}"
    if row.quantity > MAX_ORDER_QUANTITY:
        return f"the order's quantity would reach {row.quantity:,}, past MAX_ORDER_QUANTITY = {MAX_ORDER_QUANTITY:,}"
    for currency, total in row.totals.items():
        if total > MAX_ORDER_TOTAL:
            return f"the order's {currency} total would reach {total:,}, past MAX_ORDER_TOTAL = {MAX_ORDER_TOTAL:,}"
    return None


@dataclass
class RunResult:
    """What one run of a projection did: events processed and the position it reached."""

    projection: str
    processed: int
    position: int
    caught_up_to: int


class PollingProjectionRunner:
    """Runs a :class:`PagedProjection` over the orders' notification log.

    :meth:`run` catches up to the log's end as it was when called; with ``follow`` it then
    keeps polling every ``interval`` seconds until ``stop`` is set.
    """

    def __init__(self, orders: Orders, projection: PagedProjection[Any], *, interval: float = 0.5) -> None:
        self.orders = orders
        self.projection = projection
        self.interval = interval

    def run(
        self,
        *,
        follow: bool = False,
        stop: threading.Event | None = None,
        progress: Callable[[RunResult], None] | None = None,
    ) -> RunResult:
        stop = stop or threading.Event()
        recorder, mapper, name = self.orders.recorder, self.orders.mapper, self.orders.name
        target = recorder.max_notification_id() or 0
        result = RunResult(self.projection.name, 0, self.projection.position, target)
        while not stop.is_set():
            start = self.projection.position
            notifications = recorder.select_notifications(
                start=start,
                limit=self.projection.page_size,
                stop=None if follow else target,
                inclusive_of_start=False,
            )
            if not notifications:
                if not follow:
                    break
                stop.wait(self.interval)
                result.caught_up_to = max(result.caught_up_to, start)
                continue
            page = [(mapper.to_domain_event(n), Tracking(name, n.id)) for n in notifications]
            try:
                self.projection.process_events(page)
            except ViewMovedError:
                # Another runner committed first; the projection now knows where it got
                # to, and this one carries on from there.
                result.position = self.projection.position
                continue
            result.processed += len(page)
            result.position = self.projection.position
            result.caught_up_to = max(result.caught_up_to, result.position)
            if progress is not None:
                progress(result)
        return result
