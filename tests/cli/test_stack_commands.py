"""``bulkorder dev`` and ``bulkorder worker`` as long-running processes, as users run them."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from bulkorder.domain.sample_items import generate_items
from tests.cli.helpers import cli_env, run_cli, write_ndjson
from tests.fixtures.s3 import free_port


async def start(args: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bulkorder.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def wait_for_line(process: asyncio.subprocess.Process, text: str, timeout: float = 90) -> str:
    """Read the process's stdout until a line containing ``text`` (or fail with its stderr)."""
    seen: list[str] = []

    async def read() -> str:
        assert process.stdout is not None
        while True:
            line = (await process.stdout.readline()).decode()
            if not line:
                stderr = (await process.stderr.read()).decode() if process.stderr else ""
                raise AssertionError(f"process ended before printing {text!r}: {seen} {stderr}")
            seen.append(line)
            if text in line:
                return line

    return await asyncio.wait_for(read(), timeout)


async def stop(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGINT)
    return await asyncio.wait_for(process.wait(), 60)


async def test_dev_stack_serves_the_other_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(home)
    port = free_port()
    dev = await start(["dev", "--port", str(port)], env)
    try:
        await wait_for_line(dev, "ready")
        # A second `bulkorder dev` for the same home refuses: one stack per home.
        again = await run_cli("dev", "--port", str(free_port()), env=env, timeout=60)
        assert again.code == 1 and "already running" in again.stderr
        state = json.loads((home / "dev.json").read_text())
        assert state["address"].startswith("127.0.0.1:") and state["address"].endswith(f":{port}")
        assert state["server_pid"] != state["pid"], "the state names the server it started"

        # No TEMPORAL_ADDRESS: the commands find the running dev stack through dev.json.
        items = write_ndjson(tmp_path / "items.ndjson", list(generate_items(2_500)))
        order_id = f"dev-{uuid.uuid4().hex[:8]}"
        created = await run_cli("create", order_id, "--customer", "acme", "--items", str(items), "--json", env=env)
        assert created.code == 0, created.stderr
        done = await run_cli("submit", order_id, "--wait", "--json", env=env)
        assert done.code == 0, done.stderr
        assert done.json()["status"] == "fulfilled" and done.json()["item_count"] == 2_500
    finally:
        assert await stop(dev) == 0
    assert not (home / "dev.json").exists()

    # Temporal kept its state on disk: a new dev stack on the same home still knows the
    # closed workflow, so the order ID cannot be reused.
    dev = await start(["dev", "--port", str(free_port())], env)
    try:
        await wait_for_line(dev, "ready")
        again = await run_cli("create", order_id, "--customer", "acme", env=env)
        assert again.code == 1 and "already exists and is closed" in again.stderr
        shown = await run_cli("show", order_id, "--json", env=env)
        assert shown.code == 0 and shown.json()["status"] == "fulfilled"
    finally:
        await stop(dev)


async def test_worker_command_runs_orders(temporal_address: str, tmp_path: Path) -> None:
    env = cli_env(tmp_path, {"TEMPORAL_ADDRESS": temporal_address, "BULKORDER_TASK_QUEUE": f"w-{uuid.uuid4().hex[:8]}"})
    worker = await start(["worker"], env)
    try:
        await wait_for_line(worker, "worker polling task queue")
        items = write_ndjson(tmp_path / "items.ndjson", list(generate_items(1_000)))
        order_id = f"w-{uuid.uuid4().hex[:8]}"
        assert (await run_cli("create", order_id, "--customer", "acme", "--items", str(items), env=env)).code == 0
        done = await run_cli("submit", order_id, "--wait", "--json", env=env)
        assert done.code == 0 and done.json()["report"]["item_count"] == 1_000
    finally:
        assert await stop(worker) == 0


