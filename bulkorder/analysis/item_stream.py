"""Stream every item of a list of batches out of the blob store as NDJSON or CSV, in order.

Memory holds a bounded window of batches whatever the order's size: batches are fetched
(``BatchStore.fetch``: checked against each ref's sha-256 and size) ahead on I/O threads,
decoded and re-encoded ahead by ``workers`` threads or processes, and written strictly in
order. Reading is storage's (``bulkorder.storage.batch_codec``); this module only writes.

Speed: decoding msgpack into Python objects and encoding them again is the whole cost.
msgspec does both in C (``decode_stored_items`` / ``msgspec.json.Encoder.encode_lines``),
about twice as fast as msgpack-python plus a JSON encoder (docs/benchmarks.md). With
``processes=True`` the decoding runs in worker processes, which use more than one core.
"""

from __future__ import annotations

import csv
import gc
import io
import multiprocessing
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterable, Iterator

import msgspec

from bulkorder.domain.refs import BatchRef
from bulkorder.storage.batch_codec import decode_batch, decode_stored_items
from bulkorder.storage.batches import BatchStore, where_of

FORMATS = ("ndjson", "csv")
CSV_COLUMNS = ("sku", "quantity", "unit_price_amount", "unit_price_currency", "name", "attributes")

_json = msgspec.json.Encoder()


@dataclass
class StreamResult:
    batches: int
    items: int
    bytes_written: int


#: First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """``value`` safe to open in a spreadsheet: a text cell that would start a formula is
    prefixed with a single quote (OWASP). Numbers are left as they are: bulkorder's are
    whole and non-negative, so none starts with "-"."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv_cells(item: Any) -> tuple[Any, ...]:
    if type(item) is dict:  # a batch of another shape, read as dicts
        price = item.get("unit_price") or {}
        return (item.get("sku"), item.get("quantity"), price.get("amount"), price.get("currency"), item.get("name"),
                item.get("attributes") or {})
    price = item.unit_price  # a StoredItem
    return (item.sku, item.quantity, price.amount, price.currency, item.name, item.attributes)


def encode_items(items: list[Any], fmt: str) -> bytes:
    """``items`` (item dicts or ``StoredItem`` structs) as NDJSON or CSV lines."""
    if fmt == "ndjson":
        return _json.encode_lines(items)  # exact: NDJSON is data, not a spreadsheet
    text = io.StringIO()
    # Every text cell quoted (OWASP's advice with the quote prefix; and a cell holding a
    # lone CR would not be quoted by QUOTE_MINIMAL with "\n" line ends, splitting its row).
    writer = csv.writer(text, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    for item in items:
        *cells, attributes = _csv_cells(item)
        writer.writerow([csv_cell(cell) for cell in cells] + [csv_cell(_json.encode(attributes).decode())])
    return text.getvalue().encode()


def transcode(data: bytes, where: str, item_count: int, fmt: str) -> bytes:
    """One batch's bytes to its items as ``fmt`` lines (runs in a worker thread or process).

    Items of the stored shape are decoded into structs (``decode_stored_items``, the fast
    way); a batch of any other shape is read as dicts (``decode_batch``, which also says
    what is wrong with a batch that is no batch)."""
    items = decode_stored_items(data, where=where, item_count=item_count)
    if items is None:
        items = decode_batch(data, where=where, item_count=item_count)
    return encode_items(items, fmt)


def csv_header() -> bytes:
    return (",".join(CSV_COLUMNS) + "\n").encode()


@contextmanager
def _gc_paused() -> Iterator[None]:
    # Millions of short-lived dicts, none in a cycle: the cyclic GC only costs time here.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class ItemStreamer:
    """Writes the items of batches to a binary file, in order, with a bounded window.

    ``workers`` decode in parallel (threads, or processes with ``processes=True``);
    at most ``window`` batches are in flight at once.
    """

    def __init__(self, batches: BatchStore, *, workers: int = 2, processes: bool = False, window: int | None = None):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.batches = batches
        self.workers = workers
        self.processes = processes
        self.window = window or 2 * workers + 2

    def read_items(self, ref: BatchRef) -> list[dict[str, Any]]:
        """The items of one batch, checked: :meth:`bulkorder.storage.batches.BatchStore.read`."""
        return self.batches.read(ref)

    def write(
        self,
        refs: Iterable[BatchRef],
        out: BinaryIO,
        *,
        fmt: str = "ndjson",
        progress: Callable[[int, int], None] | None = None,
    ) -> StreamResult:
        """Write every item of ``refs`` to ``out``; ``progress(batches, items)`` after each batch."""
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
        result = StreamResult(0, 0, 0)
        if fmt == "csv":
            result.bytes_written += out.write(csv_header())
        cpu: Executor | None = None
        if self.processes:
            cpu = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"))
        io_threads = self.workers if cpu is None else max(2, self.workers)

        def fetch_and_transcode(ref: BatchRef) -> tuple[BatchRef, bytes]:
            data = self.batches.fetch(ref)
            where = where_of(ref)
            if cpu is None:
                return ref, transcode(data, where, ref.item_count, fmt)
            return ref, cpu.submit(transcode, data, where, ref.item_count, fmt).result()

        try:
            with _gc_paused(), ThreadPoolExecutor(io_threads, thread_name_prefix="item-stream") as pool:
                pending: deque[Future[tuple[BatchRef, bytes]]] = deque()
                for ref in refs:
                    pending.append(pool.submit(fetch_and_transcode, ref))
                    if len(pending) >= self.window:
                        self._write_next(pending, out, result, progress)
                while pending:
                    self._write_next(pending, out, result, progress)
        finally:
            if cpu is not None:
                cpu.shutdown(cancel_futures=True)
        return result

    @staticmethod
    def _write_next(
        pending: deque[Future[tuple[BatchRef, bytes]]],
        out: BinaryIO,
        result: StreamResult,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        try:
            ref, lines = pending.popleft().result()
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        result.bytes_written += out.write(lines)
        result.batches += 1
        result.items += ref.item_count
        if progress is not None:
            progress(result.batches, result.items)
