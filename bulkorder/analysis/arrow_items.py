"""Items and events as Arrow record batches (pyarrow, the optional extra ``analysis``).

Columns follow the item schema (``bulkorder.domain.items.Item``), typed:

| column | Arrow type | from |
| --- | --- | --- |
| ``sku`` | string | ``Item.sku`` |
| ``quantity`` | int64 | ``Item.quantity`` |
| ``unit_price_amount`` | int64 | ``Item.unit_price.amount``: integer minor units (cents) |
| ``unit_price_currency`` | string (dictionary-encoded) | ``Item.unit_price.currency`` (ISO 4217) |
| ``name`` | string | ``Item.name`` |
| ``attributes`` | string: a JSON object | ``Item.attributes`` |

Attributes are a JSON text column, not an Arrow map: their values mix text, whole
numbers, floats, booleans and null, which no one Arrow map value type holds without
losing the type; DuckDB (``attributes->>'$.color'``), polars (``str.json_path_match``)
and pandas read JSON text as it is.

Each batch of the order becomes one record batch: a batch is read by storage's reader
(``BatchStore.fetch``: checked against its ref's sha-256 and size;
``decode_stored_body``: msgspec into the stored-shape structs of the item schema), and its
columns built from their buffers (:mod:`bulkorder.analysis.arrow_columns`: msgspec encodes
the attributes as JSON into one buffer, Arrow takes the bytes as they are; no
``pyarrow.array``, which imports pandas). Memory holds a bounded window of batches. Decoding the attributes into
Python objects is most of the cost (docs/benchmarks.md); ``processes=True`` spreads it
over cores (from a folder store, the worker processes fetch the batches too), and their
record batches come back through shared memory (:mod:`bulkorder.analysis.shared_slots`).
"""

from __future__ import annotations

import functools
import gc
import importlib
import itertools
import multiprocessing
import signal
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from bulkorder.domain.refs import BatchRef
from bulkorder.extras import require
from bulkorder.storage.batch_codec import BatchHeader, decode_stored_body, open_batch
from bulkorder.storage.batches import BatchStore, where_of
from bulkorder.storage.errors import BatchFormatError
from bulkorder.storage.encryption.keyring import LocalKeyring
from bulkorder.storage.folder_store import FolderBlobStore
from bulkorder.analysis.shared_slots import SharedSlots
from bulkorder.analysis.arrow_columns import (
    dictionary_column, int64_column, json_column, repeated_int64, repeated_string, repeated_timestamp, string_column,
    timestamp_column, with_nulls,
)

if TYPE_CHECKING:
    import pyarrow as pa

ANALYSIS_EXTRA = "analysis"
ITEM_COLUMNS = ("sku", "quantity", "unit_price_amount", "unit_price_currency", "name", "attributes")
#: The export's item rows also say where each item came from.
EXPORT_ITEM_COLUMNS = ("position", "order_id", "batch_id", "recorded_at", *ITEM_COLUMNS)


def pyarrow() -> Any:
    """The ``pyarrow`` module, or :class:`~bulkorder.extras.MissingExtraError` naming the extra."""
    return require("pyarrow", extra=ANALYSIS_EXTRA, feature="Parquet and Arrow output")


