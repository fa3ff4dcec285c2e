"""The claim-check payload codec: large Temporal payloads go to the blob store.

Temporal refuses a payload over 2 MB and a gRPC message over 4 MB, and terminates a
workflow whose history passes 50 MB. Batch refs keep item lists out of Temporal, but any
other payload can still grow: an update result, a report passed between activities, a
user's own input. :class:`ClaimCheckCodec` is the safety net under all of them. Every
payload whose serialized size is over the threshold is

1. serialized, metadata and data, so it comes back byte for byte (in two parts, so a
   large one is not copied whole: :mod:`bulkorder.storage.payload_wire`),
2. compressed with zstd (kept raw if that does not make it smaller),
3. (if it is not kept inline, see 4) written to the blob store under ``payloads/<sha[:2]>/<sha>``, the sha-256 of the
   stored bytes (identical payloads share one blob; a reader can check what it got),
4. kept inline, compressed, if that makes it no larger than the threshold (encoding
   ``binary/bulkorder-zstd``, its original size in the metadata): Temporal then carries
   no more than it carries for a payload at the threshold, and no blob-store request is
   made at all (a 1 MiB list of items compresses ~10x). Otherwise it is
5. replaced by a reference payload of ~250 bytes: encoding ``binary/bulkorder-claim-check``
   and a small JSON body (:class:`ClaimCheck`: key, sha-256, stored and original size,
   compression; the reference and the checks on it live in :mod:`bulkorder.storage.claim_check_ref`).

Decoding fetches the blob, checks it against the sha-256 and stored size the reference
carries (never reading more than that size), decompresses it bounded by the reference's
original size (the zstd frame's declared size is read first; a frame of undeclared size is
streamed and stopped at the limit: :mod:`bulkorder.storage.bounded_zstd`), and parses the original
payload. A reference is at most :data:`MAX_REFERENCE_BYTES` of JSON, and may not promise an
expansion over :data:`MAX_EXPANSION_RATIO` (payloads that compress more are stored
uncompressed). A reference is never wrapped again; payloads at or under the threshold pass
untouched.

The codec's ``encode``/``decode`` are async and run on Temporal's event loop, so the blob
I/O, hashing and (de)compression of each payload run in a thread pool, all payloads of
one call in parallel. Decoded payloads are kept in a bounded LRU cache (in bytes), so a
replayed workflow or an activity result decoded right after it was encoded does not
download the same blob again.

Failures are never hidden: a missing blob is :class:`~bulkorder.storage.errors.BlobNotFoundError`,
a hash mismatch :class:`~bulkorder.storage.errors.BlobIntegrityError`, a malformed reference or a
blob that does not restore what it promises (too large, a bomb, not a payload)
:class:`~bulkorder.storage.errors.ClaimCheckError`, each naming the key. A
:class:`~bulkorder.storage.errors.TransientStoreError` is retried a few times here, then raised, so
Temporal retries the task. Nothing ever falls back to sending the payload inline.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Coroutine, Sequence, TypeVar

import zstandard
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from bulkorder.storage.blob_store import BlobStore, content_key, sha256_hex
from bulkorder.storage.bounded_zstd import decompress_bounded
from bulkorder.storage.claim_check_ref import (
    COMPRESSION_NONE,
    COMPRESSION_ZSTD,
    INLINE_ENCODING,
    INLINE_SIZE_KEY,
    KEY_PREFIX,
    MAX_EXPANSION_RATIO,
    MAX_REFERENCE_BYTES,
    REFERENCE_ENCODING,
    SCOPE_PATTERN,
    ClaimCheck,
    inline_original_size,
    is_inline,
    is_reference,
    scoped_prefix,
)
from bulkorder.storage.errors import (
    BlobIntegrityError,
    BlobNotFoundError,
    BlobTooLargeError,
    ClaimCheckError,
    TransientStoreError,
)
from bulkorder.storage.payload_cache import CacheStats, PayloadCache
from bulkorder.storage.payload_wire import payload_is_larger_than, serialized_parts

_T = TypeVar("_T")
logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 128 * 1024
#: Below this, a reference (~250 bytes) could be larger than what it replaces.
MIN_THRESHOLD = 1024
DEFAULT_CACHE_BYTES = 256 * 1024 * 1024
DEFAULT_ZSTD_LEVEL = 1
DEFAULT_ATTEMPTS = 3
#: How often (seconds, at most) the cache's hit rate is logged at INFO level.
STATS_LOG_INTERVAL = 60.0


#: From this size on, zstd compresses with two threads (a third less time at 32 MiB).
MULTITHREAD_FROM = 16 * 1024 * 1024

# zstandard's compressor objects are not thread-safe but cost enough to build that one per
# payload shows: one per thread of the codec's pool.
_local = threading.local()


def _compress(parts: Sequence[bytes], level: int) -> bytes:
    """The zstd frame of ``parts`` concatenated (never built: each part is fed in turn)."""
    size = sum(len(part) for part in parts)
    if size >= MULTITHREAD_FROM:
        # Built per use, never kept: a multithreaded compressor owns a pool of zstd
        # threads, and freeing one in a forked child (where those threads do not exist)
        # waits for them forever.
        compressor = zstandard.ZstdCompressor(level=level, threads=2, write_content_size=True)
    else:
        compressors: dict[int, zstandard.ZstdCompressor] = _local.__dict__.setdefault("compressors", {})
        if level not in compressors:
            compressors[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
        compressor = compressors[level]
    stream = compressor.compressobj(size=size)
    chunks = [stream.compress(part) for part in parts]
    chunks.append(stream.flush())
    return b"".join(chunks)


class ClaimCheckCodec(PayloadCodec):
    """Moves payloads over ``threshold`` bytes to the blob store; see the module doc.

    ``store`` is the blob store, or a function that opens it (called once, on first use,
    so building a data converter stays cheap). One instance serves a whole process: it is
    safe to share between clients, workers and event loops.
    """

    def __init__(
        self,
        store: BlobStore | Callable[[], BlobStore],
        *,
        threshold: int = DEFAULT_THRESHOLD,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        zstd_level: int = DEFAULT_ZSTD_LEVEL,
        prefix: str = KEY_PREFIX,
        max_attempts: int = DEFAULT_ATTEMPTS,
        retry_delay: float = 0.2,
        max_workers: int = 8,
        inline: bool = True,
    ) -> None:
        if threshold < MIN_THRESHOLD:
            raise ValueError(f"claim-check threshold must be at least {MIN_THRESHOLD} bytes, not {threshold}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        if isinstance(store, BlobStore):
            self._store: BlobStore | None = store
            self._open_store: Callable[[], BlobStore] | None = None
        else:
            self._store, self._open_store = None, store
        self.threshold = threshold
        #: Keep payloads that compress to the threshold or less inline (readers of
        #: bulkorder before 0.2 cannot decode them: turn off while such readers remain).
        self.inline = inline
        self.zstd_level = zstd_level
        self.prefix = prefix
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.cache = PayloadCache(cache_bytes)
        self._max_workers = max_workers
        self._executor: ThreadPoolExecutor | None = None
        self._executor_pid = 0
        self._lock = threading.Lock()
        #: Seconds between two INFO lines with the cache's hit rate (at most one per interval).
        self.stats_log_interval = STATS_LOG_INTERVAL
        self._last_stats_log = time.monotonic()
        self._lookups_at_last_log = 0

    @property
    def store(self) -> BlobStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    assert self._open_store is not None
                    self._store = self._open_store()
        return self._store

    def cache_stats(self) -> CacheStats:
        return self.cache.stats()

    def close(self) -> None:
        """Stop the codec's threads (a later call starts new ones)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    # The PayloadCodec interface.

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self._each(payloads, self._needs_encoding, self._encode_one)

    async def encode_for(self, payloads: Sequence[Payload], workflow_id: str | None) -> list[Payload]:
        """Like :meth:`encode`, storing the payloads of an order's workflow under its scope
        (``payloads/w/<workflow ID>/...``), which garbage collection reclaims once Temporal
        no longer holds the workflow. Any other workflow ID stores them unscoped."""
        if workflow_id is None or not SCOPE_PATTERN.fullmatch(workflow_id):
            return await self.encode(payloads)
        prefix = scoped_prefix(self.prefix, workflow_id)
        return await self._each(payloads, self._needs_encoding, lambda payload: self._encode_one(payload, prefix))

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = await self._each(payloads, _is_encoded, self._decode_one)
        self._maybe_log_stats()
        return decoded

    def _needs_encoding(self, payload: Payload) -> bool:
        return not _is_encoded(payload) and payload_is_larger_than(payload, self.threshold)

    async def _each(
        self, payloads: Sequence[Payload], selected: Callable[[Payload], bool], work: Callable[[Payload], Payload]
    ) -> list[Payload]:
        """``payloads`` with ``work`` applied, in threads and in parallel, to the selected ones."""
        results = list(payloads)
        chosen = [index for index, payload in enumerate(results) if selected(payload)]
        if not chosen:
            return results
        loop = asyncio.get_running_loop()
        executor = self._thread_pool()
        done = await _gather_cancel_on_error([loop.run_in_executor(executor, work, results[i]) for i in chosen])
        for index, payload in zip(chosen, done):
            results[index] = payload
        return results

    def _thread_pool(self) -> ThreadPoolExecutor:
        # A forked child inherits the pool object but none of its threads: start anew.
        pid = os.getpid()
        if self._executor is None or self._executor_pid != pid:
            with self._lock:
                if self._executor is None or self._executor_pid != pid:
                    self._executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix="claim-check")
                    self._executor_pid = pid
        return self._executor

    # The work on one payload, in a thread of the pool.

    def _encode_one(self, payload: Payload, prefix: str | None = None) -> Payload:
        head, data = serialized_parts(payload)
        size = len(head) + len(data)
        compressed = _compress((head, data), self.zstd_level)
        # A payload that compresses past what readers accept is stored as it is.
        if len(compressed) < size and size <= MAX_EXPANSION_RATIO * len(compressed):
            if self.inline and len(compressed) <= self.threshold:
                return Payload(
                    metadata={"encoding": INLINE_ENCODING, INLINE_SIZE_KEY: str(size).encode()}, data=compressed
                )
            stored, compression = compressed, COMPRESSION_ZSTD
        else:
            stored, compression = head + data, COMPRESSION_NONE
        sha = sha256_hex(stored)
        claim = ClaimCheck(content_key(sha, prefix or self.prefix), sha, len(stored), size, compression)
        self._retrying(lambda: self.store.put(claim.key, stored), f"write payload blob {claim.key!r}")
        # The process that encodes a payload often decodes it next (an activity result
        # read by the workflow on the same worker): keep it (if the cache would).
        if self.cache.keeps(size):
            self.cache.put(claim.key, head + data)
        logger.debug(
            "claim-check: %d-byte payload stored as %s (%d bytes, %s)", size, claim.key, len(stored), compression
        )
        return claim.to_payload()

    def _decode_one(self, encoded: Payload) -> Payload:
        if is_inline(encoded):
            where = f"inline compressed payload ({len(encoded.data)} bytes)"
            raw = decompress_bounded(
                encoded.data, inline_original_size(encoded), where=where, error=ClaimCheckError, exact=True,
                bound="its metadata's original size is",
            )
        else:
            claim = ClaimCheck.from_payload(encoded, prefix=self.prefix)
            where = f"claim-check blob {claim.key!r}"
            cached = self.cache.get(claim.key)
            if cached is None:
                cached = self._fetch(claim)
                self.cache.put(claim.key, cached)
            raw = cached
        payload = Payload()
        try:
            payload.ParseFromString(raw)
        except DecodeError as exc:
            raise ClaimCheckError(f"{where} does not hold a payload: {exc}") from None
        return payload

    def _fetch(self, claim: ClaimCheck) -> bytes:
        context = f"claim-check payload ({claim.original_size} bytes)"
        try:
            # Proven against the reference: its sha-256, and never more than its stored size read.
            stored = self._retrying(
                lambda: self.store.get(claim.key, sha256=claim.sha256, max_size=claim.stored_size),
                f"read payload blob {claim.key!r}",
            )
        except BlobNotFoundError as exc:
            raise BlobNotFoundError(claim.key, exc.location, context=context) from None
        except BlobIntegrityError as exc:
            raise BlobIntegrityError(claim.key, exc.expected, exc.actual, exc.location, context=context) from None
        except BlobTooLargeError as exc:
            raise ClaimCheckError(f"{context}: {exc}") from None
        if len(stored) != claim.stored_size:
            raise ClaimCheckError(
                f"claim-check blob {claim.key!r} holds {len(stored)} bytes, its reference says {claim.stored_size}"
            )
        if claim.compression == COMPRESSION_NONE:
            return stored
        return decompress_bounded(
            stored,
            claim.original_size,
            where=f"claim-check blob {claim.key!r}",
            error=ClaimCheckError,
            exact=True,
            bound="its reference's original size is",
        )

    def _retrying(self, operation: Callable[[], _T], action: str) -> _T:
        """``operation()``, tried up to ``max_attempts`` times while it fails transiently.

        Sleeping here blocks a pool thread, never the event loop.
        """
        for attempt in range(1, self.max_attempts + 1):
            try:
                return operation()
            except TransientStoreError as exc:
                if attempt == self.max_attempts:
                    raise TransientStoreError(f"claim-check: cannot {action} after {attempt} attempts: {exc}") from exc
                logger.warning("claim-check: cannot %s (attempt %d of %d): %s", action, attempt, self.max_attempts, exc)
                time.sleep(self.retry_delay * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def _maybe_log_stats(self) -> None:
        now = time.monotonic()
        if now - self._last_stats_log < self.stats_log_interval:
            return
        stats = self.cache.stats()
        lookups = stats.hits + stats.misses
        if lookups == self._lookups_at_last_log:
            return
        self._last_stats_log, self._lookups_at_last_log = now, lookups
        logger.info("claim-check cache: %s", stats.describe())


def _is_encoded(payload: Payload) -> bool:
    return is_reference(payload) or is_inline(payload)


async def _gather_cancel_on_error(futures: Sequence[asyncio.Future[_T] | Coroutine[Any, Any, _T]]) -> list[_T]:
    """All results, or the first error (the others are cancelled; no ExceptionGroup)."""
    tasks = [asyncio.ensure_future(future) for future in futures]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


__all__ = [
    "COMPRESSION_NONE",
    "COMPRESSION_ZSTD",
    "DEFAULT_CACHE_BYTES",
    "DEFAULT_THRESHOLD",
    "KEY_PREFIX",
    "MAX_EXPANSION_RATIO",
    "MAX_REFERENCE_BYTES",
    "MIN_THRESHOLD",
    "INLINE_ENCODING",
    "REFERENCE_ENCODING",
    "CacheStats",
    "ClaimCheck",
    "ClaimCheckCodec",
    "PayloadCache",
    "is_inline",
    "is_reference",
]
