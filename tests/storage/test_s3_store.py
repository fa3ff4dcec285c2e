"""S3BlobStore against real HTTP: moto's standalone S3 server. (A tiny server answering
what a test chooses, errors and huge objects, is in tests/storage/test_s3_store_errors.py.)"""

from __future__ import annotations

import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from bulkorder.storage.blob_store import BlobStore, content_key, sha256_hex
from bulkorder.storage.errors import (
    BlobIntegrityError,
    BlobNotFoundError,
    BlobTooLargeError,
    InvalidBlobKeyError,
    StorageError,
    TransientStoreError,
)
from bulkorder.storage.s3_store import S3BlobStore
from tests.storage.test_blob_store import BAD_KEYS

PREFIX = "tenant/bulkorder"


@pytest.fixture(scope="module")
def raw(s3_endpoint: str) -> Any:
    """A plain boto3 client, to look at and tamper with what the store wrote."""
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture(scope="module")
def store_client(s3_endpoint: str) -> Any:
    """A client as S3BlobStore builds it (building one per test costs ~0.1 s)."""
    return S3BlobStore("unused", endpoint_url=s3_endpoint, region_name="us-east-1", max_attempts=2).client


@pytest.fixture
def store(s3_bucket: str, store_client: Any) -> S3BlobStore:
    return S3BlobStore(s3_bucket, prefix=PREFIX, client=store_client)


def test_an_injected_client_is_used(raw: Any, s3_bucket: str, s3_endpoint: str) -> None:
    store = S3BlobStore(s3_bucket, prefix=PREFIX, client=raw)
    assert store.client is raw and store.endpoint_url == s3_endpoint
    assert store.put("a/b", b"x") is True
    assert raw.get_object(Bucket=s3_bucket, Key=f"{PREFIX}/a/b")["Body"].read() == b"x"


def blob(text: str) -> tuple[str, bytes]:
    data = text.encode()
    return content_key(sha256_hex(data)), data


def test_is_a_blob_store_and_describes_itself(store: S3BlobStore, s3_endpoint: str, s3_bucket: str) -> None:
    assert isinstance(store, BlobStore)
    assert store.location == f"s3://{s3_bucket}/{PREFIX} (endpoint {s3_endpoint})"


def test_round_trip_under_the_prefix(store: S3BlobStore, raw: Any, s3_bucket: str) -> None:
    key, data = blob("hello batch")
    assert store.put(key, data) is True
    assert store.get(key) == data
    assert store.exists(key) and store.size(key) == len(data)
    listed = [obj["Key"] for obj in raw.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert listed == [f"{PREFIX}/{key}"]


def test_no_prefix_means_keys_at_the_bucket_root(s3_endpoint: str, s3_bucket: str, raw: Any) -> None:
    store = S3BlobStore(s3_bucket, endpoint_url=s3_endpoint, region_name="us-east-1")
    store.put("reports/r1", b"{}")
    assert raw.get_object(Bucket=s3_bucket, Key="reports/r1")["Body"].read() == b"{}"
    assert list(store.iter_keys()) == ["reports/r1"]


def test_put_of_an_existing_key_does_not_rewrite(store: S3BlobStore, raw: Any, s3_bucket: str) -> None:
    assert store.put("reports/r1", b"first") is True
    etag = raw.head_object(Bucket=s3_bucket, Key=store.object_key("reports/r1"))["ETag"]
    assert store.put("reports/r1", b"second") is False
    assert store.get("reports/r1") == b"first"
    assert raw.head_object(Bucket=s3_bucket, Key=store.object_key("reports/r1"))["ETag"] == etag


def test_conditional_put_loses_a_race_without_overwriting(
    store: S3BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another writer created the key between our HEAD and our PUT: If-None-Match refuses.
    store.put("reports/r1", b"winner")
    monkeypatch.setattr(store, "_head", lambda key: None)
    assert store.put("reports/r1", b"loser") is False
    monkeypatch.undo()
    assert store.get("reports/r1") == b"winner"


def test_a_small_put_sends_its_body_at_once_a_large_one_waits_for_100_continue(store: S3BlobStore) -> None:
    # "Expect: 100-continue" (botocore's default for every PutObject) costs a round trip
    # before the body goes; only bodies over head_before_put_bytes keep it.
    sent: list[tuple[str, bool]] = []
    record = lambda request, **_: sent.append((request.headers["Content-Length"], "Expect" in request.headers))  # noqa: E731
    store.client.meta.events.register("before-send.s3.PutObject", record)
    try:
        assert store.put("reports/small", b"s" * store.head_before_put_bytes)
        assert store.put("reports/large", b"l" * (store.head_before_put_bytes + 1))
        S3BlobStore(store.bucket, prefix=PREFIX, client=store.client)  # another store on the client: still once
        assert store.put("reports/small-again", b"s")
    finally:
        store.client.meta.events.unregister("before-send.s3.PutObject", record)
    assert [(int(length), expect) for length, expect in sent] == [
        (store.head_before_put_bytes, False),
        (store.head_before_put_bytes + 1, True),
        (1, False),
    ]
    assert store.get("reports/large") == b"l" * (store.head_before_put_bytes + 1)


def test_put_refuses_bytes_that_do_not_match_their_content_key(store: S3BlobStore) -> None:
    key, _ = blob("the real content")
    with pytest.raises(BlobIntegrityError, match="refusing to write"):
        store.put(key, b"something else")
    assert store.exists(key) is False


def test_get_detects_an_overwritten_object(store: S3BlobStore, raw: Any, s3_bucket: str) -> None:
    key, data = blob("original")
    store.put(key, data)
    raw.put_object(Bucket=s3_bucket, Key=store.object_key(key), Body=b"replaced")
    with pytest.raises(BlobIntegrityError) as info:
        store.get(key)
    assert info.value.key == key and info.value.actual == sha256_hex(b"replaced")
    assert key in str(info.value) and s3_bucket in str(info.value)


def test_missing_key(store: S3BlobStore, s3_bucket: str) -> None:
    key, _ = blob("never written")
    with pytest.raises(BlobNotFoundError) as info:
        store.get(key)
    assert info.value.key == key
    assert key in str(info.value) and s3_bucket in str(info.value)
    assert store.exists(key) is False
    with pytest.raises(BlobNotFoundError):
        store.size(key)


def test_delete_is_idempotent(store: S3BlobStore) -> None:
    store.put("reports/r1", b"x")
    store.delete("reports/r1")
    assert store.exists("reports/r1") is False
    store.delete("reports/r1")
    assert store.put("reports/r1", b"y") is True


def test_invalid_keys_never_reach_the_server(store: S3BlobStore, raw: Any, s3_bucket: str) -> None:
    for key in BAD_KEYS:
        for call in (lambda: store.put(key, b"x"), lambda: store.get(key), lambda: store.exists(key),
                     lambda: store.delete(key), lambda: store.size(key)):
            with pytest.raises(InvalidBlobKeyError):
                call()
    assert "Contents" not in raw.list_objects_v2(Bucket=s3_bucket)


def test_iter_keys_pages_through_everything_under_a_prefix(
    store: S3BlobStore, raw: Any, s3_bucket: str
) -> None:
    keys = [f"batches/{i:02x}/blob-{i}" for i in range(7)] + ["reports/r1", "reports/r2"]
    for key in keys:
        store.put(key, b"x")
    raw.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/", Body=b"")  # a "folder" marker
    raw.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/Foreign/Object", Body=b"")
    raw.put_object(Bucket=s3_bucket, Key="elsewhere/batches/00/x", Body=b"")
    store.list_page_size = 2
    assert sorted(store.iter_keys()) == sorted(keys)
    assert sorted(store.iter_keys("reports/")) == ["reports/r1", "reports/r2"]
    assert list(store.iter_keys("batches/03")) == ["batches/03/blob-3"]


def test_many_threads_share_one_store(store: S3BlobStore) -> None:
    blobs = [os.urandom(2000 + i) for i in range(48)]
    same = os.urandom(5000)
    same_key = content_key(sha256_hex(same))
    barrier = threading.Barrier(8)

    def round_trip(data: bytes) -> bool:
        key = content_key(sha256_hex(data))
        return store.put(key, data) and store.get(key) == data

    def put_same(_: int) -> bool:
        barrier.wait()
        return store.put(same_key, same)

    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(round_trip, blobs))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(put_same, range(8)))
    assert results.count(True) >= 1  # S3 (and moto) may let more than one racer through
    assert store.get(same_key) == same
    assert len(list(store.iter_keys("batches/"))) == 49


