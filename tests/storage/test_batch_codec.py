"""The batch format: a checked header, then msgpack items, zstd-compressed."""

from __future__ import annotations

import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import Any

import msgpack
import pytest
import zstandard

from bulkorder.storage.batch_codec import (
    COMPRESSION_NONE,
    COMPRESSION_ZSTD,
    HEADER_SIZE,
    MAGIC,
    MAX_EXPANSION_RATIO,
    MAX_RAW_SIZE,
    BatchHeader,
    decode_batch,
    encode_batch,
    read_header,
)
from bulkorder.storage.errors import BatchFormatError
from tests.storage.items import make_item, make_items

WHERE = "batch 'b-1' (batches/ab/abcd)"


def build(
    raw: bytes,
    *,
    compress: bool = True,
    count: int = 1,
    raw_size: int | None = None,
    magic: bytes = MAGIC,
    version: int = 1,
    compression: int | None = None,
    flags: int = 0,
    content_size: bool = True,
) -> bytes:
    """A batch with every header field under the test's control."""
    body = zstandard.ZstdCompressor(write_content_size=content_size).compress(raw) if compress else raw
    header = struct.pack(
        "<4sBBHIQ",
        magic,
        version,
        (COMPRESSION_ZSTD if compress else COMPRESSION_NONE) if compression is None else compression,
        flags,
        count,
        len(raw) if raw_size is None else raw_size,
    )
    return header + body


def packed(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def fails(data: bytes, *fragments: str) -> BatchFormatError:
    with pytest.raises(BatchFormatError) as info:
        decode_batch(data, where=WHERE)
    message = str(info.value)
    assert message.startswith(WHERE + ": ")
    for fragment in fragments:
        assert fragment in message, message
    return info.value


def test_round_trip_keeps_every_field_and_type() -> None:
    items = [
        make_item("SKU-1", 2, 150, "USD", "Widget"),
        make_item("SKU-2", 3, 0, "EUR", "Ünïcödé ✓ 名前", colour="red", weight=1.25, fragile=True, note=None, rank=-3),
    ]
    assert decode_batch(encode_batch(items)) == items


@pytest.mark.parametrize("level", [1, 3, 19])
def test_round_trip_at_several_levels(level: int) -> None:
    items = make_items(500)
    assert decode_batch(encode_batch(items, level=level)) == items


def test_uncompressed_round_trip() -> None:
    items = make_items(10)
    data = encode_batch(items, compress=False)
    assert read_header(data).compression == COMPRESSION_NONE
    assert decode_batch(data) == items


def test_header_layout() -> None:
    items = make_items(7)
    data = encode_batch(items)
    raw = packed(items)
    assert HEADER_SIZE == 20
    assert data[:4] == b"BKOB"
    assert struct.unpack("<4sBBHIQ", data[:20]) == (b"BKOB", 1, 1, 0, 7, len(raw))
    assert read_header(data) == BatchHeader(format_version=1, compression=1, flags=0, item_count=7, raw_size=len(raw))
    assert zstandard.ZstdDecompressor().decompress(data[20:]) == raw


def test_encoding_is_deterministic_and_compresses() -> None:
    items = make_items(2000)
    assert encode_batch(items) == encode_batch(list(items))
    assert len(encode_batch(items)) < len(packed(items)) / 3


def test_mappings_other_than_dicts_are_encoded_as_maps() -> None:
    item = make_item()
    proxy = MappingProxyType({**item, "unit_price": MappingProxyType(item["unit_price"])})
    assert decode_batch(encode_batch([proxy])) == [item]


def test_decode_reads_from_a_memoryview() -> None:
    items = make_items(3)
    assert decode_batch(memoryview(encode_batch(items))) == items


# Every way a batch can be malformed gives BatchFormatError naming the batch and the problem.


def test_short_data() -> None:
    fails(b"BKOB\x01", "too short", "5 bytes")
    fails(b"", "too short")


def test_bad_magic() -> None:
    fails(build(packed([{}]), magic=b"PK\x03\x04"), "bad magic", "not a batch")


def test_unknown_version() -> None:
    fails(build(packed([{}]), version=2), "unknown batch format version 2")


def test_unknown_compression() -> None:
    fails(build(packed([{}]), compression=7), "unknown compression 7")


def test_non_zero_flags() -> None:
    fails(build(packed([{}]), flags=4), "unknown flags 0x0004")


def test_raw_size_above_the_cap_is_refused_before_decompressing() -> None:
    fails(build(packed([{}]), raw_size=MAX_RAW_SIZE + 1), "above the limit")


@pytest.mark.parametrize("content_size", [True, False])
@pytest.mark.parametrize("delta", [-1, 1, 1000])
def test_decompressed_size_must_equal_raw_size(content_size: bool, delta: int) -> None:
    raw = packed(make_items(5))
    data = build(raw, count=5, raw_size=len(raw) + delta, content_size=content_size)
    err = fails(data)
    assert "raw size" in str(err) or "cannot decompress" in str(err)


def test_frame_claiming_a_huge_size_is_refused_without_allocating() -> None:
    # A hand-made zstd frame whose header states 1 TiB of content: zstandard would try to
    # allocate that much whatever max_output_size says, so the codec must refuse first.
    raw = packed([{}])
    frame = (
        b"\x28\xb5\x2f\xfd"  # zstd magic
        + b"\xe0"  # single segment, 8-byte frame content size
        + (1 << 40).to_bytes(8, "little")
        + bytes([1 | len(raw) << 3, 0, 0])  # last block, raw, len(raw) bytes
        + raw
    )
    assert zstandard.frame_content_size(frame) == 1 << 40
    header = struct.pack("<4sBBHIQ", MAGIC, 1, COMPRESSION_ZSTD, 0, 1, len(raw))
    fails(header + frame, f"zstd frame declares {1 << 40} bytes of content, but the header's raw size is {len(raw)}")


def test_uncompressed_body_length_must_equal_raw_size() -> None:
    raw = packed([{}])
    fails(build(raw, compress=False, raw_size=len(raw) + 3), "body is 2 bytes", "raw size is 5")


def test_corrupt_compressed_body() -> None:
    data = bytearray(encode_batch(make_items(50)))
    fails(bytes(data[: HEADER_SIZE + 10]), "cannot decompress")
    fails(bytes(data[:HEADER_SIZE]) + b"not zstd at all", "not a zstd frame")


def test_trailing_bytes_after_the_zstd_frame() -> None:
    fails(encode_batch(make_items(3)) + b"junk", "cannot decompress", "unused data")


def test_trailing_msgpack_data() -> None:
    raw = packed([{"a": 1}]) + packed(1)
    fails(build(raw), "trailing data")
    fails(build(raw, compress=False), "trailing data")


def test_invalid_msgpack() -> None:
    fails(build(b"\xc1"), "not valid msgpack")
    fails(build(packed(make_items(3))[:-5], count=3), "not valid msgpack")


def test_map_keys_must_be_strings() -> None:
    fails(build(packed([{1: "x"}])), "not valid msgpack")


def test_top_level_must_be_an_array() -> None:
    fails(build(packed({"sku": "x"})), "msgpack dict", "expected an array")


def test_item_count_must_match_the_array() -> None:
    fails(build(packed([{}, {}]), count=3), "body holds 2 items", "item count is 3")


def test_every_item_must_be_a_map() -> None:
    fails(build(packed([{}, 5, {}]), count=3), "item 1 is a int", "expected a map")


def test_compressors_are_safe_to_share_between_threads() -> None:
    batches = [make_items(200 + i) for i in range(32)]
    barrier = threading.Barrier(8)

    def round_trip(index: int) -> bool:
        if index < 8:
            barrier.wait()
        items = batches[index]
        data = encode_batch(items, level=1 + index % 4)
        return decode_batch(data) == items and data == encode_batch(items, level=1 + index % 4)

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(round_trip, range(len(batches))))


