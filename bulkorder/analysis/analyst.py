"""The :class:`Analyst`: one order's history, replay and items, the log's export, the read models.

Reads the event store and the blob store, never Temporal (the package's docstring has an
example; docs/analysts.md has every operation and its command-line twin).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator

import msgspec

from bulkorder.encryption import event_protection
from bulkorder.settings import Settings
from bulkorder.domain.application import EventProtection, Orders
from bulkorder.domain.errors import OrderNotFoundError
from bulkorder.domain.errors import ItemsPurgedError
from bulkorder.domain.identity import OrderIdentity, order_key
from bulkorder.domain.order import Order
from bulkorder.domain.refs import BatchRef
from bulkorder.domain.summary import OrderSummary
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.config import EventStoreConfig
from bulkorder.storage.order_refs import purged_orders
from bulkorder.analysis.history import BeforeCreationError, EventRecord, VersionOutOfRangeError, describe_events, from_micros, to_micros
from bulkorder.analysis.read_model import OrderSummaryRow, SkuQuantity
from bulkorder.analysis.event_log import EventLog
from bulkorder.analysis.item_stream import ItemStreamer, StreamResult
from bulkorder.analysis.projections import OrderSummaryProjection, PollingProjectionRunner, RunResult, TimeIndexProjection
from bulkorder.analysis.summaries import SUMMARY_VIEW, PostgresSummaries, SkippedBatch, SQLiteSummaries, SummariesSql
from bulkorder.analysis.time_index import TIME_INDEX_VIEW, PostgresTimeIndex, SQLiteTimeIndex, TimeIndexSql
from bulkorder.analysis.views import OpenedView, open_view

if TYPE_CHECKING:
    import pyarrow as pa

    from bulkorder.analysis.parquet_files import ParquetExportResult, ParquetResult

_PAGE = 1_000
_lines = msgspec.json.Encoder()


@dataclass
class OrderState:
    """An order as it was at one version: its counters and when things happened."""

    summary: OrderSummary
    version: int
    #: When the event of this version was recorded.
    as_of: datetime
    created_at: datetime
    submitted_at: datetime | None
    closed_at: datetime | None
    cancel_reason: str | None
    #: When retention or erasure deleted the order's items (as the order is now, whatever
    #: the version shown: the blobs are gone for every version).
    items_purged_at: datetime | None = None
    erased_at: datetime | None = None
    erased_by: str | None = None
    erasure_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = self.summary.to_dict()
        data.pop("pending_batches", None)  # a workflow notion; the event store has none
        for name in ("as_of", "created_at", "submitted_at", "closed_at", "items_purged_at", "erased_at"):
            value = getattr(self, name)
            data[name] = value.isoformat() if value is not None else None
        data["cancel_reason"] = self.cancel_reason
        data["erased_by"] = self.erased_by
        data["erasure_reason"] = self.erasure_reason
        return data


@dataclass
class ExportResult:
    events: int
    #: Position of the last event written (resume with ``since=last_position``).
    last_position: int


@dataclass
class Report:
    orders: list[OrderSummaryRow]
    skus: list[SkuQuantity]
    #: Log position the read model reflects, and the log's last position when read.
    position: int
    log_position: int
    #: Batches the summaries could not count (unreadable, or past the bounds), and why.
    skipped: list[SkippedBatch] = field(default_factory=list)

    def skipped_by_order(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.skipped:
            counts[entry.order_id] = counts.get(entry.order_id, 0) + 1
        return counts


class Analyst:
    """Read-only views of orders over one event store and one blob store.

    The read models (time index, summaries) are tables in the event store's database;
    :meth:`project` keeps them up to date, and :meth:`version_at` catches the time index
    up before each lookup.
    """

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
    def from_settings(cls, settings: Settings) -> Analyst:
        return cls(
            settings.event_store,
            BatchStore(settings.blob_store.open(), protection=settings.blob_protection()),
            settings.order_identity(),
            protection=event_protection(settings.encryption_settings, settings.blob_store, settings.order_identity()),
        )

    def __enter__(self) -> Analyst:
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

    def stream_items(
        self,
        order_id: str,
        out: BinaryIO,
        *,
        version: int | None = None,
        fmt: str = "ndjson",
        progress: Callable[[int, int], None] | None = None,
        workers: int = 2,
        processes: bool = False,
    ) -> StreamResult:
        """Write every item of the order at ``version`` to ``out`` (binary), in order.

        Items come from the blob store, each batch checked against its sha-256; at most a
        few batches are in memory at once. ``progress(batches, items)`` follows each batch.
        An order whose items were purged or erased raises
        :class:`~bulkorder.domain.errors.ItemsPurgedError` before anything is written.
        """
        self.check_items_readable(order_id)
        refs = self.batch_refs(order_id, version)
        streamer = ItemStreamer(self.batches, workers=workers, processes=processes)
        return streamer.write(refs, out, fmt=fmt, progress=progress)

    # ---- Arrow and Parquet (the extra ``analysis``: pyarrow) -------------------------------

    def _version(self, order_id: str, version: int | None, at: datetime | None) -> int | None:
        if version is not None and at is not None:
            raise ValueError("give a version or an instant, not both")
        return self.version_at(order_id, at) if at is not None else version

    def item_batches(
        self,
        order_id: str,
        *,
        version: int | None = None,
        at: datetime | None = None,
        workers: int = 2,
        processes: bool = False,
    ) -> Iterator[pa.RecordBatch]:
        """The order's items at ``version`` or instant ``at`` (else now) as Arrow record
        batches, one per batch of the order, in order (columns: docs/analysts.md).
        :class:`~bulkorder.domain.errors.ItemsPurgedError` if its items were purged or erased."""
        from bulkorder.analysis.arrow_items import item_record_batches

        self.check_items_readable(order_id)
        refs = self.batch_refs(order_id, self._version(order_id, version, at))
        return item_record_batches(self.batches, refs, workers=workers, processes=processes)

    def item_table(self, order_id: str, *, version: int | None = None, at: datetime | None = None) -> pa.Table:
        """All the order's items in one Arrow table: ``.to_pandas()``, ``polars.from_arrow(...)``."""
        from bulkorder.analysis.arrow_items import item_schema, pyarrow

        batches = list(self.item_batches(order_id, version=version, at=at))
        return pyarrow().Table.from_batches(batches, schema=item_schema())

    def event_batches(self, *, since: int = 0, until: int | None = None, page_size: int = 10_000) -> Iterator[pa.RecordBatch]:
        """Every event with ``since < position <= until`` as Arrow record batches (a page each)."""
        from bulkorder.analysis.arrow_items import events_record_batch

        log = EventLog(self.orders, page_size=page_size)
        after = since
        while True:
            documents = log.page(after, until)
            if not documents:
                return
            yield events_record_batch(documents)
            after = documents[-1]["position"]

    def write_items_parquet(
        self,
        order_id: str,
        path: str | Path,
        *,
        version: int | None = None,
        progress: Callable[[int], None] | None = None,
        workers: int = 2,
        processes: bool = False,
    ) -> ParquetResult:
        """The order's items at ``version`` into the Parquet file ``path`` (whole or absent)."""
        from bulkorder.analysis.arrow_items import item_schema
        from bulkorder.analysis.parquet_files import write_parquet

        batches = self.item_batches(order_id, version=version, workers=workers, processes=processes)
        return write_parquet(path, item_schema(), batches, progress)

    def export_parquet(
        self,
        out_dir: str | Path,
        *,
        since: int = 0,
        until: int | None = None,
        items: bool = True,
        on_page: Callable[[int, int], None] | None = None,
    ) -> ParquetExportResult:
        """The log from ``since`` to ``until`` as one new part of ``out_dir``'s events and
        items Parquet files (:mod:`bulkorder.analysis.parquet_files`)."""
        from bulkorder.analysis.parquet_files import export_parquet

        if since < 0 or (until is not None and until < since):
            raise ValueError(f"positions must satisfy 0 <= since <= until (got since={since}, until={until})")
        return export_parquet(EventLog(self.orders), self.batches, out_dir, since=since, until=until, items=items, on_page=on_page)

    # ---- the whole log ------------------------------------------------------------------

    def export(
        self,
        out: BinaryIO,
        *,
        since: int = 0,
        until: int | None = None,
        follow: bool = False,
        stop: threading.Event | None = None,
        interval: float = 0.5,
        on_page: Callable[[ExportResult], None] | None = None,
    ) -> ExportResult:
        """Write every event with ``since < position <= until`` to ``out`` as NDJSON.

        With ``follow``, keep polling for new events every ``interval`` seconds until
        ``stop`` is set. Each page is flushed before ``on_page`` is called, so the position
        reported is always on disk.
        """
        if since < 0 or (until is not None and until < since):
            raise ValueError(f"positions must satisfy 0 <= since <= until (got since={since}, until={until})")
        stop = stop or threading.Event()
        log = EventLog(self.orders)
        result = ExportResult(0, since)
        while not stop.is_set():
            documents = log.page(result.last_position, until)
            if documents:
                out.write(_lines.encode_lines(documents))
                out.flush()
                result.events += len(documents)
                result.last_position = documents[-1]["position"]
                if on_page is not None:
                    on_page(result)
                continue
            if not follow or (until is not None and result.last_position >= until):
                break
            stop.wait(interval)
        return result

    # ---- read models --------------------------------------------------------------------

    def project(
        self,
        *,
        follow: bool = False,
        stop: threading.Event | None = None,
        progress: Callable[[RunResult], None] | None = None,
        interval: float = 0.5,
        rebuild: bool = False,
    ) -> list[RunResult]:
        """Bring the time index and the order summaries up to date with the log.

        With ``follow``, keep them up to date (polling every ``interval`` s) until ``stop``.
        With ``rebuild``, empty them first and rebuild them from the start of the log.
        """
        stop = stop or threading.Event()
        if rebuild:
            for name in (TIME_INDEX_VIEW, SUMMARY_VIEW):
                self._view(name).reset()
        index = TimeIndexProjection(self._view(TIME_INDEX_VIEW))
        summaries = OrderSummaryProjection(
            self._view(SUMMARY_VIEW), ItemStreamer(self.batches).read_items, purged=lambda: purged_orders(self.orders)
        )
        runners = [
            PollingProjectionRunner(self.orders, projection, interval=interval) for projection in (index, summaries)
        ]
        results = [runner.run(progress=progress) for runner in runners]
        while follow and not stop.is_set():
            # One loop for both, so a single thread (and one Ctrl-C) drives them.
            for number, runner in enumerate(runners):
                more = runner.run(progress=progress)
                results[number].processed += more.processed
                results[number].position = more.position
                results[number].caught_up_to = more.caught_up_to
            stop.wait(interval)
        return results

    def report(self, *, sku_limit: int | None = None) -> Report:
        """The order summaries and per-SKU quantities, as of the last :meth:`project`."""
        view: SummariesSql = self._view(SUMMARY_VIEW)
        return Report(
            orders=view.summaries(),
            skus=view.sku_quantities(limit=sku_limit),
            position=view.position(),
            log_position=int(self.orders.recorder.max_notification_id() or 0),
            skipped=view.skipped_batches(),
        )
