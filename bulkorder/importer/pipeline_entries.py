"""What flows between the import pipeline's stages, in input order, and how a stage waits
for it: each stage hands the next an :class:`Entry` per batch through a bounded queue, then
:class:`Stop`, :class:`Crash` or :data:`END`; a stage that gathers several (a lease window,
a call to the workflow) waits for them until a deadline (:func:`next_by`, :func:`done_by`).
See :mod:`bulkorder.importer.pipeline`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Awaitable

from bulkorder.domain.refs import BatchRef
from bulkorder.importer.errors import ImportInputError
from bulkorder.importer.lease_windows import LeaseWindow
from bulkorder.importer.sources import RawBatch
from bulkorder.importer.stage import StageResult


@dataclass
class Entry:
    """One batch on its way through the pipeline, in input order."""

    batch: RawBatch | StageResult
    #: Pending encoding (process pool) or upload (thread pool); None when skipped or empty.
    future: Awaitable[Any] | None = None
    skipped: bool = False
    ref: BatchRef | None = None
    #: The window lease naming the batch's blob, taken before its upload (released once
    #: every batch it names is acknowledged).
    lease: LeaseWindow | None = None


@dataclass
class Stop:
    """The batch at which the import stops (an invalid line), after the ones before it."""

    error: ImportInputError


@dataclass
class Crash:
    """A stage failed unexpectedly (an unreadable file, a dead process): passed down in
    order so the sender raises it."""

    error: BaseException


END = object()


async def next_by(queue: asyncio.Queue[Any], deadline: float | None) -> Any:
    """The next entry of ``queue``, or ``None`` if none comes by ``deadline`` (loop time;
    ``None``: wait as long as it takes)."""
    if deadline is None:
        return await queue.get()
    timeout = deadline - asyncio.get_running_loop().time()
    try:
        if timeout <= 0:
            return queue.get_nowait()
        # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation (Ctrl-C) that
        # arrives as the get completes.
        async with asyncio.timeout(timeout):
            return await queue.get()
    except (asyncio.QueueEmpty, TimeoutError):
        return None


async def done_by(future: asyncio.Future[Any], deadline: float) -> bool:
    """Whether ``future`` is done by ``deadline`` (loop time); it is left running if not."""
    timeout = max(deadline - asyncio.get_running_loop().time(), 0)
    done, _ = await asyncio.wait({future}, timeout=timeout)
    return bool(done)


def drain(queue: asyncio.Queue[Any]) -> None:
    """Drop what is queued (unblocking a producer); cancel encodings not started."""
    while True:
        try:
            entry = queue.get_nowait()
        except asyncio.QueueEmpty:
            return
        future = getattr(entry, "future", None)
        if isinstance(future, asyncio.Future):
            future.cancel()

