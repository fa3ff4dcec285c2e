"""The claim-check codec against a real S3 endpoint (moto's HTTP server) and a folder.

Every round trip decodes with a fresh codec (an empty cache), so the bytes really come
back from the store.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
from typing import Any
from pathlib import Path

import boto3
import pytest
import zstandard
from temporalio.api.common.v1 import Payload

from bulkorder.storage.blob_store import BlobStore
from bulkorder.storage.claim_check import (
    DEFAULT_THRESHOLD,
    KEY_PREFIX,
    REFERENCE_ENCODING,
    ClaimCheck,
    ClaimCheckCodec,
    is_reference,
)
from bulkorder.storage.errors import BlobIntegrityError, BlobNotFoundError
from bulkorder.storage.folder_store import FolderBlobStore
from bulkorder.storage.s3_store import S3BlobStore

MiB = 1024 * 1024


@pytest.fixture
def s3_store(s3_endpoint: str, s3_bucket: str) -> S3BlobStore:
    return S3BlobStore(s3_bucket, endpoint_url=s3_endpoint, region_name="us-east-1")


def payload_of(data: bytes, encoding: bytes = b"binary/plain") -> Payload:
    return Payload(metadata={"encoding": encoding, "note": b"kept as is"}, data=data)


def payload_sized(serialized_size: int) -> Payload:
    """A payload whose serialized size is exactly ``serialized_size`` bytes."""
    data_size = serialized_size
    while payload_of(b"x" * data_size).ByteSize() > serialized_size:
        data_size -= 1
    payload = payload_of(b"x" * data_size)
    assert payload.ByteSize() == serialized_size
    return payload


def ReferencingCodec(store: Any, **options: Any) -> ClaimCheckCodec:
    """The codec with inline payloads off: every payload over the threshold goes to the
    blob store behind a reference, the path these tests are about (payloads kept inline,
    compressed, are tested in test_claim_check_inline.py)."""
    return ClaimCheckCodec(store, inline=False, **options)


@functools.lru_cache(maxsize=4)
def order_lines(size: int) -> bytes:
    rng = random.Random(size)
    lines = []
    total = 0
    while total < size:
        sku = rng.randrange(50_000)
        line = json.dumps(
            {"sku": f"SKU-{sku:06d}", "quantity": rng.randint(1, 24), "lot": f"L{rng.randrange(10**6):06d}",
             "attributes": {"color": ["black", "red", "navy"][sku % 3], "weight_g": 50 + sku % 20_000}}
        ).encode()
        lines.append(line)
        total += len(line) + 1
    return b"\n".join(lines)[:size]


def order_json(size: int) -> bytes:
    """Order-like lines of JSON (they compress like real order data), ``size`` bytes.
    Past 4 MiB, 4 MiB of lines repeat (generating them is the slow part)."""
    if size <= 4 * MiB:
        return order_lines(size)
    chunk = order_lines(4 * MiB)
    return (chunk * (size // len(chunk) + 1))[:size]


async def round_trip(store: BlobStore, payloads: list[Payload], **options: int) -> tuple[list[Payload], list[Payload]]:
    encoded = await ReferencingCodec(store, **options).encode(payloads)
    decoded = await ReferencingCodec(store, cache_bytes=0, **options).decode(encoded)
    return encoded, decoded


def assert_identical(decoded: Payload, original: Payload) -> None:
    assert decoded.SerializeToString(deterministic=True) == original.SerializeToString(deterministic=True)
    assert decoded.data == original.data
    assert dict(decoded.metadata) == dict(original.metadata)


@pytest.mark.parametrize(
    "size", [0, 1, 1024, DEFAULT_THRESHOLD + 1, MiB, 20 * MiB], ids=["0B", "1B", "1KiB", "threshold+1", "1MiB", "20MiB"]
)
@pytest.mark.parametrize("kind", ["order-json", "random"])
async def test_round_trip_is_byte_identical(s3_store: S3BlobStore, size: int, kind: str) -> None:
    data = order_json(size) if kind == "order-json" else random.Random(size).randbytes(size)
    original = payload_of(data, b"json/plain" if kind == "order-json" else b"binary/plain")
    [encoded], [decoded] = await round_trip(s3_store, [original])
    assert is_reference(encoded) == (original.ByteSize() > DEFAULT_THRESHOLD)
    assert encoded.ByteSize() <= max(original.ByteSize(), 512)
    assert_identical(decoded, original)
    if is_reference(encoded):
        claim = ClaimCheck.from_payload(encoded)
        assert claim.original_size == original.ByteSize()
        assert claim.compression == ("zstd" if kind == "order-json" else "none")
        assert s3_store.size(claim.key) == claim.stored_size
        if kind == "order-json":
            assert claim.stored_size < claim.original_size / 3


async def test_100_mib_round_trip_keeps_the_event_loop_running(s3_store: S3BlobStore) -> None:
    rng = random.Random(100)
    original = payload_of(rng.randbytes(50 * MiB) + order_json(50 * MiB))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    try:
        [encoded], [decoded] = await round_trip(s3_store, [original])
    finally:
        ticking.cancel()
    assert is_reference(encoded) and encoded.ByteSize() < 512
    assert_identical(decoded, original)
    # Hashing, compressing and uploading 100 MiB take well over 0.1 s: a codec that held
    # the event loop meanwhile would leave the ticker no turn at all.
    assert ticks >= 5


async def test_every_field_of_a_payload_comes_back(tmp_path: Path) -> None:
    # The codec serializes a payload in two parts (all but data, then data): every field
    # must survive, and blobs keep the format protobuf's own serializer gives.
    store = FolderBlobStore(tmp_path)
    original = payload_of(order_json(300_000))
    original.external_payloads.add(size_bytes=12_345)
    plain = payload_of(order_json(300_000), b"json/plain")
    encoded, decoded = await round_trip(store, [original, plain])
    assert all(is_reference(payload) for payload in encoded)
    assert decoded == [original, plain]
    stored = store.get(ClaimCheck.from_payload(encoded[1]).key)
    assert zstandard.ZstdDecompressor().decompress(stored) == plain.SerializeToString(deterministic=True)


async def test_threshold_edges(s3_store: S3BlobStore) -> None:
    threshold = 4096
    below, at, above = (payload_sized(threshold + delta) for delta in (-1, 0, 1))
    encoded, decoded = await round_trip(s3_store, [below, at, above], threshold=threshold)
    assert encoded[0] == below and encoded[1] == at, "payloads at or under the threshold pass untouched"
    assert is_reference(encoded[2])
    for got, original in zip(decoded, [below, at, above]):
        assert_identical(got, original)


async def test_references_are_never_wrapped_again(s3_store: S3BlobStore) -> None:
    codec = ReferencingCodec(s3_store, threshold=1024)
    [reference] = await codec.encode([payload_of(order_json(10_000))])
    assert await codec.encode([reference]) == [reference]
    # Even one over the threshold (a reference is never that big, but who knows what
    # another writer does): it is a reference, so it stays as it is.
    padded = Payload(metadata={"encoding": REFERENCE_ENCODING}, data=reference.data + b" " * 2000)
    assert await codec.encode([padded]) == [padded]
    assert await codec.encode(await codec.encode([reference])) == [reference]


async def test_mixed_payloads_keep_their_order(s3_store: S3BlobStore) -> None:
    originals = [payload_of(b"small"), payload_of(order_json(300_000)), payload_of(b""), payload_of(order_json(200_000))]
    encoded, decoded = await round_trip(s3_store, originals)
    assert [is_reference(p) for p in encoded] == [False, True, False, True]
    for got, original in zip(decoded, originals):
        assert_identical(got, original)


async def test_identical_payloads_share_one_blob(s3_store: S3BlobStore) -> None:
    original = payload_of(order_json(500_000))
    first, second = await ReferencingCodec(s3_store).encode([original, payload_of(original.data)])
    assert first == second
    assert list(s3_store.iter_keys(f"{KEY_PREFIX}/")) == [ClaimCheck.from_payload(first).key]


async def test_folder_store_round_trip(tmp_path: Path) -> None:
    original = payload_of(order_json(2 * MiB))
    [encoded], [decoded] = await round_trip(FolderBlobStore(tmp_path), [original])
    assert (tmp_path / ClaimCheck.from_payload(encoded).key).is_file()
    assert_identical(decoded, original)


# Failures: typed, naming the key, and never any data.


async def test_tampered_blob_is_an_integrity_error(s3_store: S3BlobStore, s3_endpoint: str, s3_bucket: str) -> None:
    [encoded] = await ReferencingCodec(s3_store).encode([payload_of(order_json(400_000))])
    key = ClaimCheck.from_payload(encoded).key
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    stored = s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=s3_bucket, Key=key, Body=stored[:-1] + bytes([stored[-1] ^ 1]))

    codec = ReferencingCodec(s3_store)
    with pytest.raises(BlobIntegrityError) as raised:
        await codec.decode([encoded])
    assert key in str(raised.value) and "corrupt" in str(raised.value)
    assert codec.cache_stats().entries == 0, "nothing of a corrupt blob is kept"


async def test_deleted_blob_is_not_found(s3_store: S3BlobStore) -> None:
    [encoded] = await ReferencingCodec(s3_store).encode([payload_of(order_json(400_000))])
    key = ClaimCheck.from_payload(encoded).key
    s3_store.delete(key)
    with pytest.raises(BlobNotFoundError) as raised:
        await ReferencingCodec(s3_store).decode([encoded])
    assert key in str(raised.value) and "claim-check payload" in str(raised.value)



# The cache of decoded payloads.


async def test_cache_serves_repeat_decodes_without_the_store(s3_store: S3BlobStore, caplog: pytest.LogCaptureFixture) -> None:
    original = payload_of(order_json(600_000))
    [encoded] = await ReferencingCodec(s3_store).encode([original])
    codec = ReferencingCodec(s3_store)
    codec.stats_log_interval = 0.0
    with caplog.at_level(logging.INFO, logger="bulkorder.storage.claim_check"):
        [first] = await codec.decode([encoded])
        s3_store.delete(ClaimCheck.from_payload(encoded).key)  # a second download would fail
        [second] = await codec.decode([encoded])
    assert_identical(first, original)
    assert_identical(second, original)
    stats = codec.cache_stats()
    assert (stats.hits, stats.misses, stats.entries) == (1, 1, 1)
    assert stats.size_bytes == original.ByteSize()
    assert any("50% hit rate" in record.getMessage() for record in caplog.records)


async def test_encoded_payloads_are_cached_for_the_next_decode(s3_store: S3BlobStore) -> None:
    # An activity result is encoded and then decoded by the same worker.
    codec = ReferencingCodec(s3_store)
    original = payload_of(order_json(600_000))
    [encoded] = await codec.encode([original])
    s3_store.delete(ClaimCheck.from_payload(encoded).key)
    [decoded] = await codec.decode([encoded])
    assert_identical(decoded, original)


async def test_cache_is_bounded_in_bytes(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path)
    originals = [payload_of(order_json(MiB + n)) for n in range(3)]
    encoded = await ReferencingCodec(store, cache_bytes=0).encode(originals)
    codec = ReferencingCodec(store, cache_bytes=int(2.5 * MiB))
    for reference in encoded:
        await codec.decode([reference])
    stats = codec.cache_stats()
    assert stats.entries == 2 and stats.evictions == 1
    assert stats.size_bytes <= 2.5 * MiB
    await codec.decode([encoded[0]])  # evicted first (least recently used): downloaded again
    assert codec.cache_stats().misses == 4


def test_threshold_below_minimum_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1024"):
        ReferencingCodec(FolderBlobStore(tmp_path), threshold=100)


async def test_a_forked_child_can_use_a_codec_its_parent_used(tmp_path: Path) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    codec = ReferencingCodec(FolderBlobStore(tmp_path))
    await codec.encode([payload_of(order_json(20 * MiB))])  # threads and a multithreaded zstd ran here
    global _shared_codec
    _shared_codec = codec
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        assert await asyncio.wrap_future(pool.submit(_encode_with_shared_codec, 300_000))


_shared_codec: ClaimCheckCodec | None = None


def _encode_with_shared_codec(size: int) -> bool:
    async def run() -> bool:
        assert _shared_codec is not None
        original = payload_of(order_json(size))
        [encoded] = await _shared_codec.encode([original])
        [decoded] = await _shared_codec.decode([encoded])
        return is_reference(encoded) and decoded == original

    return asyncio.run(run())
