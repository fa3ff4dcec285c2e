"""The :class:`Analyst`: one order's history, replay and items, the log's export, the read models.

Reads the event store and the blob store, never Temporal (the package's docstring has an
example; docs/analysts.md has every operation and its command-line twin). By idea:
:mod:`~bulkorder.analysis.order_history` (the stores, one order's events, versions and
states), :mod:`~bulkorder.analysis.order_items` (its items in every format), this module
(the whole log and the read models), :mod:`~bulkorder.analysis.results` (what they return).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterator

import msgspec

from bulkorder.analysis.event_log import EventLog
from bulkorder.analysis.item_stream import ItemStreamer
from bulkorder.analysis.order_items import OrderItems
from bulkorder.analysis.projections import OrderSummaryProjection, PollingProjectionRunner, RunResult, TimeIndexProjection
from bulkorder.analysis.results import ExportResult, OrderState, Report
from bulkorder.analysis.summaries import SUMMARY_VIEW, SummariesSql
from bulkorder.analysis.time_index import TIME_INDEX_VIEW
from bulkorder.storage.order_refs import purged_orders

if TYPE_CHECKING:
    import pyarrow as pa

    from bulkorder.analysis.parquet_files import ParquetExportResult

__all__ = ["Analyst", "ExportResult", "OrderState", "Report"]

_lines = msgspec.json.Encoder()


class Analyst(OrderItems):
    """Read-only views of orders over one event store and one blob store.

    The read models (time index, summaries) are tables in the event store's database;
    :meth:`project` keeps them up to date, and :meth:`version_at` catches the time index
    up before each lookup.
    """

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

    def export_parquet(
        self,
        out_dir: str | Path,
        *,
        since: int = 0,
        until: int | None = None,
        items: bool = True,
        on_page: Callable[[int, int], None] | None = None,
        follow: bool = False,
        stop: threading.Event | None = None,
        interval: float = 0.5,
        on_part: Callable[[ParquetExportResult], None] | None = None,
        processes: bool = False,
    ) -> ParquetExportResult:
        """The log from ``since`` to ``until`` as one new part of ``out_dir``'s events and
        items Parquet files (:mod:`bulkorder.analysis.parquet_files`).

        With ``follow``, keep polling every ``interval`` seconds until ``stop`` is set (or
        ``until`` is reached), adding a new part whenever the log has grown; ``on_part``
        follows each part, once it is in place. The result then holds the totals. With
        ``processes``, the items are decoded in worker processes (several cores).
        """
        from bulkorder.analysis.parquet_files import export_parquet, follow_parquet

        if since < 0 or (until is not None and until < since):
            raise ValueError(f"positions must satisfy 0 <= since <= until (got since={since}, until={until})")
        log = EventLog(self.orders)
        if not follow:
            return export_parquet(
                log, self.batches, out_dir, since=since, until=until, items=items, processes=processes, on_page=on_page
            )
        return follow_parquet(
            log, self.batches, out_dir, since=since, until=until, items=items, stop=stop or threading.Event(),
            interval=interval, on_part=on_part, on_page=on_page, processes=processes,
        )

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
