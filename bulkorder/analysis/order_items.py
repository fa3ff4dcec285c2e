"""An order's items for the :class:`~bulkorder.analysis.analyst.Analyst`: streamed as NDJSON
or CSV, as Arrow record batches or one table (pandas, polars), or into a Parquet file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterator

from bulkorder.analysis.item_stream import ItemStreamer, StreamResult
from bulkorder.analysis.order_history import OrderHistory

if TYPE_CHECKING:
    import pyarrow as pa

    from bulkorder.analysis.parquet_files import ParquetResult


class OrderItems(OrderHistory):
    """One order's items at a version or an instant, in the analysts' formats."""

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

