"""S3BlobStore against real HTTP: moto's standalone S3 server, and a tiny server that
answers every request with a chosen error."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from email.message import Message
from typing import Any, Callable, Iterator

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
from tests.fixtures.s3 import S3_TEST_ENV, free_port
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


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in S3_TEST_ENV.items():
        monkeypatch.setenv(name, value)


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


def test_endpoint_down_is_transient(aws_env: None) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    store = S3BlobStore("bucket", endpoint_url=endpoint, region_name="us-east-1", max_attempts=1, connect_timeout=1)
    for call in (
        lambda: store.put("a/b", b"x"),
        lambda: store.get("a/b"),
        lambda: store.exists("a/b"),
        lambda: store.delete("a/b"),
        lambda: list(store.iter_keys()),
    ):
        with pytest.raises(TransientStoreError, match=f"{endpoint}.*did not answer"):
            call()


class _FakeS3(ThreadingHTTPServer):
    """An HTTP server answering S3 requests by ``rule(method, headers) -> (status, code)``,
    recording each request's method and headers."""

    rule: Callable[[str, Message], tuple[int, str]]
    requests: list[tuple[str, Message]]
    # Handler threads sit on botocore's kept-alive connections: do not wait for them.
    daemon_threads = True
    block_on_close = False

    def answer_all(self, status: int, code: str) -> S3BlobStore:
        self.rule = lambda method, headers: (status, code)
        return self.store()

    def store(self) -> S3BlobStore:
        endpoint = f"http://127.0.0.1:{self.server_address[1]}"
        return S3BlobStore("bucket", endpoint_url=endpoint, region_name="us-east-1", max_attempts=1)


class _FakeS3Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # so botocore's "Expect: 100-continue" is answered at once
    server: _FakeS3

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.requests.append((self.command, self.headers))
        status, code = self.server.rule(self.command, self.headers)
        document = b""
        if status >= 300 and self.command != "HEAD":
            document = (
                f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                f"<Message>test says {code}</Message></Error>"
            ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(document)))
        self.end_headers()
        self.wfile.write(document)

    do_GET = do_PUT = do_DELETE = do_POST = do_HEAD = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_s3(aws_env: None) -> Iterator[_FakeS3]:
    server = _FakeS3(("127.0.0.1", 0), _FakeS3Handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _head_missing_put_ok(method: str, headers: Message) -> tuple[int, str]:
    return (404, "NotFound") if method == "HEAD" else (200, "")


def test_put_is_conditional_and_carries_a_sha256_checksum(fake_s3: _FakeS3) -> None:
    fake_s3.rule = _head_missing_put_ok
    key, data = blob("checksummed")
    assert fake_s3.store().put(key, data) is True
    (_, put), = [(method, headers) for method, headers in fake_s3.requests if method == "PUT"]
    assert put["x-amz-checksum-sha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert put["If-None-Match"] == "*"
    assert put["Content-Length"] == str(len(data))


def test_small_bodies_go_straight_to_the_conditional_put(fake_s3: _FakeS3) -> None:
    # Below head_before_put_bytes a HEAD costs what the upload it could save costs.
    fake_s3.rule = _head_missing_put_ok
    store = fake_s3.store()
    store.head_before_put_bytes = 100
    assert store.put("a/small", b"x" * 100) is True
    assert store.put("a/large", b"x" * 101) is True
    assert [method for method, _ in fake_s3.requests] == ["PUT", "HEAD", "PUT"]


def test_without_conditional_writes_the_store_falls_back(fake_s3: _FakeS3) -> None:
    # An endpoint that answers 501 to If-None-Match: the store writes without it, and
    # stops sending it.
    def rule(method: str, headers: Message) -> tuple[int, str]:
        if method == "PUT" and "If-None-Match" in headers:
            return 501, "NotImplemented"
        return _head_missing_put_ok(method, headers)

    fake_s3.rule = rule
    store = fake_s3.store()
    assert store.put("a/b", b"x") is True
    assert store.put("a/c", b"y") is True
    puts = [headers for method, headers in fake_s3.requests if method == "PUT"]
    assert ["If-None-Match" in headers for headers in puts] == [True, False, False]


@pytest.mark.parametrize(("status", "code"), [(503, "SlowDown"), (500, "InternalError"), (503, "ServiceUnavailable")])
def test_server_errors_and_throttling_are_transient(fake_s3: _FakeS3, status: int, code: str) -> None:
    store = fake_s3.answer_all(status, code)
    for call in (lambda: store.get("a/b"), lambda: store.put("a/b", b"x"), lambda: store.exists("a/b")):
        with pytest.raises(TransientStoreError, match=f"HTTP {status}"):
            call()


@pytest.mark.parametrize(("status", "code"), [(400, "RequestTimeout"), (429, "TooManyRequests"), (400, "SlowDown")])
def test_timeouts_and_throttling_codes_are_transient(fake_s3: _FakeS3, status: int, code: str) -> None:
    with pytest.raises(TransientStoreError, match=f"HTTP {status} {code}"):
        fake_s3.answer_all(status, code).get("a/b")


def test_access_denied_is_permanent_and_names_bucket_and_endpoint(fake_s3: _FakeS3) -> None:
    store = fake_s3.answer_all(403, "AccessDenied")
    for call in (lambda: store.get("a/b"), lambda: store.put("a/b", b"x"), lambda: list(store.iter_keys())):
        with pytest.raises(StorageError) as info:
            call()
        assert not isinstance(info.value, TransientStoreError)
        assert f"access to bucket 'bucket' at {store.endpoint_url} denied" in str(info.value)


def test_other_client_errors_are_permanent(fake_s3: _FakeS3) -> None:
    with pytest.raises(StorageError, match="HTTP 400 InvalidArgument") as info:
        fake_s3.answer_all(400, "InvalidArgument").get("a/b")
    assert not isinstance(info.value, TransientStoreError)


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


class _HugeObjectServer(ThreadingHTTPServer):
    """Answers every GET with a 256 MiB body, sent in 64 KiB chunks, and counts what it
    managed to send before the client hung up. ``chunked``: no Content-Length at all
    (a server that does not say how big the object is)."""

    daemon_threads = True
    block_on_close = False
    total = 256 * 2**20
    chunked = False
    sent = 0
    done: threading.Event


class _HugeObjectHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HugeObjectServer

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if self.server.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(self.server.total))
        self.end_headers()
        chunk = b"\0" * 65536
        try:
            while self.server.sent < self.server.total:
                if self.server.chunked:
                    self.wfile.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                else:
                    self.wfile.write(chunk)
                self.server.sent += len(chunk)
        except OSError:
            pass  # the client hung up: what we want
        finally:
            self.server.done.set()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_huge_object_is_refused_without_downloading_it(aws_env: None, chunked: bool) -> None:
    server = _HugeObjectServer(("127.0.0.1", 0), _HugeObjectHandler)
    server.chunked, server.done = chunked, threading.Event()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        store = S3BlobStore(
            "bucket", endpoint_url=f"http://127.0.0.1:{server.server_address[1]}", region_name="us-east-1", max_attempts=1
        )
        with pytest.raises(BlobTooLargeError, match="larger than the 1024 bytes its reference allows") as info:
            store.get("batches/ab/x", max_size=1024)
        assert info.value.size == (None if chunked else server.total)
        assert server.done.wait(30), "the server is still sending: the client did not hang up"
        # What the kernel's socket buffers absorbed before the hang-up, not the object.
        assert server.sent < server.total // 4
    finally:
        server.shutdown()
        server.server_close()