# Bounded decoding: the raw-size cap, the expansion ratio, frames of undeclared size.


def test_the_raw_size_cap_is_far_below_two_gib() -> None:
    assert MAX_RAW_SIZE == 256 * 2**20
    fails(build(packed([{}]), raw_size=MAX_RAW_SIZE + 1), "above the limit of 268435456")


def _zeros_frame(size: int, *, content_size: bool) -> bytes:
    """A zstd frame of ``size`` zero bytes, fed in 1 MiB pieces (never built whole)."""
    stream = zstandard.ZstdCompressor(write_content_size=content_size).compressobj(size=size if content_size else -1)
    piece = b"\0" * 2**20
    out = [stream.compress(piece[: min(len(piece), size - done)]) for done in range(0, size, len(piece))]
    return b"".join(out) + stream.flush()


def test_a_body_claiming_more_than_the_expansion_ratio_is_refused_before_decompressing() -> None:
    frame = _zeros_frame(64 * 2**20, content_size=True)  # ~2 KB expanding 30,000x
    header = struct.pack("<4sBBHIQ", MAGIC, 1, COMPRESSION_ZSTD, 0, 1, 64 * 2**20)
    fails(header + frame, f"from a {len(frame)}-byte body", f"above the limit of {MAX_EXPANSION_RATIO}x")


def test_a_frame_of_undeclared_size_is_decompressed_bounded_by_the_raw_size() -> None:
    # Without a declared size, zstandard honours the bound: the stream stops at raw_size.
    raw = packed(make_items(5))
    data = build(raw, count=5, content_size=False)
    assert zstandard.frame_content_size(data[HEADER_SIZE:]) == -1
    assert decode_batch(data, where=WHERE) == make_items(5)
    # The same frame, with a header claiming less than the frame holds.
    err = fails(build(raw, count=5, raw_size=len(raw) - 10, content_size=False))
    assert f"expands past {len(raw) - 10} bytes" in str(err) and "decompression stopped" in str(err)
    # A bomb: 32 KB of frame that would expand to 1 GiB, header within the ratio.
    frame = _zeros_frame(2**30, content_size=False)
    claimed = MAX_EXPANSION_RATIO * len(frame)
    header = struct.pack("<4sBBHIQ", MAGIC, 1, COMPRESSION_ZSTD, 0, 1, claimed)
    fails(header + frame, f"expands past {claimed} bytes", "decompression stopped")


def test_identical_items_are_stored_uncompressed_so_they_stay_readable() -> None:
    # 5,000 identical lines compress ~3,600x, beyond what a reader accepts.
    items = [make_item(0)] * 5000
    data = encode_batch(items)
    header = read_header(data)
    assert header.compression == COMPRESSION_NONE and len(data) == HEADER_SIZE + header.raw_size
    assert decode_batch(data) == items
    # Varied items still compress.
    assert read_header(encode_batch(make_items(5000))).compression == COMPRESSION_ZSTD


def test_a_body_holding_more_items_than_its_header_is_refused() -> None:
    fails(build(packed([{}, {}, {}]), count=2), "not valid msgpack", "max_array_len")


def test_an_item_map_larger_than_an_item_can_be_is_refused() -> None:
    fails(build(packed([{f"k{i}": i for i in range(600)}])), "not valid msgpack", "max_map_len")