@functools.cache
def item_schema(*, provenance: bool = False) -> pa.Schema:
    """The items' Arrow schema; with ``provenance``, the export's extra columns first."""
    pa = pyarrow()
    fields = [
        pa.field("sku", pa.string(), nullable=False),
        pa.field("quantity", pa.int64(), nullable=False),
        pa.field("unit_price_amount", pa.int64(), nullable=False),
        pa.field("unit_price_currency", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("attributes", pa.string(), nullable=False),
    ]
    if provenance:
        fields = [
            pa.field("position", pa.int64(), nullable=False),
            pa.field("order_id", pa.string(), nullable=False),
            pa.field("batch_id", pa.string(), nullable=False),
            pa.field("recorded_at", pa.timestamp("us", tz="UTC"), nullable=False),
            *fields,
        ]
    return pa.schema(fields, metadata={"bulkorder.money": "unit_price_amount is integer minor units of unit_price_currency",
                                       "bulkorder.attributes": "attributes is a JSON object per item"})


def batch_to_record_batch(
    data: bytes, where: str, item_count: int, provenance: Mapping[str, Any] | None = None
) -> pa.RecordBatch:
    """One batch's bytes to its record batch (runs in a worker thread or process); the
    header and the body must both hold ``item_count`` items (the ref's)."""
    header, raw = open_batch(data, where=where, item_count=item_count)
    return body_to_record_batch(header, raw, where, provenance)


def body_to_record_batch(
    header: BatchHeader, raw: bytes | memoryview, where: str, provenance: Mapping[str, Any] | None = None
) -> pa.RecordBatch:
    """:func:`batch_to_record_batch` of a body :func:`open_batch` opened (checked and
    decompressed on an I/O thread: zstd runs there without the GIL, beside the decoding).
    Storage's reader decodes it (the stored shape, values as they are, typed by Arrow,
    which refuses a value of another type in :func:`items_record_batch`)."""
    items = decode_stored_body(header, raw)
    if items is None:
        raise BatchFormatError(f"{where}: items do not have the item schema (or not {header.item_count} of them)")
    return _record_batch(items, where, provenance)


def _record_batch(items: list[Any], where: str, provenance: Mapping[str, Any] | None) -> pa.RecordBatch:
    pa = pyarrow()
    try:
        return items_record_batch(items, provenance)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError, UnicodeError, RecursionError) as exc:
        raise BatchFormatError(f"{where}: an item does not have the item schema's types ({type(exc).__name__}: {exc})") from None


def items_record_batch(items: Sequence[Any], provenance: Mapping[str, Any] | None = None) -> pa.RecordBatch:
    """One record batch of ``items``; ``provenance`` (position, order_id, batch_id,
    recorded_at) repeats over every row when given. Columns are built from their buffers
    (:mod:`bulkorder.analysis.arrow_columns`: no pandas imported, and each value must be
    of its column's type exactly)."""
    pa = pyarrow()
    count = len(items)
    prices = [item.unit_price for item in items]
    columns: list[Any] = [
        string_column([item.sku for item in items]),
        int64_column([item.quantity for item in items]),
        int64_column([price.amount for price in prices]),
        dictionary_column([price.currency for price in prices]),
        string_column([item.name for item in items]),
        json_column([item.attributes for item in items]),
    ]
    if provenance is not None:
        columns = [
            repeated_int64(provenance["position"], count),
            repeated_string(provenance["order_id"], count),
            repeated_string(provenance["batch_id"], count),
            repeated_timestamp(provenance["recorded_at"], count),
            *columns,
        ]
    return pa.RecordBatch.from_arrays(columns, schema=item_schema(provenance=provenance is not None))


def item_record_batches(
    batches: BatchStore,
    refs: Iterable[BatchRef],
    *,
    provenance: Iterable[Mapping[str, Any]] | None = None,
    workers: int = 2,
    processes: bool = False,
    window: int | None = None,
    decoders: DecodingProcesses | None = None,
) -> Iterator[pa.RecordBatch]:
    """One record batch per ref, in order, at most ``window`` batches read ahead.

    ``workers`` threads fetch and decompress (overlapping the blob store's latency; zstd
    releases the GIL); one thread decodes, since decoding holds the GIL. With
    ``processes``, ``workers`` processes decode (record batches come back through shared
    slots as Arrow IPC streams), which uses more than one core; from a store that is safe
    to use after a fork (:func:`fetches_in_workers`), they fetch the batches themselves too.
    ``decoders``: processes already started (:class:`DecodingProcesses`), kept across
    calls (an export's pages); otherwise, with ``processes``, they are started and stopped here.
    """
    pyarrow()
    extra = iter(provenance) if provenance is not None else None
    if decoders is None and processes:
        refs = iter(refs)
        first = next(refs, None)
        if first is None:
            return
        converted = None
        if fetches_in_workers(batches) and batches.protection is not None:
            # The first batch here, before the fork: the data key it is sealed with is
            # unwrapped into the cache the workers inherit, so they neither unwrap it again
            # nor take its lock; the workers go on from the second.
            where = next(extra) if extra is not None else None
            converted = batch_to_record_batch(batches.fetch(first), where_of(first), first.item_count, where)
        with DecodingProcesses(batches, workers, window) as started:
            if converted is not None:
                yield converted
            rest = refs if converted is not None else itertools.chain([first], refs)
            yield from _decoded_in_processes(started, batches, rest, extra)
        return
    if decoders is not None:
        yield from _decoded_in_processes(decoders, batches, refs, extra)
        return
    window = window or 2 * workers + 2
    # Decoding holds the GIL: in threads, one decoder does as much as two and costs less
    # CPU (measured: 3.2 against 4.3 us of CPU per item, the two threads fighting for the
    # GIL); fetches still overlap on the I/O threads, and Parquet writing (no GIL) overlaps
    # with decoding.
    cpu = ThreadPoolExecutor(1, thread_name_prefix="arrow-decode")

    def convert(ref: BatchRef, where: Mapping[str, Any] | None) -> pa.RecordBatch:
        data = batches.fetch(ref)
        header, raw = open_batch(data, where=where_of(ref), item_count=ref.item_count)
        return cpu.submit(body_to_record_batch, header, raw, where_of(ref), where).result()

    try:
        with ThreadPoolExecutor(max(2, workers), thread_name_prefix="arrow-items") as pool:
            pending: deque[Future[pa.RecordBatch]] = deque()
            try:
                for ref in refs:
                    pending.append(pool.submit(convert, ref, next(extra) if extra is not None else None))
                    if len(pending) >= window:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()
    finally:
        cpu.shutdown(cancel_futures=True)


