"""The import pipeline: read → parse, validate, encode (processes) → upload (threads) →
send refs to the order workflow, every stage bounded, batches kept in input order.

::

    reader thread ──RawBatch──▶ process pool ──StageResult──▶ upload threads ──▶ sender
    (cut + hash)                (parse, validate,             (a lease per        (signals or
                                 encode, sha-256)              window, then        updates)
                                                               .put_encoded)

Each queue holds a few batches at most, so memory stays flat however large the input.
Batches are sent strictly in input order: when batch ``k`` is invalid, every batch before
it is sent and none from ``k`` on, so the error can say exactly which lines are in the
order, and fixing line ``N`` then running the same command again resumes there.

What the stages hand each other, and how they wait for it, is in
:mod:`bulkorder.importer.pipeline_entries`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Mapping

from bulkorder.domain.refs import BatchRef
from bulkorder.importer.encoders import EncoderPool
from bulkorder.importer.errors import ImportInputError
from bulkorder.importer.lease_windows import MAX_WINDOW, WINDOW_LINGER, LeaseWindow, LeaseWindows
from bulkorder.importer.pipeline_entries import END, Crash, Entry, Stop, done_by, drain, next_by
from bulkorder.importer.progress import ImportProgress
from bulkorder.importer.rejects import RejectsFile
from bulkorder.importer.sources import ItemSource
from bulkorder.importer.stage import Problem, StageResult, StageTask, stage_batch
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.leases import WriteLeases
from bulkorder.workflows.client import OrderClient
from bulkorder.workflows.messages import MAX_REFS_PER_CALL


logger = logging.getLogger(__name__)

#: Seconds the sender gathers uploaded refs into one call (the end of the input sends at
#: once). Fewer, larger calls cost the worker and Temporal less: each call is a signal or
#: an update, a workflow task and often a recording activity in the order's history.
#: Measured in docs/benchmarks.md ("The sender gathers for a second"): 1 s against 0.25 s,
#: about a quarter of the history events and ~23% less CPU over all processes per million
#: items; each ref reaches the workflow at most a second later.
SEND_LINGER = 1.0
#: Most refs the sender puts in one call (the workflow takes up to MAX_REFS_PER_CALL): a
#: sealed ref is ~300-470 bytes of JSON, so a call stays under ~240 KB, half of Temporal's
#: default warning size for one payload, however small the batches and fast the input.
SEND_MAX_REFS = min(500, MAX_REFS_PER_CALL)


class Pipeline:
    def __init__(
        self,
        *,
        source: ItemSource,
        client: OrderClient,
        batches: BatchStore,
        order_id: str,
        recorded: Mapping[str, int],
        create_customer: str | None,
        encoders: EncoderPool,
        uploaders: Executor,
        encoder_count: int,
        upload_threads: int,
        skip_invalid: RejectsFile | None,
        acknowledge: bool,
        progress: ImportProgress,
    ) -> None:
        self.source = source
        self.client = client
        self.batches = batches
        self.order_id = order_id
        self.stored_order_id = order_id  # set from the client when reading starts
        self.recorded = recorded
        self.create_customer = create_customer
        self.encoders = encoders
        self.uploaders = uploaders
        self.skip_invalid = skip_invalid
        self.acknowledge = acknowledge
        self.progress = progress
        # Deep enough that the encoders keep busy while a lease window gathers.
        self._encoded: asyncio.Queue[Any] = asyncio.Queue(maxsize=encoder_count * 3)
        self._uploaded: asyncio.Queue[Any] = asyncio.Queue(maxsize=upload_threads * 2)
        self._stopping = False
        #: Batch IDs sent to the workflow by this run (one per batch, not per item).
        self.sent_ids: list[str] = []
        self.stop_error: ImportInputError | None = None
        #: Every line up to here is in the order (sent now or recorded before).
        self.lines_in_order = source.header_lines
        # A thread of its own for reading: one blocked on a pipe whose writer never
        # finishes must not hold up the event loop's default executor at exit.
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulkorder-reader")
        self._reading: Future[Any] | None = None
        # Garbage collection keeps a blob under a live lease: one per window of batches,
        # taken before their uploads, released once the workflow acknowledged all their
        # refs (signals: after a query answered at the end, which the workflow answers
        # after those signals).
        self.leases = WriteLeases(batches.blobs)
        self.windows = LeaseWindows(self.leases)
        self._signalled: list[LeaseWindow] = []
        self._releases: list[asyncio.Future[None]] = []

    @property
    def reading(self) -> bool:
        """A read is still in progress (closing the source now would block on it)."""
        return self._reading is not None and not self._reading.done()

    async def run(self) -> None:
        """Run to the end of the input, or to the first invalid batch (``stop_error``)."""
        reader = asyncio.create_task(self._read_and_encode())
        uploader = asyncio.create_task(self._upload_in_order())
        try:
            await self._send_in_order()
            if self.stop_error is None:
                await uploader
                await reader
            await self._release_signalled()
            releases, self._releases = self._releases, []
            await asyncio.gather(*releases)
        finally:
            self._stopping = True
            for task in (reader, uploader):
                task.cancel()
            await asyncio.gather(reader, uploader, *self._releases, return_exceptions=True)
            self._reader.shutdown(wait=False, cancel_futures=True)

    # ---- stage 1: cut, hash, hand to the encoding processes ---------------------------

    async def _read_and_encode(self) -> None:
        batches = self.source.batches()
        columns = self.source.columns
        try:
            # The order's data key (blob I/O on first use, in the reader thread): the
            # encoding processes seal each batch with it, before it is hashed.
            # A 0.x order's batches go by its bare order ID (its key): the client knows.
            self.stored_order_id = await self.client.stored_order_id(self.order_id)
            data_key = await asyncio.wrap_future(self._reader.submit(self.batches.data_key, self.stored_order_id))
            while not self._stopping:
                # Reading and hashing run in a thread: the event loop keeps sending.
                self._reading = self._reader.submit(next, batches, None)
                batch = await asyncio.wrap_future(self._reading)
                if batch is None:
                    break
                if batch.batch_id in self.recorded:
                    # Only its place is needed from here: a call may gather a second of
                    # skipped batches (a resumed run reads fast), their bytes must not wait with them.
                    await self._encoded.put(Entry(replace(batch, data=b"", records=[], record_lines=[]), skipped=True))
                    continue
                task = StageTask(
                    source=self.source.name,
                    format=self.source.format,
                    batch=batch,
                    columns=columns,
                    skip_invalid=self.skip_invalid is not None,
                    level=self.batches.level,
                    data_key=data_key,
                )
                await self._encoded.put(Entry(batch, future=asyncio.wrap_future(self.encoders.submit(stage_batch, task))))
        except ImportInputError as exc:  # the reader found the input malformed here
            await self._encoded.put(Stop(exc))
        except Exception as exc:  # noqa: BLE001 - passed on, raised by the sender
            await self._encoded.put(Crash(exc))
        finally:
            # Not when stopping: this task was cancelled because the sender failed, nobody
            # reads the queue any more, and a put into a full queue would wait forever.
            if not self._stopping:
                await self._encoded.put(END)

    # ---- stage 2: in order, check what the processes made and upload it ---------------

    async def _upload_in_order(self) -> None:
        held: Any = None
        try:
            while True:
                window, passed, held = await self._gather_window(held)
                await self._lease_and_upload(window)
                if passed is not None:  # the end, a stop or a crash: after the window
                    await self._uploaded.put(passed)
                    return
        except Exception as exc:  # noqa: BLE001 - passed on, raised by the sender
            await self._uploaded.put(Crash(exc))

    async def _gather_window(self, held: Any) -> tuple[list[Entry], Any, Any]:
        """In order, the encoded batches of the next lease window: waits for the first,
        then takes what is encoded within :data:`WINDOW_LINGER`, up to :data:`MAX_WINDOW`
        batches (skipped ones count too). Returns the window, what ends the stream after
        it (or ``None``), and an entry taken but not yet encoded (the next window's first).
        The linger costs no throughput (the encoders keep working meanwhile), only that
        much latency per window; measured, about four batches a window at 5,000 items each."""
        loop = asyncio.get_running_loop()
        window: list[Entry] = []
        deadline: float | None = None
        while len(window) < MAX_WINDOW:
            if held is not None:
                entry, held = held, None
            else:
                entry = await next_by(self._encoded, deadline)
                if entry is None:
                    break
            if not isinstance(entry, Entry):  # the end, a stop or a crash
                return window, entry, None
            if entry.skipped:
                window.append(entry)
                deadline = loop.time() + WINDOW_LINGER if deadline is None else deadline
                continue
            if deadline is not None and not await done_by(entry.future, deadline):  # type: ignore[arg-type]
                return window, None, entry  # still encoding: the next window's first
            result: StageResult = await entry.future  # type: ignore[misc]
            if result.problems and self.skip_invalid is None:
                return window, Stop(self._input_error(result.problems[0])), None
            if self.skip_invalid is not None:
                await asyncio.to_thread(self.skip_invalid.write, self.source.name, result.batch_id, result.problems)
                self.progress.rejected += len(result.problems)
                result.problems = []  # written: not held while the batch waits to be sent
            if result.ref is not None:
                # Encoder processes hold no secret: the ref is sealed here, once.
                result.ref = self.batches.seal(result.ref, order_id=self.stored_order_id)
            window.append(Entry(result, ref=result.ref))
            if deadline is None:
                deadline = loop.time() + WINDOW_LINGER
        return window, None, held

    async def _lease_and_upload(self, window: list[Entry]) -> None:
        """One lease naming every blob of ``window``, then their uploads, all at once,
        each only once the lease is written; passed on in order at once (the next window
        gathers while this one's lease is written: its round trip is never waited for
        here)."""
        uploading = [entry for entry in window if entry.ref is not None]
        if uploading:
            lease = asyncio.ensure_future(
                asyncio.to_thread(self.windows.take, [entry.ref.key for entry in uploading])  # type: ignore[union-attr]
            )
            for entry in uploading:
                result = entry.batch
                assert isinstance(result, StageResult)
                entry.future = asyncio.ensure_future(self._upload_leased(entry, lease, result.data))
                result.data = b""  # the upload holds the bytes now
        for entry in window:
            await self._uploaded.put(entry)

    async def _upload_leased(self, entry: Entry, lease: asyncio.Future[LeaseWindow], data: bytes) -> None:
        entry.lease = await lease  # written before the blob: gc keeps the blob from now on
        assert entry.ref is not None
        await asyncio.get_running_loop().run_in_executor(
            self.uploaders, functools.partial(self.batches.put_encoded, entry.ref, data, leases=self.leases)
        )

    def _input_error(self, problem: Problem) -> ImportInputError:
        return ImportInputError(
            problem.describe(self.source.name), file=self.source.name, line=problem.line, field=problem.field
        )

    # ---- stage 3: in order, send refs to the workflow ---------------------------------

    async def _send_in_order(self) -> None:
        held: Any = None
        while True:
            entry = held if held is not None else await self._uploaded.get()
            held = None
            if entry is END:
                return
            if isinstance(entry, Crash):
                raise entry.error
            if isinstance(entry, Stop):
                self.stop_error = entry.error
                self._stopping = True
                drain(self._encoded)
                return
            if entry.future is not None:
                await entry.future  # raises if the upload failed
            group, held = await self._gather_call(entry)
            acknowledged = self.acknowledge or self.create_customer is not None  # create is an update
            await self._send([item.ref for item in group if item.ref is not None])
            windows = [item.lease for item in group if item.lease is not None]
            if acknowledged:
                self._release(self.windows.acknowledged(windows))
            else:
                self._signalled.extend(windows)
            for item in group:
                self._count(item)

    async def _gather_call(self, first: Entry) -> tuple[list[Entry], Any]:
        """``first`` and the uploaded batches that follow it within :data:`SEND_LINGER`, up
        to :data:`SEND_MAX_REFS` refs: one call carries them all (fewer signals, fewer
        recording activities, a shorter history per item). The end of the input, a stop or
        a crash ends the wait at once (a small import never waits for the linger), and so
        does a failed upload: the batches before it are sent, then its error is raised.
        Returns the group and an entry taken but not part of it (the next call's first, or
        the end)."""
        deadline = asyncio.get_running_loop().time() + SEND_LINGER
        group = [first]
        refs = 1 if first.ref is not None else 0
        while refs < SEND_MAX_REFS:
            following = await next_by(self._uploaded, deadline)
            if following is None:
                break
            if not isinstance(following, Entry):
                return group, following
            if following.future is not None and (
                not await done_by(following.future, deadline) or following.future.exception() is not None  # type: ignore[union-attr]
            ):
                # Still uploading, or failed: the next call's first (where a failure is
                # raised, after this group is sent).
                return group, following
            group.append(following)
            refs += following.ref is not None
        return group, None

    async def _release_signalled(self) -> None:
        """Signals carry no answer: a query answered after them (Temporal answers a query
        after the signals sent before it) says the workflow holds their refs."""
        if not self._signalled:
            return
        try:
            await self.client.summary(self.order_id)
        except Exception as exc:  # noqa: BLE001 - the import is done; the leases just expire
            logger.warning(
                "order %s: no answer after the signals (%s): %d write leases left to expire",
                self.order_id, exc, len({id(window) for window in self._signalled}),
            )
            return
        self._release(self.windows.acknowledged(self._signalled))
        self._signalled = []

    def _release(self, lease_keys: list[str]) -> None:
        """Delete ``lease_keys`` in the background (one request); awaited at the end."""
        if lease_keys:
            self._releases.append(asyncio.ensure_future(asyncio.to_thread(self.windows.release, lease_keys)))

    async def _send(self, refs: list[BatchRef]) -> None:
        if not refs:
            return
        if self.create_customer is not None:
            # Created with its first batches: an import that fails before any valid batch
            # leaves no order behind.
            await self.client.create(self.order_id, refs=refs)  # the name holds the customer
            self.create_customer = None
        else:
            await self.client.add_batches(self.order_id, refs, wait=self.acknowledge)
        self.sent_ids.extend(ref.batch_id for ref in refs)

    def _count(self, entry: Entry) -> None:
        batch = entry.batch
        progress = self.progress
        progress.bytes_done += batch.nbytes
        progress.last_line = batch.last_line
        self.lines_in_order = batch.last_line
        if entry.skipped:
            progress.skipped_batches += 1
            progress.skipped_lines += batch.last_line - batch.first_line + 1
        elif entry.ref is not None:
            progress.items += entry.ref.item_count
            progress.batches += 1
