"""What the claim-check codec refuses, and how it fails: references and frames that lie
about their size or shape are refused before anything large is read or expanded, and a
store that fails for a moment is retried, a bounded number of times.

The round trips, the cache and the shared helpers are in tests/storage/test_claim_check.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zstandard
from temporalio.api.common.v1 import Payload

from bulkorder.storage.blob_store import BlobStore, content_key, sha256_hex
from bulkorder.storage.claim_check import KEY_PREFIX, MAX_EXPANSION_RATIO, MAX_REFERENCE_BYTES, REFERENCE_ENCODING, ClaimCheck
from bulkorder.storage.errors import ClaimCheckError, TransientStoreError
from bulkorder.storage.folder_store import FolderBlobStore
from bulkorder.storage.s3_store import S3BlobStore
from tests.fixtures.s3 import free_port
from tests.storage.test_claim_check import (  # noqa: F401 - s3_store is a fixture
    MiB,
    ReferencingCodec,
    assert_identical,
    order_json,
    payload_of,
    s3_store,
)


async def test_blob_that_restores_more_than_promised_is_refused(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path)
    bomb = zstandard.ZstdCompressor().compress(b"\0" * (8 * MiB))
    sha = sha256_hex(bomb)
    store.put(content_key(sha, KEY_PREFIX), bomb)
    reference = ClaimCheck(content_key(sha, KEY_PREFIX), sha, len(bomb), 1000, "zstd").to_payload()
    with pytest.raises(ClaimCheckError, match=sha):
        await ReferencingCodec(store).decode([reference])


def _stored_reference(store: BlobStore, blob: bytes, original_size: int, compression: str = "zstd") -> Payload:
    """A reference to ``blob``, written under its content key, promising ``original_size``."""
    sha = sha256_hex(blob)
    store.put(content_key(sha, KEY_PREFIX), blob)
    return ClaimCheck(content_key(sha, KEY_PREFIX), sha, len(blob), original_size, compression).to_payload()


async def test_a_frame_declaring_more_than_the_reference_is_refused_before_decompressing(tmp_path: Path) -> None:
    # The frame header says 1 GiB; the reference says 1,024 bytes. zstandard would
    # allocate the 1 GiB whatever max_output_size says: the declared size is read first.
    store = FolderBlobStore(tmp_path)
    stream = zstandard.ZstdCompressor(write_content_size=True).compressobj(size=2**30)
    piece = b"\0" * MiB
    bomb = b"".join(stream.compress(piece) for _ in range(1024)) + stream.flush()
    assert zstandard.frame_content_size(bomb) == 2**30 and len(bomb) < 64 * 1024
    reference = _stored_reference(store, bomb, 1024)
    with pytest.raises(ClaimCheckError, match="declares 1073741824 bytes of content, but its reference's original size is 1024"):
        await ReferencingCodec(store).decode([reference])


async def test_a_frame_of_undeclared_size_is_stopped_at_the_reference_size(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path)
    stream = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    bomb = b"".join(stream.compress(b"\0" * MiB) for _ in range(1024)) + stream.flush()
    assert zstandard.frame_content_size(bomb) == -1
    reference = _stored_reference(store, bomb, MAX_EXPANSION_RATIO * len(bomb))
    with pytest.raises(ClaimCheckError, match="undeclared size expands past .* decompression stopped"):
        await ReferencingCodec(store).decode([reference])


async def test_a_reference_promising_a_huge_expansion_is_refused_unread(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path)
    reference = _stored_reference(store, b"x" * 100, 2**30)
    with pytest.raises(ClaimCheckError, match=f"an expansion above the limit of {MAX_EXPANSION_RATIO}x"):
        await ReferencingCodec(store).decode([reference])


async def test_a_blob_larger_than_its_reference_is_refused_unread(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path)
    [encoded] = await ReferencingCodec(store).encode([payload_of(order_json(300_000))])
    claim = ClaimCheck.from_payload(encoded)
    # A reference naming a key that exists, but promising fewer stored bytes.
    small = ClaimCheck(claim.key, claim.sha256, 1000, 1000 * 5, claim.compression).to_payload()
    with pytest.raises(ClaimCheckError, match="larger than the 1000 bytes its reference allows"):
        await ReferencingCodec(store).decode([small])


async def test_a_blob_that_is_not_a_payload_is_refused(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path)
    garbage = b"\xff" * 2000  # not a protobuf message
    reference = _stored_reference(store, garbage, len(garbage), "none")
    with pytest.raises(ClaimCheckError, match="does not hold a payload"):
        await ReferencingCodec(store).decode([reference])


async def test_a_degenerate_payload_is_stored_uncompressed_and_round_trips(tmp_path: Path) -> None:
    # 4 MiB of one byte compresses ~30,000x, past what a reader accepts.
    original = payload_of(b"\0" * (4 * MiB))
    [encoded] = await ReferencingCodec(FolderBlobStore(tmp_path)).encode([original])
    assert ClaimCheck.from_payload(encoded).compression == "none"
    [decoded] = await ReferencingCodec(FolderBlobStore(tmp_path)).decode([encoded])
    assert_identical(decoded, original)


@pytest.mark.parametrize(
    "body, problem",
    [
        (b"[" * 5000 + b"]" * 5000, "more than the 1024"),
        (b"[" * 1020, "not JSON"),  # deeper than the recursion limit, no RecursionError
        # Found fuzzing: an unhashable compression was a TypeError, not a ClaimCheckError.
        (b'{"v": 1, "key": "payloads/aa/' + b"a" * 64 + b'", "sha256": "' + b"a" * 64 + b'", "stored_size": 1, '
         b'"original_size": 1, "compression": ["zstd"]}', "unknown compression"),
        (b'{"v": 1, "key": "payloads/aa/' + b"a" * 64 + b'", "sha256": "' + b"a" * 64 + b'", "stored_size": 10, '
         b'"original_size": 20, "compression": "none"}', "uncompressed, yet stored_size 10"),
    ],
    ids=["oversized", "deeply-nested", "unhashable-compression", "none-sizes-differ"],
)
async def test_references_that_are_not_small_flat_json_are_refused(tmp_path: Path, body: bytes, problem: str) -> None:
    reference = Payload(metadata={"encoding": REFERENCE_ENCODING}, data=body)
    with pytest.raises(ClaimCheckError, match=problem):
        await ReferencingCodec(FolderBlobStore(tmp_path)).decode([reference])
    assert MAX_REFERENCE_BYTES == 1024


@pytest.mark.parametrize(
    "body, problem",
    [
        (b"not json", "not JSON"),
        (b'{"v": 2}', "version 2"),
        (b'{"v": 1, "key": "batches/aa/' + b"a" * 64 + b'", "sha256": "' + b"a" * 64 + b'", "stored_size": 1, '
         b'"original_size": 1, "compression": "zstd"}', "content key"),
        (b'{"v": 1, "key": "payloads/aa/' + b"a" * 64 + b'", "sha256": "' + b"a" * 64 + b'", "stored_size": 1, '
         b'"original_size": -1, "compression": "zstd"}', "original_size"),
        (b'{"v": 1, "key": "payloads/aa/' + b"a" * 64 + b'", "sha256": "' + b"a" * 64 + b'", "stored_size": 1, '
         b'"original_size": 1, "compression": "lz4"}', "compression"),
    ],
    ids=["not-json", "future-version", "other-prefix", "negative-size", "unknown-compression"],
)
async def test_malformed_references_are_refused(tmp_path: Path, body: bytes, problem: str) -> None:
    reference = Payload(metadata={"encoding": REFERENCE_ENCODING}, data=body)
    with pytest.raises(ClaimCheckError, match=problem):
        await ReferencingCodec(FolderBlobStore(tmp_path)).decode([reference])


class FlakyStore:
    """A real store whose first ``failures`` reads and writes fail as a throttled or
    unreachable backend does."""

    def __init__(self, store: BlobStore, failures: int) -> None:
        self._store = store
        self.failures = failures
        self.calls = 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise TransientStoreError(f"HTTP 503 SlowDown (call {self.calls})")

    def put(self, key: str, data: bytes) -> bool:
        self._maybe_fail()
        return self._store.put(key, data)

    def get(self, key: str, *, sha256: str | None = None, max_size: int | None = None) -> bytes:
        self._maybe_fail()
        return self._store.get(key, sha256=sha256, max_size=max_size)

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


async def test_transient_errors_are_retried(s3_store: S3BlobStore) -> None:
    original = payload_of(order_json(300_000))
    writer = FlakyStore(s3_store, failures=2)
    [encoded] = await ReferencingCodec(writer, retry_delay=0.01).encode([original])
    reader = FlakyStore(s3_store, failures=2)
    [decoded] = await ReferencingCodec(reader, retry_delay=0.01).decode([encoded])
    assert_identical(decoded, original)
    assert (writer.calls, reader.calls) == (3, 3)


async def test_transient_errors_surface_after_bounded_attempts(s3_endpoint: str, s3_bucket: str) -> None:
    # A real endpoint that does not answer: connection refused on every try.
    unreachable = S3BlobStore(
        s3_bucket, endpoint_url=f"http://127.0.0.1:{free_port()}", region_name="us-east-1", max_attempts=1
    )
    codec = ReferencingCodec(unreachable, max_attempts=3, retry_delay=0.01)
    with pytest.raises(TransientStoreError, match="after 3 attempts") as raised:
        await codec.encode([payload_of(order_json(300_000))])
    assert "payloads/" in str(raised.value)