def fetches_in_workers(batches: BatchStore) -> bool:
    """Whether forked worker processes may read ``batches`` themselves: a folder store
    (a file opened per read, nothing shared), plaintext or decrypted with a local keyring
    (its KEKs in memory; the data keys unwrapped before the fork are inherited in the
    cache). An S3 client's pooled connections and locks, or a keyring's KMS client, do not
    survive a fork: from those, the main process fetches and hands the bytes over."""
    if not isinstance(batches.blobs, FolderBlobStore):
        return False
    return batches.protection is None or isinstance(batches.protection.keys.keyring, LocalKeyring)


#: The worker process's store and shared slots: inherited through the fork (set by :func:`_start_worker`).
_worker_batches: BatchStore | None = None
_worker_slots: SharedSlots | None = None


def _start_worker(batches: BatchStore | None, slots: SharedSlots) -> None:
    global _worker_batches, _worker_slots
    _worker_batches, _worker_slots = batches, slots
    # Ctrl-C reaches the whole process group: the main process stops the pool; a worker
    # that took it itself would only print a traceback and break the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # What the fork brought along is never garbage here: out of the collector's sight, its
    # pages are not written to (and copied) by each collection's pass over them.
    gc.freeze()


def batch_to_slot(data: bytes, where: str, item_count: int, provenance: Mapping[str, Any] | None, slot: int) -> int | bytes:
    """In a worker process: :func:`batch_to_record_batch` into the shared ``slot``
    (:meth:`SharedSlots.put`: the stream's length, or the stream when it does not fit)."""
    if _worker_slots is None:
        raise RuntimeError("batch_to_slot runs in a worker started by item_record_batches")
    return _worker_slots.put(slot, batch_to_record_batch(data, where, item_count, provenance))


def fetch_to_slot(ref: BatchRef, provenance: Mapping[str, Any] | None, slot: int) -> int | bytes:
    """In a worker process: fetch ``ref``'s batch (checked, :meth:`BatchStore.fetch`) and
    put its record batch in the shared ``slot`` (:func:`batch_to_slot`)."""
    if _worker_batches is None:
        raise RuntimeError("fetch_to_slot runs in a worker started by item_record_batches")
    return batch_to_slot(_worker_batches.fetch(ref), where_of(ref), ref.item_count, provenance, slot)