def test_create_bucket(s3_endpoint: str, raw: Any) -> None:
    name = f"bulkorder-new-{uuid.uuid4().hex[:8]}"
    store = S3BlobStore(name, endpoint_url=s3_endpoint, region_name="us-east-1", create_bucket=True)
    S3BlobStore(name, endpoint_url=s3_endpoint, region_name="us-east-1", create_bucket=True)  # exists: fine
    store.put("a/b", b"x")
    assert raw.get_object(Bucket=name, Key="a/b")["Body"].read() == b"x"


def test_missing_bucket_is_a_clear_permanent_error(s3_endpoint: str) -> None:
    store = S3BlobStore("no-such-bucket-here", endpoint_url=s3_endpoint, region_name="us-east-1")
    for call in (lambda: store.put("a/b", b"x"), lambda: store.get("a/b"), lambda: list(store.iter_keys())):
        with pytest.raises(StorageError) as info:
            call()
        assert not isinstance(info.value, TransientStoreError)
        assert "bucket 'no-such-bucket-here' does not exist at " + s3_endpoint in str(info.value)



# Reads proven against the reference: its sha-256 and its size.


def test_get_checks_the_hash_the_reference_carries(store: S3BlobStore, raw: Any, s3_bucket: str) -> None:
    # A key that merely ends with a hash: the key proves nothing, the ref's hash does.
    data, swapped = b"the real batch", b"swapped by a bucket writer"
    key = "batches/1d/v" + sha256_hex(data)
    raw.put_object(Bucket=s3_bucket, Key=store.object_key(key), Body=swapped)
    with pytest.raises(BlobIntegrityError) as info:
        store.get(key, sha256=sha256_hex(data), max_size=len(swapped))
    assert (info.value.key, info.value.expected, info.value.actual) == (key, sha256_hex(data), sha256_hex(swapped))
    assert key in str(info.value) and s3_bucket in str(info.value)
    assert store.get(key, sha256=sha256_hex(swapped)) == swapped


def test_get_refuses_an_object_over_max_size(store: S3BlobStore, raw: Any, s3_bucket: str) -> None:
    key, data = blob("small")
    raw.put_object(Bucket=s3_bucket, Key=store.object_key(key), Body=b"y" * 100_000)
    with pytest.raises(BlobTooLargeError) as info:
        store.get(key, max_size=len(data))
    assert (info.value.key, info.value.size, info.value.limit) == (key, 100_000, len(data))
    assert s3_bucket in str(info.value) and "refused without reading it" in str(info.value)
    other, other_data = blob("exactly at the limit")
    store.put(other, other_data)
    assert store.get(other, sha256=sha256_hex(other_data), max_size=len(other_data)) == other_data
    # The refused connection was dropped, not left half-read in the pool.
    assert store.get(other, max_size=len(other_data)) == other_data