def _http(url: str, *, method: str = "GET", body: object = None, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()


async def test_dev_web_ui_decodes_claim_checked_payloads_through_its_codec_server(tmp_path: Path) -> None:
    ui_port = free_port()
    dev = await start(
        ["dev", "--port", str(free_port()), "--ui-port", str(ui_port), "--ui-enable-encode"], cli_env(tmp_path / "home")
    )
    try:
        codec_url = (await wait_for_line(dev, "ui codec")).split()[-1]
        await wait_for_line(dev, "ready")
        # The Web UI is configured with the codec server (what its browser code reads).
        _, _, settings = await asyncio.to_thread(_http, f"http://127.0.0.1:{ui_port}/api/v1/settings")
        assert json.loads(settings)["Codec"]["Endpoint"] == codec_url

        # The browser's calls, from the UI's origin: the CORS preflight, then encode and
        # decode of a payload big enough to be claim-checked.
        origin = f"http://localhost:{ui_port}"
        status, headers, _ = await asyncio.to_thread(
            _http, f"{codec_url}/decode", method="OPTIONS",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "content-type,x-namespace"},
        )
        assert status in (200, 204) and headers["access-control-allow-origin"] == origin
        # Random lot codes, so it stays over the threshold once compressed (a payload that
        # compresses to it or less is kept inline: no reference to decode).
        data = json.dumps([{"sku": f"SKU-{i}", "lot": os.urandom(16).hex()} for i in range(20_000)]).encode()
        original = {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()}, "data": base64.b64encode(data).decode()}
        browser = {"Origin": origin, "Content-Type": "application/json", "X-Namespace": "default"}
        _, headers, encoded = await asyncio.to_thread(
            _http, f"{codec_url}/encode", method="POST", body={"payloads": [original]}, headers=browser
        )
        [reference] = json.loads(encoded)["payloads"]
        assert base64.b64decode(reference["metadata"]["encoding"]) == b"binary/bulkorder-claim-check"
        assert headers["access-control-allow-origin"] == origin
        _, _, decoded = await asyncio.to_thread(
            _http, f"{codec_url}/decode", method="POST", body={"payloads": [reference]}, headers=browser
        )
        [back] = json.loads(decoded)["payloads"]
        assert base64.b64decode(back["data"]) == data
    finally:
        assert await stop(dev) == 0


async def test_dev_web_ui_codec_server_does_not_encode_unless_enabled(tmp_path: Path) -> None:
    ui_port = free_port()
    dev = await start(["dev", "--port", str(free_port()), "--ui-port", str(ui_port)], cli_env(tmp_path / "home"))
    try:
        codec_url = (await wait_for_line(dev, "ui codec")).split()[-1]
        await wait_for_line(dev, "ready")
        body = {"payloads": [{"metadata": {"encoding": base64.b64encode(b"json/plain").decode()}, "data": ""}]}
        headers = {"Content-Type": "application/json", "X-Namespace": "default"}
        try:
            await asyncio.to_thread(_http, f"{codec_url}/encode", method="POST", body=body, headers=headers)
            raise AssertionError("encode answered without --ui-enable-encode")
        except urllib.error.HTTPError as refused:
            assert refused.code == 403 and "--enable-encode" in json.loads(refused.read())["error"]
        status, _, decoded = await asyncio.to_thread(_http, f"{codec_url}/decode", method="POST", body=body, headers=headers)
        assert status == 200 and json.loads(decoded)["payloads"][0]["metadata"]["encoding"]
    finally:
        assert await stop(dev) == 0


async def test_dev_verbose_error_path_prints_no_secret(tmp_path: Path) -> None:
    """`bulkorder -v dev` against a Temporal it cannot reach: the error, the log lines and
    the settings it shows carry no API key, metadata header or token."""
    secrets = {
        "TEMPORAL_API_KEY": "api-key-sekrit",
        "TEMPORAL_GRPC_META_AUTHORIZATION": "Bearer meta-sekrit",
        "BULKORDER_CODEC_SERVER_TOKEN": "codec-token-sekrit",
    }
    env = cli_env(tmp_path / "home", {"TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}", **secrets})
    result = await run_cli("-v", "dev", env=env, timeout=120)
    assert result.code == 1 and "cannot reach Temporal" in result.stderr
    for secret in ("api-key-sekrit", "meta-sekrit", "codec-token-sekrit"):
        assert secret not in result.stdout + result.stderr
