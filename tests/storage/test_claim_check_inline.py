"""Payloads over the threshold that compress to it or less stay inline, compressed:
no blob-store request, still no more than the threshold in Temporal, and a hostile
inline payload is refused like a hostile reference."""

from __future__ import annotations

from pathlib import Path

import pytest
import zstandard
from temporalio.api.common.v1 import Payload

from bulkorder.storage.claim_check import DEFAULT_THRESHOLD, ClaimCheckCodec, is_inline, is_reference
from bulkorder.storage.claim_check_ref import INLINE_ENCODING, INLINE_SIZE_KEY, MAX_EXPANSION_RATIO
from bulkorder.storage.errors import ClaimCheckError
from bulkorder.storage.folder_store import FolderBlobStore
from tests.storage.test_claim_check import assert_identical, order_json, payload_of

MiB = 1024 * 1024


def stored_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


async def test_a_payload_that_compresses_to_the_threshold_stays_inline(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path)
    original = payload_of(order_json(512 * 1024))  # order JSON compresses ~7x
    [encoded] = await ClaimCheckCodec(store).encode([original])
    assert is_inline(encoded) and not is_reference(encoded)
    assert encoded.ByteSize() <= DEFAULT_THRESHOLD + 64  # the frame and two metadata entries
    assert stored_files(tmp_path) == []  # no request made, nothing stored
    [decoded] = await ClaimCheckCodec(store, cache_bytes=0).decode([encoded])
    assert_identical(decoded, original)
    # An inline payload is never encoded again.
    assert await ClaimCheckCodec(store).encode([encoded]) == [encoded]


async def test_a_payload_that_stays_large_once_compressed_goes_to_the_store(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path)
    original = payload_of(order_json(4 * MiB))  # ~400 KB compressed: over the threshold
    [encoded] = await ClaimCheckCodec(store).encode([original])
    assert is_reference(encoded)
    assert len(stored_files(tmp_path)) == 1
    [decoded] = await ClaimCheckCodec(store, cache_bytes=0).decode([encoded])
    assert_identical(decoded, original)


async def test_inline_off_sends_every_large_payload_to_the_store(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path)
    [encoded] = await ClaimCheckCodec(store, inline=False).encode([payload_of(order_json(512 * 1024))])
    assert is_reference(encoded)


def inline(data: bytes, size: bytes) -> Payload:
    return Payload(metadata={"encoding": INLINE_ENCODING, INLINE_SIZE_KEY: size}, data=data)


@pytest.mark.parametrize(
    "payload, message",
    [
        (inline(zstandard.ZstdCompressor().compress(b"x" * 1000), b""), "is not a size in bytes"),
        (inline(zstandard.ZstdCompressor().compress(b"x" * 1000), b"-5"), "is not a size in bytes"),
        (inline(zstandard.ZstdCompressor().compress(b"x" * 1000), b"1e9"), "is not a size in bytes"),
        (inline(zstandard.ZstdCompressor().compress(b"x" * 1000), b"999"), "declares 1000 bytes"),
        (inline(b"not a zstd frame", b"16"), "not a zstd frame"),
        # A bomb: a few bytes promising gigabytes are refused before anything is allocated.
        (inline(zstandard.ZstdCompressor().compress(b"\0" * (8 * MiB)), str(8 * MiB).encode()), f"{MAX_EXPANSION_RATIO}x"),
        (inline(zstandard.ZstdCompressor().compress(b"no payload here"), b"15"), "does not hold a payload"),
    ],
    ids=["no-size", "negative", "not-digits", "wrong-size", "not-zstd", "bomb", "not-a-payload"],
)
async def test_hostile_inline_payloads_are_refused(tmp_path: Path, payload: Payload, message: str) -> None:
    with pytest.raises(ClaimCheckError, match=message):
        await ClaimCheckCodec(FolderBlobStore(tmp_path)).decode([payload])
