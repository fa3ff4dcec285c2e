"""Bounded zstd decompression: the declared size is read first, an undeclared one streamed."""

from __future__ import annotations

import resource

import pytest
import zstandard

from bulkorder.storage.bounded_zstd import STREAM_STEP, declared_size, decompress_bounded

MiB = 2**20


class Refused(ValueError):
    pass


def frame(data: bytes, *, declare: bool = True) -> bytes:
    return zstandard.ZstdCompressor(write_content_size=declare).compress(data)


@pytest.mark.parametrize("declare", [True, False], ids=["declared", "undeclared"])
def test_content_within_the_limit_comes_back(declare: bool) -> None:
    data = bytes(range(256)) * 400
    assert decompress_bounded(frame(data, declare=declare), len(data), where="t", error=Refused, exact=True) == data
    assert decompress_bounded(frame(data, declare=declare), 10 * len(data), where="t", error=Refused) == data


def test_a_declared_size_over_the_limit_is_refused_from_the_header() -> None:
    assert declared_size(frame(b"x" * 5000), where="t", error=Refused) == 5000
    with pytest.raises(Refused, match="t: zstd frame declares 5000 bytes of content, but the limit is 4999"):
        decompress_bounded(frame(b"x" * 5000), 4999, where="t", error=Refused)
    with pytest.raises(Refused, match="declares 5000 bytes of content, but the size is 6000"):
        decompress_bounded(frame(b"x" * 5000), 6000, where="t", error=Refused, exact=True, bound="the size is")


def test_an_undeclared_size_is_held_to_the_limit_while_streaming() -> None:
    # The bound max_output_size promises is honoured: the stream stops at the limit.
    stream = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    bomb = b"".join(stream.compress(b"\0" * MiB) for _ in range(2048)) + stream.flush()  # 2 GiB in ~64 KB
    assert declared_size(bomb, where="t", error=Refused) is None
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with pytest.raises(Refused, match=f"undeclared size expands past {4 * MiB} bytes .*decompression stopped"):
        decompress_bounded(bomb, 4 * MiB, where="t", error=Refused)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown < 64 * MiB  # the limit plus one step, not 2 GiB
    with pytest.raises(Refused, match="holds 1000 bytes of content, but the limit is 1001"):
        decompress_bounded(frame(b"y" * 1000, declare=False), 1001, where="t", error=Refused, exact=True)


@pytest.mark.parametrize("declare", [True, False], ids=["declared", "undeclared"])
def test_trailing_truncated_and_foreign_bytes_are_refused(declare: bool) -> None:
    good = frame(b"z" * (3 * STREAM_STEP), declare=declare)
    with pytest.raises(Refused, match="unused data|trailing data"):
        decompress_bounded(good + b"junk", 10_000, where="t", error=Refused)
    with pytest.raises(Refused, match="cannot decompress"):
        decompress_bounded(good[:-4], 10_000, where="t", error=Refused)
    with pytest.raises(Refused, match="not a zstd frame"):
        decompress_bounded(b"PK\x03\x04 not zstd", 10_000, where="t", error=Refused)
