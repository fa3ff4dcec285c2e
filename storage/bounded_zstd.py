"""zstd decompression that never produces more than the caller allows.

zstandard's one-shot ``decompress`` allocates whatever a frame *declares* as its content
size, ignoring ``max_output_size``: a 32 KB blob whose frame declares 1 GiB allocates
1 GiB. So the declared size is read first (``frame_content_size``, from the frame header
alone) and refused if it is over the limit, before anything is allocated. A frame that
declares no size is decompressed as a stream, a few hundred input bytes at a time, and
abandoned as soon as its output passes the limit: memory grows with the output actually
produced, never past the limit plus one step (at most ~8 MiB: 256 input bytes hold at most
64 RLE blocks of 128 KiB).

Callers pass the error class to raise (the batch codec's ``BatchFormatError``, the
claim-check codec's ``ClaimCheckError``, ...), so each reader keeps its documented errors.
"""

from __future__ import annotations

import threading
from typing import Callable

import zstandard

#: Input bytes fed per step when a frame does not declare its size.
STREAM_STEP = 256

_local = threading.local()


def _decompressor() -> zstandard.ZstdDecompressor:
    # Not thread-safe, but costly enough to build that one per call shows: one per thread.
    decompressor: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    return decompressor


def declared_size(frame: bytes | memoryview, *, where: str, error: Callable[[str], Exception]) -> int | None:
    """The content size ``frame``'s header declares, ``None`` if it declares none."""
    try:
        size = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as exc:
        raise error(f"{where}: not a zstd frame ({exc})") from None
    # zstandard answers -1 for "not declared" (CONTENTSIZE_UNKNOWN is the C value, 2**64 - 1).
    return None if size < 0 or size == zstandard.CONTENTSIZE_UNKNOWN else int(size)


def decompress_bounded(
    frame: bytes | memoryview,
    limit: int,
    *,
    where: str,
    error: Callable[[str], Exception],
    exact: bool = False,
    bound: str = "the limit is",
) -> bytes:
    """The content of the single zstd frame ``frame``: at most ``limit`` bytes (exactly
    ``limit`` with ``exact``), else ``error(message)`` is raised, naming ``where`` and
    the limit (``bound``, e.g. "the header's raw size is").

    Trailing bytes after the frame are refused too.
    """
    stated = declared_size(frame, where=where, error=error)
    if stated is not None:
        if stated > limit or (exact and stated != limit):
            raise error(f"{where}: zstd frame declares {stated} bytes of content, but {bound} {limit}")
        try:
            raw = _decompressor().decompress(frame, max_output_size=stated, allow_extra_data=False)
        except zstandard.ZstdError as exc:
            raise error(f"{where}: cannot decompress ({exc})") from None
    else:
        raw = _stream(frame, limit, where, error, bound)
    if len(raw) > limit or (exact and len(raw) != limit):
        raise error(f"{where}: zstd frame holds {len(raw)} bytes of content, but {bound} {limit}")
    return raw


def _stream(
    frame: bytes | memoryview, limit: int, where: str, error: Callable[[str], Exception], bound: str
) -> bytes:
    stream = zstandard.ZstdDecompressor().decompressobj()
    view = memoryview(frame)
    chunks: list[bytes] = []
    produced = 0
    try:
        for start in range(0, len(view), STREAM_STEP):
            if stream.eof:
                raise error(f"{where}: {len(view) - start} bytes of trailing data after the zstd frame")
            chunk = stream.decompress(view[start : start + STREAM_STEP])
            produced += len(chunk)
            if produced > limit:
                raise error(
                    f"{where}: zstd frame of undeclared size expands past {limit} bytes ({bound} {limit}); "
                    "decompression stopped"
                )
            chunks.append(chunk)
    except zstandard.ZstdError as exc:
        raise error(f"{where}: cannot decompress ({exc})") from None
    if not stream.eof:
        raise error(f"{where}: cannot decompress (the zstd frame is truncated)")
    if stream.unused_data:
        raise error(f"{where}: {len(stream.unused_data)} bytes of trailing data after the zstd frame")
    return b"".join(chunks)
