"""A hostile HTTP client against a real ``bulkorder codec-server`` (a child process, as an
operator runs it): half-open and slow connections, a body bomb, and requests the server
must refuse without leaking a file system path."""

from __future__ import annotations

import base64
import json
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from temporalio.api.common.v1 import Payload

from bulkorder.storage.claim_check import ClaimCheck, ClaimCheckCodec
from bulkorder.storage.folder_store import FolderBlobStore
from tests.adversarial.report import MAX_BOMB_GROWTH_BYTES, AttackLine, report
from tests.cli.helpers import cli_env

TOKEN = "adversarial-token-7f3a"
#: The server's idle timeout is 5 s; a connection must be gone well within this.
DROP_BOUND = 15.0


@dataclass
class RunningServer:
    process: subprocess.Popen[str]
    port: int
    home: Path

    def vm_hwm(self) -> int:
        """The server's peak resident set size so far, in bytes (/proc/<pid>/status)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc status")


def start_server(home: Path, *args: str, **env: str) -> RunningServer:
    process = subprocess.Popen(
        [sys.executable, "-m", "bulkorder.cli", "codec-server", "--port", "0", *args],
        env=cli_env(home, {"BULKORDER_CODEC_SERVER_TOKEN": TOKEN, **env}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    url = None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        assert line, f"the codec server exited: {process.stderr.read() if process.stderr else ''}"
        if line.startswith("codec server"):
            url = line.split()[-1]
        if line.startswith("ready"):
            break
    assert url is not None
    return RunningServer(process, int(url.rsplit(":", 1)[1]), home)


def stop_server(server: RunningServer) -> None:
    server.process.send_signal(signal.SIGINT)
    try:
        server.process.wait(30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("codec") / "home", "--enable-encode", BULKORDER_CODEC_SERVER_MAX_CONCURRENCY="2"
    )
    yield running
    stop_server(running)


def raw(port: int, head: str, body: bytes = b"", timeout: float = 30) -> tuple[int, str]:
    """Send ``head`` (request line and headers, CRLF-separated) and ``body``; (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2].decode()


def post(port: int, path: str, body: bytes, *, token: str | None = TOKEN, host: str = "127.0.0.1",
         content_type: str = "application/json") -> tuple[int, str]:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Type: {content_type}",
             f"Content-Length: {len(body)}", "X-Namespace: default", "Connection: close"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return raw(port, "\n".join(lines) + "\n", body)


def payloads(*items: dict[str, object]) -> bytes:
    return json.dumps({"payloads": list(items)}).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except BlockingIOError:
        return False


def test_fifty_half_open_connections_are_dropped(server: RunningServer) -> None:
    sockets = []
    for n in range(50):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        if n % 2:  # half of them send a partial request and stall; half send nothing
            sock.sendall(b"POST /decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: app")
        sock.setblocking(False)
        sockets.append(sock)
    started = time.monotonic()
    open_ones = set(sockets)
    try:
        # Meanwhile the server still answers an honest client.
        assert post(server.port, "/decode", payloads())[0] == 200
        while open_ones and time.monotonic() - started < DROP_BOUND + 5:
            readable, _, _ = select.select(list(open_ones), [], [], 1.0)
            open_ones -= {sock for sock in readable if closed_by_server(sock)}
        took = time.monotonic() - started
    finally:
        for sock in sockets:
            sock.close()
    assert not open_ones, f"{len(open_ones)} of 50 half-open connections still open after {took:.1f} s"
    assert took < DROP_BOUND
    report(AttackLine("http client", "50 half-open connections", f"all dropped by the server in {took:.1f} s"))


def test_a_slow_body_times_out_and_a_saturated_server_answers_503(server: RunningServer) -> None:
    head = (f"POST /decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Length: 1000\r\n\r\n").encode()
    slow = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(2)]
    try:
        for sock in slow:
            sock.sendall(head + b'{"payl')  # the body stalls: each holds one of the 2 slots
        # Wait (bounded) until both slots are taken: the third request gets 503.
        deadline = time.monotonic() + 10
        while (status := post(server.port, "/decode", payloads()))[0] != 503 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status[0] == 503 and "busy" in status[1]
        started = time.monotonic()
        answers = [sock.recv(65536).decode() for sock in slow]
        took = time.monotonic() - started
    finally:
        for sock in slow:
            sock.close()
    assert all(answer.startswith("HTTP/1.1 408") for answer in answers), answers
    assert took < DROP_BOUND
    assert post(server.port, "/decode", payloads())[0] == 200, "the slots are free again"
    report(AttackLine("http client", "stalled bodies holding every slot", f"503 to others; 408 after {took:.1f} s"))


