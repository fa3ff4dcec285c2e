"""The bytes of one batch: a fixed header, then the items as msgpack, compressed.

Header (20 bytes, little-endian)::

    magic           4s   b"BKOB"
    format_version  u8   domain.refs.BATCH_FORMAT_VERSION
    compression     u8   0 = none, 1 = zstd
    flags           u16  0 (reserved)
    item_count      u32  number of items in the body
    raw_size        u64  length of the uncompressed msgpack body

Body: one msgpack array of item maps. The header lets a reader reject foreign or future
data before decompressing anything, and bounds decompression (``raw_size``), so a
malformed or hostile blob fails with :class:`~storage.errors.BatchFormatError` instead of
exhausting memory. Items are encoded as they are: validation happened before
(``domain.items.validate_item_dicts``), this module only moves bytes.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import msgpack
import zstandard

from domain.refs import BATCH_FORMAT_VERSION
from storage.errors import BatchFormatError

MAGIC = b"BKOB"
HEADER = struct.Struct("<4sBBHIQ")
HEADER_SIZE = HEADER.size  # 20
COMPRESSION_NONE = 0
COMPRESSION_ZSTD = 1
COMPRESSIONS = frozenset({COMPRESSION_NONE, COMPRESSION_ZSTD})
DEFAULT_LEVEL = 3
#: No batch body may claim more than this uncompressed (an allocation bound for readers).
MAX_RAW_SIZE = 2 << 30
_MAX_ITEM_COUNT = (1 << 32) - 1


@dataclass(frozen=True)
class BatchHeader:
    format_version: int
    compression: int
    flags: int
    item_count: int
    raw_size: int


# zstandard's compressor and decompressor objects are not thread-safe, but are costly
# enough to build that one per call shows up when encoding millions of items: keep one
# per thread (and per level, for compressors).
_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    compressors: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "compressors", None)
    if compressors is None:
        compressors = _local.compressors = {}
    compressor = compressors.get(level)
    if compressor is None:
        compressor = compressors[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    decompressor: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    return decompressor


def _to_builtin(obj: object) -> object:
    # msgpack packs dicts natively; other mappings (MappingProxyType, ...) become dicts.
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"cannot encode {type(obj).__name__} in a batch")


def encode_batch(items: Sequence[Mapping[str, Any]], *, level: int = DEFAULT_LEVEL, compress: bool = True) -> bytes:
    """Encode ``items`` (validated item dicts) as one batch.

    ``level`` is the zstd level (1-22; 3 is a good speed/size balance for msgpack).
    ``compress=False`` writes the body uncompressed (compression 0).
    """
    if len(items) > _MAX_ITEM_COUNT:
        raise ValueError(f"a batch holds at most {_MAX_ITEM_COUNT} items, got {len(items)}")
    body = items if isinstance(items, list) else list(items)
    raw = msgpack.packb(body, use_bin_type=True, default=_to_builtin)
    return frame_batch(raw, len(body), level=level, compress=compress)


def frame_batch(raw: bytes, item_count: int, *, level: int = DEFAULT_LEVEL, compress: bool = True) -> bytes:
    """Header plus (compressed) body for ``raw``, a msgpack array of ``item_count`` item
    maps packed elsewhere (the importer packs with msgspec straight from its decoder)."""
    if not 0 <= item_count <= _MAX_ITEM_COUNT:
        raise ValueError(f"a batch holds at most {_MAX_ITEM_COUNT} items, got {item_count}")
    if len(raw) > MAX_RAW_SIZE:
        raise ValueError(f"batch body is {len(raw)} bytes, more than the {MAX_RAW_SIZE} a batch may hold")
    if compress:
        payload, compression = _compressor(level).compress(raw), COMPRESSION_ZSTD
    else:
        payload, compression = raw, COMPRESSION_NONE
    header = HEADER.pack(MAGIC, BATCH_FORMAT_VERSION, compression, 0, item_count, len(raw))
    return header + payload


def read_header(data: bytes | memoryview, *, where: str = "batch") -> BatchHeader:
    """Parse and check the header of a batch; the body is not looked at."""
    if len(data) < HEADER_SIZE:
        raise BatchFormatError(
            f"{where}: too short for a batch ({len(data)} bytes, the header alone is {HEADER_SIZE})"
        )
    magic, version, compression, flags, item_count, raw_size = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise BatchFormatError(f"{where}: not a batch (bad magic {bytes(magic)!r}, expected {MAGIC!r})")
    if version != BATCH_FORMAT_VERSION:
        raise BatchFormatError(
            f"{where}: unknown batch format version {version} (this version reads {BATCH_FORMAT_VERSION})"
        )
    if compression not in COMPRESSIONS:
        raise BatchFormatError(f"{where}: unknown compression {compression} (known: 0 none, 1 zstd)")
    if flags != 0:
        raise BatchFormatError(f"{where}: unknown flags {flags:#06x} set in the header (expected 0)")
    if raw_size > MAX_RAW_SIZE:
        raise BatchFormatError(
            f"{where}: header claims a raw size of {raw_size} bytes, above the limit of {MAX_RAW_SIZE}"
        )
    return BatchHeader(version, compression, flags, item_count, raw_size)


def _decompress(body: bytes | memoryview, raw_size: int, where: str) -> bytes:
    # A zstd frame may state its content size; zstandard then allocates that much
    # whatever max_output_size says, so check it against the header first.
    try:
        stated = zstandard.frame_content_size(body)
    except zstandard.ZstdError as exc:
        raise BatchFormatError(f"{where}: body is not a zstd frame ({exc})") from None
    if stated not in (zstandard.CONTENTSIZE_UNKNOWN, raw_size):
        raise BatchFormatError(
            f"{where}: decompressed size {stated} does not match the header's raw size {raw_size}"
        )
    if raw_size == 0:
        raise BatchFormatError(f"{where}: header claims an empty body, which cannot be an array")
    try:
        raw = _decompressor().decompress(body, max_output_size=raw_size, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise BatchFormatError(f"{where}: cannot decompress the body ({exc})") from None
    if len(raw) != raw_size:
        raise BatchFormatError(
            f"{where}: decompressed size {len(raw)} does not match the header's raw size {raw_size}"
        )
    return raw


def decode_batch(data: bytes | memoryview, *, where: str = "batch") -> list[dict[str, Any]]:
    """Decode a batch into its item dicts, checking everything on the way.

    Raises :class:`BatchFormatError`, naming ``where`` (e.g. the batch ID and key), for
    anything that is not a well-formed batch this version can read.
    """
    header = read_header(data, where=where)
    body = memoryview(data)[HEADER_SIZE:]
    if header.compression == COMPRESSION_ZSTD:
        raw: bytes | memoryview = _decompress(body, header.raw_size, where)
    else:
        if len(body) != header.raw_size:
            raise BatchFormatError(
                f"{where}: body is {len(body)} bytes but the header's raw size is {header.raw_size}"
            )
        raw = body
    try:
        items = msgpack.unpackb(raw, raw=False, strict_map_key=True, use_list=True)
    except msgpack.ExtraData:
        raise BatchFormatError(f"{where}: trailing data after the msgpack body") from None
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise BatchFormatError(f"{where}: body is not valid msgpack ({type(exc).__name__}: {exc})") from None
    if type(items) is not list:
        raise BatchFormatError(f"{where}: body is a msgpack {type(items).__name__}, expected an array of items")
    if len(items) != header.item_count:
        raise BatchFormatError(
            f"{where}: body holds {len(items)} items but the header's item count is {header.item_count}"
        )
    for index, item in enumerate(items):
        if type(item) is not dict:
            raise BatchFormatError(f"{where}: item {index} is a {type(item).__name__}, expected a map")
    return items
