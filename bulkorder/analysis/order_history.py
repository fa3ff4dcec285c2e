"""One order's history for the :class:`~bulkorder.analysis.analyst.Analyst`: the stores it
reads, the order's events, its version at an instant, its state at a version, its batches.

Reads the event store and the blob store, never Temporal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterator, Self

from bulkorder.analysis.history import BeforeCreationError, EventRecord, VersionOutOfRangeError, describe_events, from_micros, to_micros
from bulkorder.analysis.projections import PollingProjectionRunner, TimeIndexProjection
from bulkorder.analysis.results import OrderState
from bulkorder.analysis.summaries import PostgresSummaries, SQLiteSummaries
from bulkorder.analysis.time_index import TIME_INDEX_VIEW, PostgresTimeIndex, SQLiteTimeIndex, TimeIndexSql
from bulkorder.analysis.views import OpenedView, open_view
from bulkorder.domain.application import EventProtection, Orders
from bulkorder.domain.errors import ItemsPurgedError, OrderNotFoundError
from bulkorder.domain.identity import OrderIdentity, order_key
from bulkorder.domain.order import Order
from bulkorder.domain.refs import BatchRef
from bulkorder.encryption import event_protection
from bulkorder.settings import Settings
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.config import EventStoreConfig

_PAGE = 1_000


class OrderHistory:
    """The stores an analyst reads, and one order's history in them (the base of
    :class:`~bulkorder.analysis.analyst.Analyst`)."""

    def __init__(
        self,
        event_store: EventStoreConfig,
        batches: BatchStore,
        identity: OrderIdentity | None = None,
        *,
        protection: EventProtection | None = None,
    ) -> None:
        """``identity`` finds orders by name (``Settings.order_identity()``); without it, the
        event store's ``BULKORDER_IDENTITY_SECRET``."""
        self.event_store = event_store
        self._identity = identity
        self.batches = batches
        #: Encryption of the event store (settings-built analysts pass the deployment's).
        self.protection = protection
        self._orders: Orders | None = None
        self._views: dict[str, OpenedView] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(
            settings.event_store,
            BatchStore(settings.blob_store.open(), protection=settings.blob_protection()),
            settings.order_identity(),
            protection=event_protection(settings.encryption_settings, settings.blob_store, settings.order_identity()),
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for opened in self._views.values():
            opened.close()
        self._views.clear()
        if self._orders is not None:
            self._orders.close()
            self._orders = None

    @property
    def orders(self) -> Orders:
        if self._orders is None:
            self._orders = self.event_store.open_orders(self.protection, identity=self._identity)
        return self._orders

    def _view(self, name: str) -> Any:
        if name not in self._views:
            if name == TIME_INDEX_VIEW:
                self._views[name] = open_view(self.event_store, name, SQLiteTimeIndex, PostgresTimeIndex)
            else:
                self._views[name] = open_view(self.event_store, name, SQLiteSummaries, PostgresSummaries)
        return self._views[name].view

    # ---- one order's history ----------------------------------------------------------

    def _events(self, order_id: str, up_to_version: int | None = None) -> Iterator[Any]:
        """The order's events in version order, a page at a time (never all in memory)."""
        aggregate_id = self.orders.aggregate_id(order_key(order_id))
        after = 0
        while True:
            page = list(self.orders.events.get(aggregate_id, gt=after, lte=up_to_version, limit=_PAGE))
            if not page and after == 0:
                raise OrderNotFoundError(order_id)
            yield from page
            if len(page) < _PAGE:
                return
            after = page[-1].originator_version

    def events(self, order_id: str) -> Iterator[EventRecord]:
        """One :class:`~bulkorder.analysis.history.EventRecord` per event, oldest first; items are not read."""
        return describe_events(self._events(order_id))

    def latest_version(self, order_id: str) -> int:
        aggregate_id = self.orders.aggregate_id(order_key(order_id))
        last = list(self.orders.recorder.select_events(aggregate_id, desc=True, limit=1))
        if not last:
            raise OrderNotFoundError(order_id)
        return int(last[0].originator_version)

    def version_at(self, order_id: str, at: datetime) -> int:
        """The order's version at instant ``at`` (the last event recorded at or before it)."""
        self.latest_version(order_id)  # the order exists
        index: TimeIndexSql = self._view(TIME_INDEX_VIEW)
        PollingProjectionRunner(self.orders, TimeIndexProjection(index)).run()
        aggregate_id = self.orders.aggregate_id(order_key(order_id)).hex
        first = index.first(aggregate_id)
        if first is None:  # pragma: no cover - the catch-up above indexed every event
            raise RuntimeError(f"the time index has no entry for order {order_id!r} after catching up")
        if to_micros(at) < first[1]:
            raise BeforeCreationError(order_id, at, from_micros(first[1]))
        version = index.version_at(aggregate_id, to_micros(at))
        assert version is not None  # at >= the first event's instant
        return version

    def state(self, order_id: str, *, version: int | None = None, at: datetime | None = None) -> OrderState:
        """The order as it was at ``version``, or at instant ``at``, else as it is now."""
        if version is not None and at is not None:
            raise ValueError("give a version or an instant, not both")
        if at is not None:
            version = self.version_at(order_id, at)
        elif version is not None:
            latest = self.latest_version(order_id)
            if not 1 <= version <= latest:
                raise VersionOutOfRangeError(order_id, version, latest)
        order: Order = self.orders.get_order(order_id, version)
        latest: Order = order if version is None else self.orders.get_order(order_id)
        return OrderState(
            summary=order.summary(),
            version=order.version,
            as_of=order.modified_on,
            created_at=order.created_on,
            submitted_at=order.submitted_at,
            closed_at=order.closed_at,
            cancel_reason=order.cancel_reason,
            items_purged_at=latest.items_purged_at,
            erased_at=latest.erased_at,
            erased_by=latest.erased_by,
            erasure_reason=latest.erasure_reason,
        )

    def check_items_readable(self, order_id: str) -> None:
        """Raise :class:`~bulkorder.domain.errors.ItemsPurgedError` (saying when, and
        whether by erasure) if the order's items were deleted."""
        order: Order = self.orders.get_order(order_id)
        if order.items_purged_at is not None:
            raise ItemsPurgedError(order_id, order.items_purged_at, erased=order.erased_at is not None)

    def batch_refs(self, order_id: str, version: int | None = None) -> Iterator[BatchRef]:
        """The order's batches at ``version`` (latest if ``None``), in the order they were added."""
        for event in self._events(order_id, up_to_version=version):
            if isinstance(event, Order.ItemsAdded):
                yield event.batch