class DecodingProcesses:
    """``workers`` worker processes that turn batches into record batches, with their
    shared slots (one per batch in flight: ``window``). Forked at once, here: before any
    thread of the caller's (fetching, writing Parquet) is started with them in mind, so no
    child inherits a lock another thread held; start them before those threads and keep
    them for as many calls of :func:`item_record_batches` as there are (an export's pages).
    From a store safe after a fork (:func:`fetches_in_workers`), they fetch too."""

    def __init__(self, batches: BatchStore, workers: int, window: int | None = None) -> None:
        self.fetches = fetches_in_workers(batches)
        self.window = window or 2 * workers + 2
        self.workers = workers
        # Imported once before the fork rather than in each worker (dictionary_encode needs it): ~60 ms each.
        importlib.import_module("pyarrow.compute")
        self.slots = SharedSlots(self.window)
        self.pool: ProcessPoolExecutor | None = None
        try:
            # Forked with the store and the slots (initializer arguments are inherited,
            # never pickled); with fork, the pool starts all its processes at its first call.
            self.pool = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("fork"), initializer=_start_worker,
                initargs=(batches if self.fetches else None, self.slots),
            )
            self.pool.submit(int).result()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None
        self.slots.close()

    def __enter__(self) -> DecodingProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decoded_in_processes(
    decoders: DecodingProcesses,
    batches: BatchStore,
    refs: Iterable[BatchRef],
    extra: Iterator[Mapping[str, Any]] | None,
) -> Iterator[pa.RecordBatch]:
    """Record batches of ``refs`` from the worker processes, in order. Where they fetch,
    only refs go out (measured: ~0.2 us of CPU per item less between the two processes);
    otherwise this process's threads fetch and hand the bytes over."""
    pool, slots, window = decoders.pool, decoders.slots, decoders.window
    if pool is None:
        raise RuntimeError("the decoding processes were closed")
    fetcher = None if decoders.fetches else ThreadPoolExecutor(max(2, decoders.workers), thread_name_prefix="arrow-items")

    def fetch_and_decode(ref: BatchRef, where: Mapping[str, Any] | None, slot: int) -> int | bytes:
        return pool.submit(batch_to_slot, batches.fetch(ref), where_of(ref), ref.item_count, where, slot).result()

    def submit(ref: BatchRef, where: Mapping[str, Any] | None, slot: int) -> Future[int | bytes]:
        if fetcher is None:
            return pool.submit(fetch_to_slot, ref, where, slot)
        return fetcher.submit(fetch_and_decode, ref, where, slot)

    pending: deque[tuple[int, Future[int | bytes]]] = deque()
    try:
        # A slot is reused only once the batch that had it was taken (window apart).
        for index, ref in enumerate(refs):
            slot = index % window
            pending.append((slot, submit(ref, next(extra) if extra is not None else None, slot)))
            if len(pending) >= window:
                slot, answer = pending.popleft()
                yield slots.take(slot, answer.result())
        while pending:
            slot, answer = pending.popleft()
            yield slots.take(slot, answer.result())
    finally:
        for _, future in pending:
            future.cancel()
        if fetcher is not None:
            fetcher.shutdown(cancel_futures=True)


# ---- events ----------------------------------------------------------------------------


@functools.cache
def event_schema() -> pa.Schema:
    pa = pyarrow()
    return pa.schema(
        [
            pa.field("position", pa.int64(), nullable=False),
            pa.field("order_id", pa.string(), nullable=False),
            pa.field("aggregate_id", pa.string(), nullable=False),
            pa.field("version", pa.int64(), nullable=False),
            pa.field("type", pa.string(), nullable=False),
            pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("batch_id", pa.string()),
            pa.field("items", pa.int64(), nullable=False),
            pa.field("quantity", pa.int64(), nullable=False),
            pa.field("data", pa.string(), nullable=False),
        ],
        metadata={"bulkorder.data": "data is the whole event as JSON (the export's NDJSON document)"},
    )


def events_record_batch(documents: Sequence[Mapping[str, Any]]) -> pa.RecordBatch:
    """The export's event documents (``bulkorder.analysis.history.event_document``) as rows."""
    pa = pyarrow()
    batch_ids: list[str | None] = []
    items: list[int] = []
    quantities: list[int] = []
    for document in documents:
        ref = document.get("batch") if isinstance(document.get("batch"), dict) else None
        batch_ids.append(ref["batch_id"] if ref else document.get("batch_id"))
        items.append(int(ref["item_count"]) if ref and document["type"] == "ItemsAdded" else 0)
        quantities.append(int(ref["quantity"]) if ref and document["type"] == "ItemsAdded" else 0)
    columns = [
        int64_column([d["position"] for d in documents]),
        string_column([d["order_id"] for d in documents]),
        string_column([d["aggregate_id"] for d in documents]),
        int64_column([d["version"] for d in documents]),
        string_column([d["type"] for d in documents]),
        timestamp_column([datetime.fromisoformat(d["timestamp"]) for d in documents]),
        with_nulls(string_column([batch_id or "" for batch_id in batch_ids]), [batch_id is not None for batch_id in batch_ids]),
        int64_column(items),
        int64_column(quantities),
        json_column(documents),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=event_schema())
