"""``import_file``: a file of items into one order, fast, resumable, with flat memory.

The Python API behind ``bulkorder import``. It checks the order can take items before
uploading anything, runs the :class:`~bulkorder.importer.pipeline.Pipeline`, then waits
until the event store has recorded every batch it sent, so that when it returns the
items are durably in the order.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bulkorder.domain.application import Orders
from bulkorder.domain.identity import OrderName, check_customer
from bulkorder.domain.refs import MAX_BATCH_ITEMS
from bulkorder.importer.encoders import EncoderPool, default_workers
from bulkorder.importer.errors import ImportIncompleteError, ImportInputError, ImportRefusedError
from bulkorder.importer.pipeline import Pipeline
from bulkorder.importer.preflight import check_batch_size, prepare_order
from bulkorder.importer.progress import ImportProgress, ProgressView
from bulkorder.importer.rejects import RejectsFile
from bulkorder.importer.sources import DEFAULT_MAX_LINE_BYTES, ItemSource
from bulkorder.importer.stage import warm_up
from bulkorder.tracing import span
from bulkorder.workflows.client import OrderClient

DEFAULT_BATCH_SIZE = 5_000


@dataclass(frozen=True)
class ImportOptions:
    #: ``ndjson``, ``csv`` or ``json``; ``None`` guesses from the file name and content.
    format: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    #: Create the order for this customer if it does not exist yet.
    create_customer: str | None = None
    #: Write refused lines here (JSON lines) and go on, instead of stopping at the first.
    skip_invalid: str | Path | None = None
    #: Send refs as updates (each call acknowledged by the workflow) instead of signals.
    acknowledge: bool = False
    #: Encoding processes; 0 means one per CPU.
    workers: int = 0
    upload_threads: int = 8
    #: Return only once the event store has recorded every batch sent.
    wait_recorded: bool = True
    #: Give up waiting when the event store records nothing new for this long.
    record_timeout: float = 120.0
    #: Longest line, CSV row or JSON array element accepted, in bytes.
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES


@dataclass
class ImportSummary:
    order_id: str
    file: str
    format: str
    #: Items and batches this run added (a re-run of a finished import adds none).
    items: int
    batches: int
    rejected: int
    #: Batches found already in the order, and their lines (a resumed run skips them).
    skipped_batches: int
    skipped_lines: int
    bytes: int
    seconds: float
    items_per_second: float
    #: The order's counters in the event store when the import returned.
    order_items: int
    order_batches: int


async def import_file(
    client: OrderClient,
    orders: Orders,
    order_id: OrderName | str,
    path: str | Path,
    options: ImportOptions = ImportOptions(),
    *,
    view: ProgressView | None = None,
    encoders: EncoderPool | None = None,
) -> ImportSummary:
    """Import the items of ``path`` into the order named ``order_id`` (``customer/reference``).

    ``encoders``: an :class:`EncoderPool` the caller keeps across imports (a service that
    imports many files, one after another, in one process): its processes start once,
    not once per file, and ``options.workers`` is ignored. Without it, the import starts
    its own ``options.workers`` processes and stops them at the end.

    Raises :class:`ImportInputError` (bad input: the file, line and field are named, and
    which lines are in the order), :class:`ImportRefusedError` (the order cannot take
    items), :class:`ImportIncompleteError` (sent but not recorded in time).
    """
    name = OrderName.parse(order_id)
    order_id = str(name)
    if options.create_customer is not None and check_customer(options.create_customer) != name.customer:
        raise ImportInputError(f"create_customer {options.create_customer!r} is not the customer of the order {order_id!r}")
    if client.batches is None:
        raise ValueError("import_file needs an OrderClient with a BatchStore")
    batches = client.batches
    if not 1 <= options.batch_size <= MAX_BATCH_ITEMS:
        raise ImportInputError(f"--batch-size must be from 1 to {MAX_BATCH_ITEMS:,}, got {options.batch_size}")
    if options.workers < 0 or options.upload_threads < 1:
        raise ValueError(f"workers must be 0 (one per CPU) or more, upload_threads 1 or more: {options}")

    def open_source(batch_size: int) -> ItemSource:
        return ItemSource(
            path, format=options.format, order_id=order_id, batch_size=batch_size, max_line_bytes=options.max_line_bytes
        )

    source = open_source(options.batch_size)  # bad files fail here, before anything else
    own_encoders = encoders is None
    if encoders is None:
        workers = options.workers or default_workers()
        try:
            # Started first: they import and warm up while we ask Temporal about the order.
            encoders = EncoderPool(workers)
        except BaseException:
            source.close()
            raise
    else:
        workers = encoders.size
    uploaders = ThreadPoolExecutor(max_workers=options.upload_threads, thread_name_prefix="bulkorder-upload")
    rejects: RejectsFile | None = None
    progress = ImportProgress(source=source.name, total_bytes=source.total_bytes)
    ticker: asyncio.Task[None] | None = None
    pipeline: Pipeline | None = None
    try:
        if own_encoders:
            for _ in range(workers):
                encoders.submit(warm_up, None)
        with span("import.prepare", order_id=order_id):
            start = await prepare_order(client, orders, order_id, create_customer=options.create_customer)
        await asyncio.to_thread(check_batch_size, open_source, start.recorded, options.batch_size, order_id)
        if options.skip_invalid is not None:
            rejects = RejectsFile(options.skip_invalid)
        progress = ImportProgress(source=source.name, total_bytes=source.total_bytes, bytes_done=source.bytes_read)
        pipeline = Pipeline(
            source=source,
            client=client,
            batches=batches,
            order_id=order_id,
            recorded=start.recorded,
            create_customer=start.create_customer,
            encoders=encoders,
            uploaders=uploaders,
            encoder_count=workers,
            upload_threads=options.upload_threads,
            skip_invalid=rejects,
            acknowledge=options.acknowledge,
            progress=progress,
        )
        if view is not None:
            ticker = asyncio.create_task(_tick(view, progress))
        with span("import.send", order_id=order_id):
            await pipeline.run()
        if options.wait_recorded or pipeline.stop_error is not None:
            with span("import.wait_recorded", order_id=order_id, batches=len(pipeline.sent_ids)):
                await wait_recorded(orders, order_id, pipeline.sent_ids, timeout=options.record_timeout)
        if pipeline.stop_error is not None:
            raise _stopped(pipeline.stop_error, pipeline.lines_in_order, progress, source)
        if progress.items == 0 and progress.skipped_batches == 0:
            where = f" ({progress.rejected:,} lines rejected, see {options.skip_invalid})" if progress.rejected else ""
            raise ImportInputError(f"{source.name}: no valid items to import{where}", file=source.name)
        order = await asyncio.to_thread(orders.get_order, order_id)
        seconds = progress.seconds
    finally:
        if ticker is not None:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            if view is not None:
                view.close(progress)
        if pipeline is None or not pipeline.reading:
            source.close()  # (else a thread still waits on a pipe: closing would wait with it)
        if rejects is not None:
            rejects.close()
        uploaders.shutdown(wait=True)
        if own_encoders:
            encoders.shutdown()
    return ImportSummary(
        order_id=order_id,
        file=source.name,
        format=source.format,
        items=progress.items,
        batches=progress.batches,
        rejected=progress.rejected,
        skipped_batches=progress.skipped_batches,
        skipped_lines=progress.skipped_lines,
        bytes=progress.bytes_done,
        seconds=round(seconds, 3),
        items_per_second=round(progress.items / seconds, 1),
        order_items=order.item_count,
        order_batches=order.batch_count,
    )


async def _tick(view: ProgressView, progress: ImportProgress) -> None:
    interval = getattr(view, "interval", 1.0)
    while True:
        await asyncio.sleep(interval)
        view.show(progress)


def _stopped(error: ImportInputError, lines_in_order: int, progress: ImportProgress, source: ItemSource) -> ImportInputError:
    line = error.line or lines_in_order + 1
    first = source.header_lines + 1
    if lines_in_order >= first:
        done = (
            f"lines {first}-{lines_in_order} are in the order ({progress.items:,} items added now"
            + (f", {progress.skipped_batches:,} batches were already there" if progress.skipped_batches else "")
            + f"); fix line {line} and run the same command again to resume"
        )
    else:
        done = f"nothing was imported; fix line {line} and run the command again"
    return ImportInputError(f"{error} — {done}", file=error.file, line=error.line, field=error.field)


async def wait_recorded(orders: Orders, order_id: str, batch_ids: list[str], *, timeout: float) -> None:
    """Wait until the event store holds every batch in ``batch_ids``; raise if it refused
    some, or records nothing new for ``timeout`` seconds."""
    if not batch_ids:
        return
    loop = asyncio.get_running_loop()
    missing = list(batch_ids)
    last_progress = loop.time()
    delay = 0.05
    while True:
        order = await asyncio.to_thread(orders.get_order, order_id)
        refused = [batch_id for batch_id in missing if batch_id in order.rejected_batch_ids]
        if refused:
            raise ImportRefusedError(
                f"order {order_id!r} refused {len(refused)} batch(es) of this import: "
                f"{order.rejected_batch_ids[refused[0]]}"
            )
        still = [batch_id for batch_id in missing if batch_id not in order.batch_ids]
        if not still:
            return
        if len(still) < len(missing):
            last_progress = loop.time()
        elif loop.time() - last_progress > timeout:
            raise ImportIncompleteError(
                f"Temporal accepted every batch, but after {timeout:.0f} s the event store still misses "
                f"{len(still)} of them: is a worker running on the task queue? Running the same import "
                "again later is safe"
            )
        missing = still
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)
