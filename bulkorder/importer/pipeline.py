"""The import pipeline: read → parse, validate, encode (processes) → upload (threads) →
send refs to the order workflow, every stage bounded, batches kept in input order.

::

    reader thread ──RawBatch──▶ process pool ──StageResult──▶ upload threads ──▶ sender
    (cut + hash)                (parse, validate,             (BatchStore         (signals or
                                 encode, sha-256)              .put_encoded)       updates)

Each queue holds a few batches at most, so memory stays flat however large the input.
Batches are sent strictly in input order: when batch ``k`` is invalid, every batch before
it is sent and none from ``k`` on, so the error can say exactly which lines are in the
order, and fixing line ``N`` then running the same command again resumes there.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Awaitable, Mapping

from bulkorder.domain.refs import BatchRef
from bulkorder.importer.encoders import EncoderPool
from bulkorder.importer.errors import ImportInputError
from bulkorder.importer.progress import ImportProgress
from bulkorder.importer.rejects import RejectsFile
from bulkorder.importer.sources import ItemSource, RawBatch
from bulkorder.importer.stage import Problem, StageResult, StageTask, stage_batch
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.leases import WriteLeases
from bulkorder.workflows.client import OrderClient
from bulkorder.workflows.messages import MAX_REFS_PER_CALL


@dataclass
class _Entry:
    """One batch on its way through the pipeline, in input order."""

    batch: RawBatch | StageResult
    #: Pending encoding (process pool) or upload (thread pool); None when skipped or empty.
    future: Awaitable[Any] | None = None
    skipped: bool = False
    ref: BatchRef | None = None
    #: The write lease on the batch's blob, once uploaded (released once acknowledged).
    lease: str | None = None


@dataclass
class _Stop:
    """The batch at which the import stops (an invalid line), after the ones before it."""

    error: ImportInputError


@dataclass
class _Crash:
    """A stage failed unexpectedly (an unreadable file, a dead process): passed down in
    order so the sender raises it."""

    error: BaseException


_END = object()
logger = logging.getLogger(__name__)

#: Seconds the sender waits for more refs before a call that would carry only one.
SEND_LINGER = 0.1


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
        self.recorded = recorded
        self.create_customer = create_customer
        self.encoders = encoders
        self.uploaders = uploaders
        self.skip_invalid = skip_invalid
        self.acknowledge = acknowledge
        self.progress = progress
        self._encoded: asyncio.Queue[Any] = asyncio.Queue(maxsize=encoder_count * 2)
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
        # Garbage collection keeps a blob under a live lease: one per batch, taken before
        # its upload, released once the workflow acknowledged the ref (signals: after a
        # query answered at the end, which the workflow answers after those signals).
        self.leases = WriteLeases(batches.blobs)
        self._signalled_leases: list[str] = []

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
        finally:
            self._stopping = True
            for task in (reader, uploader):
                task.cancel()
            await asyncio.gather(reader, uploader, return_exceptions=True)
            self._reader.shutdown(wait=False, cancel_futures=True)

    # ---- stage 1: cut, hash, hand to the encoding processes ---------------------------

    async def _read_and_encode(self) -> None:
        batches = self.source.batches()
        columns = self.source.columns
        try:
            # The order's data key (blob I/O on first use, in the reader thread): the
            # encoding processes seal each batch with it, before it is hashed.
            data_key = await asyncio.wrap_future(self._reader.submit(self.batches.data_key, self.order_id))
            while not self._stopping:
                # Reading and hashing run in a thread: the event loop keeps sending.
                self._reading = self._reader.submit(next, batches, None)
                batch = await asyncio.wrap_future(self._reading)
                if batch is None:
                    break
                if batch.batch_id in self.recorded:
                    await self._encoded.put(_Entry(batch, skipped=True))
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
                await self._encoded.put(_Entry(batch, future=asyncio.wrap_future(self.encoders.submit(stage_batch, task))))
        except ImportInputError as exc:  # the reader found the input malformed here
            await self._encoded.put(_Stop(exc))
        except Exception as exc:  # noqa: BLE001 - passed on, raised by the sender
            await self._encoded.put(_Crash(exc))
        finally:
            # Not when stopping: this task was cancelled because the sender failed, nobody
            # reads the queue any more, and a put into a full queue would wait forever.
            if not self._stopping:
                await self._encoded.put(_END)

    # ---- stage 2: in order, check what the processes made and upload it ---------------

    async def _upload_in_order(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                entry = await self._encoded.get()
                if not isinstance(entry, _Entry):  # the end, a stop or a crash
                    await self._uploaded.put(entry)
                    return
                if entry.skipped:
                    await self._uploaded.put(entry)
                    continue
                result: StageResult = await entry.future
                if result.problems and self.skip_invalid is None:
                    await self._uploaded.put(_Stop(self._input_error(result.problems[0])))
                    return
                if self.skip_invalid is not None:
                    await asyncio.to_thread(self.skip_invalid.write, self.source.name, result.batch_id, result.problems)
                    self.progress.rejected += len(result.problems)
                upload = None
                if result.ref is not None:
                    # Encoder processes hold no secret: the ref is sealed here, once.
                    result.ref = self.batches.seal(result.ref, order_id=self.order_id)
                    upload = loop.run_in_executor(
                        self.uploaders, self.batches.put_leased, result.ref, result.data, self.leases
                    )
                result.data = b""  # the upload thread holds the bytes now
                await self._uploaded.put(_Entry(result, future=upload, ref=result.ref))
        except Exception as exc:  # noqa: BLE001 - passed on, raised by the sender
            await self._uploaded.put(_Crash(exc))

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
            if entry is _END:
                return
            if isinstance(entry, _Crash):
                raise entry.error
            if isinstance(entry, _Stop):
                self.stop_error = entry.error
                self._stopping = True
                self._drain(self._encoded)
                return
            group = [entry]
            if entry.future is not None:
                entry.lease = await entry.future
            if self._uploaded.empty():
                # Linger a moment so that one call carries several refs: fewer signals,
                # fewer recording activities, a shorter history per item.
                await asyncio.sleep(SEND_LINGER)
            # Take along whatever else is already uploaded: one call carries many refs.
            refs = 1 if entry.ref is not None else 0
            while refs < MAX_REFS_PER_CALL:
                try:
                    following = self._uploaded.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if not isinstance(following, _Entry) or (following.future is not None and not following.future.done()):
                    held = following
                    break
                if following.future is not None:
                    following.lease = await following.future  # done: raises if the upload failed
                group.append(following)
                refs += following.ref is not None
            acknowledged = self.acknowledge or self.create_customer is not None  # create is an update
            await self._send([item.ref for item in group if item.ref is not None])
            leases = [item.lease for item in group if item.lease is not None]
            if acknowledged:
                await asyncio.to_thread(self.leases.release, leases)
            else:
                self._signalled_leases.extend(leases)
            for item in group:
                self._count(item)

    async def _release_signalled(self) -> None:
        """Signals carry no answer: a query answered after them (Temporal answers a query
        after the signals sent before it) says the workflow holds their refs."""
        if not self._signalled_leases:
            return
        try:
            await self.client.summary(self.order_id)
        except Exception as exc:  # noqa: BLE001 - the import is done; the leases just expire
            logger.warning(
                "order %s: no answer after the signals (%s): %d write leases left to expire",
                self.order_id, exc, len(self._signalled_leases),
            )
            return
        await asyncio.to_thread(self.leases.release, self._signalled_leases)
        self._signalled_leases = []

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

    def _count(self, entry: _Entry) -> None:
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

    @staticmethod
    def _drain(queue: asyncio.Queue[Any]) -> None:
        """Drop what is queued (unblocking a producer); cancel encodings not started."""
        while True:
            try:
                entry = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            future = getattr(entry, "future", None)
            if isinstance(future, asyncio.Future):
                future.cancel()


def default_workers() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


