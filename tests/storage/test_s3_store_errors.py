"""S3BlobStore against a tiny HTTP server that answers what each test chooses: conditional
writes and their checksums, server errors and throttling (transient), refusals (permanent),
an endpoint that does not answer, and objects far larger than a reference allows."""

from __future__ import annotations

import base64
import hashlib
import threading
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import pytest

from bulkorder.storage.errors import BlobTooLargeError, StorageError, TransientStoreError
from bulkorder.storage.s3_store import S3BlobStore
from tests.fixtures.s3 import S3_TEST_ENV, free_port
from tests.storage.test_s3_store import blob


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in S3_TEST_ENV.items():
        monkeypatch.setenv(name, value)



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
