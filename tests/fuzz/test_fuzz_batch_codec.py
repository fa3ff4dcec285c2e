"""Fuzz the batch decoders: valid batches mutated, forged headers, random bytes.

Whatever the bytes, :func:`bulkorder.storage.batch_codec.decode_batch`, :func:`read_header` and the
item stream's :func:`bulkorder.analysis.item_stream.transcode` either return item maps or raise
:class:`~bulkorder.storage.errors.BatchFormatError`: never another exception, never unbounded memory
(each example's input is at most a few KB, and the decoders refuse to expand a body past
1,000x or a header's raw size).
"""

from __future__ import annotations

import struct
from typing import Any

import zstandard
from hypothesis import example, given
from hypothesis import strategies as st

from bulkorder.storage.batch_codec import (
    COMPRESSION_NONE,
    COMPRESSION_ZSTD,
    HEADER_SIZE,
    MAGIC,
    decode_batch,
    encode_batch,
    read_header,
)
from bulkorder.storage.errors import BatchFormatError
from bulkorder.analysis.item_stream import transcode

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=True), st.text(max_size=20)
)
items = st.fixed_dictionaries(
    {
        "sku": st.text(min_size=1, max_size=12),
        "quantity": st.integers(1, 10**9),
        "unit_price": st.fixed_dictionaries({"amount": st.integers(0, 10**15), "currency": st.sampled_from(["EUR", "USD"])}),
        "name": st.text(min_size=1, max_size=20),
    },
    optional={"attributes": st.dictionaries(st.text(min_size=1, max_size=8), scalars, max_size=5)},
)


@st.composite
def mutated_batches(draw: st.DrawFn) -> bytes:
    """A valid batch (compressed or not), then a few byte-level mutations of it."""
    data = bytearray(encode_batch(draw(st.lists(items, min_size=1, max_size=8)), compress=draw(st.booleans())))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "truncate", "insert", "header", "append"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[position] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "header" and len(data) >= HEADER_SIZE:
            # Rewrite one header field with a value of the attacker's choice.
            field_offset, fmt = draw(st.sampled_from([(5, "<B"), (6, "<H"), (8, "<I"), (12, "<Q")]))
            limit = 2 ** (8 * struct.calcsize(fmt)) - 1
            struct.pack_into(fmt, data, field_offset, draw(st.integers(0, limit)))
        elif kind == "append":
            data += draw(st.binary(max_size=32))
    return bytes(data)


@st.composite
def forged_batches(draw: st.DrawFn) -> bytes:
    """A well-formed header over a body of the attacker's choosing: raw bytes, msgpack-ish
    bytes, or a zstd frame of either (with or without its declared size)."""
    body = draw(st.binary(max_size=512))
    compression = draw(st.sampled_from([COMPRESSION_NONE, COMPRESSION_ZSTD]))
    if compression == COMPRESSION_ZSTD and draw(st.booleans()):
        body = zstandard.ZstdCompressor(write_content_size=draw(st.booleans())).compress(body)
    raw_size = draw(st.one_of(st.just(len(body)), st.integers(0, 2**64 - 1)))
    count = draw(st.integers(0, 2**32 - 1))
    return struct.pack("<4sBBHIQ", MAGIC, 1, compression, 0, count, raw_size) + body


inputs = st.one_of(mutated_batches(), forged_batches(), st.binary(max_size=256))


def _check_items(decoded: Any) -> None:
    assert type(decoded) is list and all(type(item) is dict for item in decoded)


@given(inputs)
@example(b"")
@example(MAGIC + b"\x01\x01\x00\x00" + b"\x01\x00\x00\x00" + (2**30).to_bytes(8, "little"))
def test_decode_batch_raises_only_batch_format_error(data: bytes) -> None:
    try:
        _check_items(decode_batch(data, where="fuzz"))
    except BatchFormatError as exc:
        assert str(exc).startswith("fuzz: ")


@given(inputs)
def test_read_header_raises_only_batch_format_error(data: bytes) -> None:
    try:
        header = read_header(data, where="fuzz")
    except BatchFormatError:
        return
    assert header.compression in (COMPRESSION_NONE, COMPRESSION_ZSTD)


@given(inputs, st.integers(0, 10))
def test_the_item_stream_decoders_raise_only_batch_format_error(data: bytes, item_count: int) -> None:
    try:
        _check_items(decode_batch(data, where="fuzz", item_count=item_count))
    except BatchFormatError:
        pass
    try:
        assert isinstance(transcode(data, "fuzz", item_count, "ndjson"), bytes)
    except BatchFormatError:
        pass
