"""The codec server: Temporal's codec server protocol over real HTTP, and the real
``temporal`` CLI decoding a real history through it."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bulkorder.codec_protocol import HostPolicy, normalise_host
from bulkorder.codec_server import CodecServer, CodecServerError, is_loopback
from bulkorder.runtime import claim_check_codec, open_runtime, payload_codec
from bulkorder.settings import Settings
from bulkorder.storage.claim_check import REFERENCE_ENCODING, ClaimCheck, ClaimCheckCodec
from bulkorder.storage.folder_store import FolderBlobStore
from tests.bulkorder.large_payloads import EchoWorkflow, echo
from tests.fixtures.temporal import temporal_cli_path

TOKEN = "s3cret-token"
UI_ORIGIN = "http://localhost:8233"


@pytest.fixture
def blobs(tmp_path: Path) -> FolderBlobStore:
    return FolderBlobStore(tmp_path / "blobs")


@pytest.fixture
def server(blobs: FolderBlobStore) -> Iterator[CodecServer]:
    codec = ClaimCheckCodec(blobs, inline=False)  # a reference to decode, as the UI meets them
    with CodecServer(codec, token=TOKEN, cors_origins=[UI_ORIGIN], namespace="default", enable_encode=True) as running:
        yield running


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def json_payload(value: Any) -> dict[str, Any]:
    """A payload as the Web UI sends it: proto JSON, metadata values and data base64."""
    return {"metadata": {"encoding": b64(b"json/plain")}, "data": b64(json.dumps(value).encode())}


def request(
    url: str,
    body: bytes | dict[str, Any] | None = None,
    *,
    method: str = "POST",
    token: str | None = TOKEN,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    all_headers = {"Content-Type": "application/json", "X-Namespace": "default", **(headers or {})}
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            status, response_headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, response_headers, raw = exc.code, dict(exc.headers), exc.read()
    return status, response_headers, json.loads(raw) if raw else None


def test_encode_and_decode_over_http(server: CodecServer) -> None:
    assert server.url.startswith("http://127.0.0.1:"), "loopback unless told otherwise"
    big = {"lines": [f"SKU-{n:06d}" for n in range(30_000)]}
    status, _, encoded = request(f"{server.url}/encode", {"payloads": [json_payload("small"), json_payload(big)]})
    assert status == 200
    small, reference = encoded["payloads"]
    assert small == json_payload("small")
    assert base64.b64decode(reference["metadata"]["encoding"]) == REFERENCE_ENCODING
    assert len(reference["data"]) < 600

    status, _, decoded = request(f"{server.url}/decode", {"payloads": [small, reference]})
    assert status == 200
    assert decoded["payloads"] == [json_payload("small"), json_payload(big)]
    # The namespace may also come in the path (the CLI's --codec-endpoint templates).
    assert request(f"{server.url}/default/decode", {"payloads": [reference]})[2] == {"payloads": [json_payload(big)]}


def test_requests_without_the_token_are_refused(server: CodecServer) -> None:
    body = {"payloads": [json_payload("x")]}
    for token in (None, "wrong"):
        status, headers, error = request(f"{server.url}/decode", body, token=token)
        assert status == 401
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert "bearer token" in error["error"]
    assert request(f"{server.url}/decode", body)[0] == 200


def test_cors_headers_only_for_configured_origins(server: CodecServer) -> None:
    preflight = {"Origin": UI_ORIGIN, "Access-Control-Request-Method": "POST"}
    status, headers, _ = request(f"{server.url}/decode", method="OPTIONS", token=None, headers=preflight)
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == UI_ORIGIN
    assert "x-namespace" in headers["Access-Control-Allow-Headers"]
    assert "authorization" in headers["Access-Control-Allow-Headers"]

    stranger = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    status, headers, _ = request(f"{server.url}/decode", method="OPTIONS", token=None, headers=stranger)
    assert status == 403 and "Access-Control-Allow-Origin" not in headers

    body = {"payloads": [json_payload(1)]}
    assert request(f"{server.url}/decode", body, headers={"Origin": UI_ORIGIN})[1]["Access-Control-Allow-Origin"] == UI_ORIGIN
    assert "Access-Control-Allow-Origin" not in request(f"{server.url}/decode", body, headers={"Origin": "https://evil.example"})[1]


def test_other_namespaces_are_refused(server: CodecServer) -> None:
    body = {"payloads": [json_payload(1)]}
    status, _, error = request(f"{server.url}/decode", body, headers={"X-Namespace": "payments"})
    assert status == 403 and "'payments'" in error["error"]
    assert request(f"{server.url}/payments/decode", body)[0] == 403


async def test_bad_requests_get_clear_errors(server: CodecServer, blobs: FolderBlobStore) -> None:
    assert request(f"{server.url}/decode", b"{not json")[0] == 400
    assert request(f"{server.url}/decode", b'{"payloads": [{"dat": ""}]}')[0] == 400
    assert request(f"{server.url}/unknown", {"payloads": []})[0] == 404
    assert request(f"{server.url}/decode", method="GET")[0] == 405
    assert request(f"{server.url}/decode", b"{}", headers={"Content-Type": "text/plain"})[0] == 415

    # A reference whose blob is gone: an error naming the key, not a silent pass-through.
    [encoded] = await ClaimCheckCodec(blobs).encode([Payload(metadata={"encoding": b"binary/plain"}, data=bytes(200_000))])
    reference = json_format.MessageToDict(encoded)
    key = ClaimCheck.from_payload(encoded).key
    blobs.delete(key)
    status, _, error = request(f"{server.url}/decode", {"payloads": [reference]})
    assert status == 404 and key in error["error"]
    assert str(blobs.location) not in error["error"], "no file system path in an error body"

    forged = {"metadata": {"encoding": b64(REFERENCE_ENCODING)}, "data": b64(b'{"v": 1, "key": "batches/x"}')}
    status, _, error = request(f"{server.url}/decode", {"payloads": [forged]})
    assert status == 400 and "claim-check reference" in error["error"]


def test_the_host_header_must_name_an_address_served(server: CodecServer) -> None:
    body = {"payloads": [json_payload(1)]}
    port = server.url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert request(f"{server.url}/decode", body, headers={"Host": host})[0] == 200, host
    for host in (f"rebind.attacker.example:{port}", "", "127.0.0.1:x", "local host"):
        status, _, error = request(f"{server.url}/decode", body, headers={"Host": host})
        assert status == 421 and "BULKORDER_CODEC_SERVER_ALLOWED_HOSTS" in error["error"], host


def test_host_policy() -> None:
    loopback = HostPolicy.serving("127.0.0.1", ["codec.example.com"])
    assert {"localhost", "127.0.0.1", "::1", "codec.example.com"} <= loopback.names and not loopback.any_ip
    wildcard = HostPolicy.serving("0.0.0.0")
    wildcard.check("10.1.2.3:8081")  # an IP literal cannot be rebound
    assert normalise_host("[::1]:8081") == "::1" and normalise_host("Codec.Example.COM.:80") == "codec.example.com"
    assert normalise_host("[::1") == "" and normalise_host("a b") == "" and normalise_host("x:y") == ""


def test_body_limit_encode_switch_and_no_token_off_loopback(blobs: FolderBlobStore) -> None:
    codec = ClaimCheckCodec(blobs, inline=False)  # a reference to decode, as the UI meets them
    with CodecServer(codec, max_body_bytes=1_000) as small:
        status, _, error = request(f"{small.url}/decode", {"payloads": [json_payload("x" * 2_000)]}, token=None)
        assert status == 413 and "BULKORDER_CODEC_SERVER_MAX_BODY_BYTES" in error["error"]
        status, _, error = request(f"{small.url}/encode", {"payloads": [json_payload(1)]}, token=None)
        assert status == 403 and "--enable-encode" in error["error"]
        assert request(f"{small.url}/decode", {"payloads": [json_payload(1)]}, token=None)[0] == 200
    with pytest.raises(CodecServerError, match="BULKORDER_CODEC_SERVER_TOKEN"):
        CodecServer(codec, host="0.0.0.0")
    assert TOKEN not in repr(CodecServer(codec, token=TOKEN))


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")


async def run_cli(*args: str) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        temporal_cli_path(), *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout, stderr


def input_payload(shown: bytes) -> dict[str, Any]:
    """The input payload of the started event in ``temporal workflow show --output json``."""
    events = json.loads(shown)["events"]
    started = next(e for e in events if e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED")
    return started["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]  # type: ignore[no-any-return]


async def test_temporal_cli_shows_a_decoded_history(
    temporal_env: WorkflowEnvironment, temporal_address: str, s3_endpoint: str, s3_bucket: str, task_queue: str, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {
            "TEMPORAL_ADDRESS": temporal_address,
            "BULKORDER_HOME": str(tmp_path / "home"),
            "BULKORDER_S3_BUCKET": s3_bucket,
            "BULKORDER_S3_ENDPOINT_URL": s3_endpoint,
            "BULKORDER_S3_REGION": "us-east-1",
            "BULKORDER_CODEC_SERVER_TOKEN": TOKEN,
        }
    )
    text = "fulfillment report " + "SKU-000042 x 3; " * 20_000  # ~320 kB: claim-checked
    workflow_id = f"codec-cli-{uuid.uuid4().hex[:10]}"
    async with open_runtime(settings) as runtime:
        async with Worker(runtime.client, task_queue=task_queue, workflows=[EchoWorkflow], activities=[echo]):
            assert await runtime.client.execute_workflow(EchoWorkflow.run, text, id=workflow_id, task_queue=task_queue) == text

    show = ["workflow", "show", "--workflow-id", workflow_id, "--address", temporal_address, "--output", "json"]
    code, raw_history, _ = await run_cli(*show)
    assert code == 0
    assert base64.b64decode(input_payload(raw_history)["metadata"]["encoding"]) == REFERENCE_ENCODING

    with CodecServer(payload_codec(settings), token=TOKEN, namespace="default") as server:
        code, shown, stderr = await run_cli(*show, "--codec-endpoint", server.url, "--codec-auth", f"Bearer {TOKEN}")
        assert code == 0, stderr.decode()
        payload = input_payload(shown)
        assert base64.b64decode(payload["metadata"]["encoding"]) == b"json/plain"
        assert json.loads(base64.b64decode(payload["data"])) == text

        # Without the token the server answers 401: the CLI fails rather than show anything.
        code, shown, _ = await run_cli(*show, "--codec-endpoint", server.url, "--command-timeout", "3s")
        assert code != 0 and not shown



def test_a_decode_whose_answer_would_pass_the_response_limit_is_refused_before_reading(blobs: FolderBlobStore) -> None:
    """One claim-checked payload's reference repeated: a small body, a huge answer."""
    codec = ClaimCheckCodec(blobs, inline=False)  # a reference to decode, as the UI meets them
    big = {"lines": [f"SKU-{n:06d}" for n in range(60_000)]}
    with CodecServer(codec, token=TOKEN, namespace="default", enable_encode=True, max_response_bytes=2 * 2**20) as running:
        _, _, encoded = request(f"{running.url}/encode", {"payloads": [json_payload(big)]})
        [reference] = encoded["payloads"]
        status, _, one = request(f"{running.url}/decode", {"payloads": [reference]})
        assert status == 200 and one["payloads"] == [json_payload(big)]
        status, _, error = request(f"{running.url}/decode", {"payloads": [reference] * 300})
        assert status == 413 and "response limit of 2097152 bytes" in error["error"]
