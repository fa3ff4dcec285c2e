"""The analysts' tools: history, replay, items, export and read models of orders.

Analysts read the event store and the blob store, never Temporal::

    from bulkorder.analysis import Analyst, parse_instant
    from bulkorder.settings import Settings

    with Analyst.from_settings(Settings.from_env()) as analyst:
        for record in analyst.events("order-42"):
            print(record.version, record.type, record.item_count)
        state = analyst.state("order-42", at=parse_instant("2024-05-01T12:00Z"))
        with open("items.ndjson", "wb") as out:
            analyst.stream_items("order-42", out, version=state.version)

Everything the analysts use lives in this package, above the layers it reads
(``bulkorder.storage``, ``bulkorder.domain``), which know nothing of it:

- :mod:`~bulkorder.analysis.analyst`: :class:`Analyst`, the one entry point: the whole log, the
  read models; built on :mod:`~bulkorder.analysis.order_history` (the stores, one order's
  events, versions and states) and :mod:`~bulkorder.analysis.order_items` (its items in every
  format); :mod:`~bulkorder.analysis.results`: what they return.
- :mod:`~bulkorder.analysis.history`: pure logic over an order's events (records, instants).
- :mod:`~bulkorder.analysis.event_log`: the whole event log, a page at a time, as documents.
- :mod:`~bulkorder.analysis.item_stream`: an order's batches streamed back as NDJSON or CSV.
- :mod:`~bulkorder.analysis.arrow_items`: items and events as Arrow record batches (pyarrow).
- :mod:`~bulkorder.analysis.parquet_files`: Parquet files of them, written streaming.
- :mod:`~bulkorder.analysis.read_model`: pure functions of how events change a summary row.
- :mod:`~bulkorder.analysis.views`: read-model tables beside the event store, with tracking.
- :mod:`~bulkorder.analysis.time_index`, :mod:`~bulkorder.analysis.summaries`: the two views.
- :mod:`~bulkorder.analysis.projections`: the projections that keep the views up to date.

The command line's twins are in :mod:`bulkorder.commands` (``history``, ``event_export``,
``read_models``). See docs/analysts.md for every operation.

Importing this package is cheap: each name below loads its module on first use (PEP 562),
so :mod:`bulkorder.errors` can name the analysts' error classes without loading the rest.
"""

from __future__ import annotations

from bulkorder.lazy_exports import lazy_exports
from typing import TYPE_CHECKING

#: Each public name, and the module that defines it (loaded when the name is first used).
_EXPORTS: dict[str, str] = {
    "Analyst": "bulkorder.analysis.analyst",
    "OrderState": "bulkorder.analysis.results",
    "ExportResult": "bulkorder.analysis.results",
    "Report": "bulkorder.analysis.results",
    "EventRecord": "bulkorder.analysis.history",
    "parse_instant": "bulkorder.analysis.history",
    "BeforeCreationError": "bulkorder.analysis.history",
    "InvalidInstantError": "bulkorder.analysis.history",
    "VersionOutOfRangeError": "bulkorder.analysis.history",
    "OrderSummaryRow": "bulkorder.analysis.read_model",
    "SkuQuantity": "bulkorder.analysis.read_model",
    "ProjectionOrderError": "bulkorder.analysis.read_model",
    "StreamResult": "bulkorder.analysis.item_stream",
    "RunResult": "bulkorder.analysis.projections",
    "SkippedBatch": "bulkorder.analysis.summaries",
    "ParquetResult": "bulkorder.analysis.parquet_files",
    "ParquetExportResult": "bulkorder.analysis.parquet_files",
    "item_schema": "bulkorder.analysis.arrow_items",
    "event_schema": "bulkorder.analysis.arrow_items",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)


if TYPE_CHECKING:  # what type checkers and editors see; at run time, __getattr__ above
    from bulkorder.analysis.analyst import Analyst
    from bulkorder.analysis.results import ExportResult, OrderState, Report
    from bulkorder.analysis.history import (
        BeforeCreationError,
        EventRecord,
        InvalidInstantError,
        VersionOutOfRangeError,
        parse_instant,
    )
    from bulkorder.analysis.item_stream import StreamResult
    from bulkorder.analysis.projections import RunResult
    from bulkorder.analysis.read_model import OrderSummaryRow, ProjectionOrderError, SkuQuantity
    from bulkorder.analysis.summaries import SkippedBatch
    from bulkorder.analysis.arrow_items import event_schema, item_schema
    from bulkorder.analysis.parquet_files import ParquetExportResult, ParquetResult