def test_a_500_mb_body_is_refused_early_with_bounded_memory(server: RunningServer) -> None:
    size = 500 * 10**6
    before = server.vm_hwm()
    # Announced: refused on the Content-Length alone, before a byte of the body is read.
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall((f"POST /decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      f"Authorization: Bearer {TOKEN}\r\nContent-Length: {size}\r\n\r\n").encode())
        answer = sock.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 413") and "BULKORDER_CODEC_SERVER_MAX_BODY_BYTES" in answer
    # Chunked, so no length to refuse on: the server stops reading at its cap.
    sent = 0
    chunk = b"[" * (1 << 20)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall((f"POST /decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      f"Authorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
        try:
            while sent < size:
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            chunked_answer = sock.recv(65536).decode()
        except ConnectionResetError:
            chunked_answer = ""
    growth = server.vm_hwm() - before
    assert sent < 64 * 2**20, f"the server read {sent:,} bytes of a body over its 8 MiB cap"
    assert chunked_answer == "" or chunked_answer.startswith("HTTP/1.1 413")
    assert growth < MAX_BOMB_GROWTH_BYTES, f"peak RSS grew {growth / 2**20:.1f} MiB"
    assert post(server.port, "/decode", payloads())[0] == 200
    report(AttackLine("http client", "500 MB body (announced, then chunked)",
                      f"413; chunked cut after {sent / 2**20:.0f} MiB", peak_rss_growth=growth))


def test_refused_requests_and_error_bodies_without_paths(server: RunningServer) -> None:
    blobs = FolderBlobStore(server.home / "blobs")
    home_path, blob_path = str(server.home.resolve()), str(blobs.root)
    small = {"metadata": {"encoding": b64(b"json/plain")}, "data": b64(b'"x"')}
    refusals = {
        "wrong content type": post(server.port, "/decode", payloads(small), content_type="text/plain"),
        "DNS-rebinding Host": post(server.port, "/decode", payloads(small), host="evil.example:8081"),
        "no token": post(server.port, "/decode", payloads(small), token=None),
        "wrong token": post(server.port, "/decode", payloads(small), token="guess"),
        "encode without token": post(server.port, "/encode", payloads(small), token=None),
        "not JSON": post(server.port, "/decode", b"{\"payloads\": [" + b"[" * 50_000),
        "duplicate key": post(server.port, "/decode", b'{"payloads": [], "payloads": []}'),
    }
    expected = {"wrong content type": 415, "DNS-rebinding Host": 421, "no token": 401, "wrong token": 401,
                "encode without token": 401, "not JSON": 400, "duplicate key": 400}
    assert {name: status for name, (status, _) in refusals.items()} == expected
    assert "application/json" in refusals["wrong content type"][1]
    assert "bearer token" in refusals["no token"][1]

    # References to a blob that is gone and to one whose bytes were swapped: the answers
    # name the key, not the folder.
    import asyncio

    codec = ClaimCheckCodec(blobs)
    gone, swapped = asyncio.run(codec.encode([
        Payload(metadata={"encoding": b"binary/plain"}, data=bytes(300_000)),
        Payload(metadata={"encoding": b"binary/plain"}, data=b"y" * 300_000),
    ]))
    codec.close()
    blobs.delete(ClaimCheck.from_payload(gone).key)
    swapped_key = ClaimCheck.from_payload(swapped).key
    blobs.path_for(swapped_key).write_bytes(b"tampered")
    for name, reference in (("missing blob", gone), ("swapped blob", swapped)):
        as_json = {"metadata": {k: b64(v) for k, v in reference.metadata.items()}, "data": b64(reference.data)}
        refusals[name] = post(server.port, "/decode", payloads(as_json))
    assert refusals["missing blob"][0] == 404 and ClaimCheck.from_payload(gone).key in refusals["missing blob"][1]
    assert refusals["swapped blob"][0] in (400, 502) and swapped_key in refusals["swapped blob"][1]

    for name, (status, body) in refusals.items():
        assert json.loads(body)["error"], name
        assert home_path not in body and blob_path not in body, f"{name}: a path in {body!r}"
        assert "Traceback" not in body and TOKEN not in body, name
    report(AttackLine("http client", "bad type/Host/token, encode, bad JSON, bad refs",
                      "415/421/401/400/404; no path, token or traceback in any body"))


def test_encode_is_off_unless_enabled_and_off_loopback_needs_a_token(tmp_path: Path) -> None:
    server = start_server(tmp_path / "home")
    try:
        small = {"metadata": {"encoding": b64(b"json/plain")}, "data": b64(b'"x"')}
        status, body = post(server.port, "/encode", payloads(small))
        assert status == 403 and "--enable-encode" in body
        assert post(server.port, "/decode", payloads(small))[0] == 200
    finally:
        stop_server(server)
    refused = subprocess.run(
        [sys.executable, "-m", "bulkorder.cli", "codec-server", "--host", "0.0.0.0", "--port", "0"],
        env=cli_env(tmp_path / "home"), capture_output=True, text=True, timeout=60,
    )
    assert refused.returncode == 2 and "BULKORDER_CODEC_SERVER_TOKEN" in refused.stderr
    assert "ready" not in refused.stdout
    report(AttackLine("http client", "encode on a default server; 0.0.0.0 without token",
                      "403; refuses to start (exit 2, names the setting)"))
