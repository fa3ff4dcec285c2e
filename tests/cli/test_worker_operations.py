"""``bulkorder worker --metrics-port``: metrics that match the event store, health and
readiness, and a SIGTERM that drains the worker mid-import. Real processes, real servers."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

from tests.fixtures.orders import stack_orders
from bulkorder.domain.sample_items import generate_items
from tests.cli.helpers import run_cli, stack_env, write_ndjson
from tests.cli.test_stack_commands import start, wait_for_line


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def get(url: str) -> tuple[int, str]:
    return await asyncio.to_thread(_get, url)


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text (``None`` if absent)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(match.group(4))
    return None


async def start_worker(env: Mapping[str, str], *extra: str) -> tuple[asyncio.subprocess.Process, str]:
    worker = await start(["worker", "--metrics-port", "0", *extra], dict(env))
    line = await wait_for_line(worker, "metrics http://")
    base = re.search(r"(http://[\d.]+:\d+)/metrics", line)
    assert base, line
    await wait_for_line(worker, "worker polling")
    return worker, base.group(1)


async def until(condition: Any, what: str, timeout: float = 120) -> Any:
    """Poll ``condition()`` (async) until it returns something true, within ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        last = await condition()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s (last {last!r})")


async def terminate(process: asyncio.subprocess.Process) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_metrics_match_the_event_store_during_an_import(
    temporal_address: str, task_queue: str, tmp_path: Path, event_store_env: Mapping[str, str]
) -> None:
    env = stack_env(task_queue, temporal_address, tmp_path, event_store_env)
    worker, base = await start_worker(env)
    order_id = f"acme/metrics-{uuid.uuid4().hex[:8]}"
    items = write_ndjson(tmp_path / "items.ndjson", list(generate_items(12_000)))
    try:
        status, health = await get(f"{base}/healthz")
        assert status == 200 and json.loads(health)["status"] == "ok"
        status, ready = await get(f"{base}/readyz")
        assert status == 200, ready
        assert set(json.loads(ready)["checks"]) == {"temporal", "event_store", "blob_store"}

        importing = asyncio.create_task(
            run_cli("import", order_id, str(items), "--create", "--customer", "acme", "--batch-size", "1000",
                    "--metrics-out", str(tmp_path / "import.prom"), env=env)
        )
        scrapes = 0
        while not importing.done():  # scraped while the import runs: always a whole page
            status, page = await get(f"{base}/metrics")
            assert status == 200 and "bulkorder_items_recorded_total" in page
            scrapes += 1
            await asyncio.sleep(0.1)
        imported = await importing
        assert imported.code == 0, imported.stderr
        assert scrapes > 0
        done = await run_cli("submit", order_id, "--wait", "--json", env=env)
        assert done.code == 0, done.stderr

        orders = stack_orders(tmp_path, event_store_env)
        try:
            order = orders.get_order(order_id)
            recorded_items, recorded_batches = order.item_count, order.batch_count
        finally:
            orders.close()
        assert (recorded_items, recorded_batches) == (12_000, 12)

        async def figures() -> str | None:
            _, page = await get(f"{base}/metrics")
            ok = sample(page, "bulkorder_items_recorded_total") == recorded_items
            return page if ok and sample(page, "temporal_workflow_completed_total") else None

        page = await until(figures, "the worker's counters reach the event store's")
        assert sample(page, "bulkorder_batches_recorded_total") == recorded_batches
        assert (sample(page, "bulkorder_record_activity_seconds_count") or 0) >= 1
        # Fulfillment read every batch back: the blob store's gets, timed and counted.
        assert (sample(page, "bulkorder_blob_store_request_seconds_count", operation="get") or 0) >= recorded_batches
        assert (sample(page, "bulkorder_blob_store_bytes_total", operation="get") or 0) > 0
        assert sample(page, "bulkorder_claim_check_cache_hits_total") is not None
        assert sample(page, "bulkorder_claim_check_cache_misses_total") is not None
        # The run that completed recorded its history length (Temporal's meter, same page).
        assert (sample(page, "bulkorder_run_history_length_count", workflow_type="OrderWorkflow") or 0) >= 1

        # The import's own figures, in Prometheus text.
        figures_file = (tmp_path / "import.prom").read_text()
        assert sample(figures_file, "bulkorder_import_items") == 12_000
        assert sample(figures_file, "bulkorder_import_batches") == 12
        assert (sample(figures_file, "bulkorder_blob_store_request_seconds_count", operation="put") or 0) >= 12
    finally:
        code, out = await terminate(worker)
    assert code == 0, out
    assert "worker stopped" in out


async def test_readiness_names_the_check_that_fails(
    temporal_address: str, task_queue: str, tmp_path: Path, event_store_env: Mapping[str, str]
) -> None:
    env = stack_env(task_queue, temporal_address, tmp_path, event_store_env)
    worker, base = await start_worker(env)
    blobs = tmp_path / "blobs"
    try:
        await until(lambda: _ready(base, 200), "ready at start")
        # The blob folder replaced by a plain file: nothing can be read or written there.
        blobs.rename(tmp_path / "blobs.away")
        blobs.write_text("not a folder")
        body = await until(lambda: _ready(base, 503), "not ready without the blob store")
        assert body["failed"] == ["blob_store"], body
        assert body["checks"]["temporal"]["ok"] and body["checks"]["event_store"]["ok"]
        status, _ = await get(f"{base}/healthz")
        assert status == 200, "alive, only not ready"
        blobs.unlink()
        (tmp_path / "blobs.away").rename(blobs)
        await until(lambda: _ready(base, 200), "ready again once the blob store is back")
    finally:
        code, out = await terminate(worker)
    assert code == 0, out


async def _ready(base: str, expected: int) -> dict[str, Any] | None:
    status, body = await get(f"{base}/readyz")
    return json.loads(body) if status == expected else None


async def test_sigterm_drains_the_worker_mid_import_and_another_finishes_it(
    temporal_address: str, task_queue: str, tmp_path: Path, event_store_env: Mapping[str, str]
) -> None:
    # Two refs per recording activity: the importer sends its refs in a few calls (it
    # gathers for a second), so the recording, not the sending, is what is mid-way here.
    env = dict(stack_env(task_queue, temporal_address, tmp_path, event_store_env), BULKORDER_MAX_REFS_PER_RECORD="2")
    count, batch_size = 60_000, 500
    items = write_ndjson(tmp_path / "items.ndjson", list(generate_items(count)))
    order_id = f"acme/drain-{uuid.uuid4().hex[:8]}"
    first, base = await start_worker(env, "--graceful-shutdown", "60")
    orders = stack_orders(tmp_path, event_store_env)
    second = None
    try:
        importing = asyncio.create_task(
            run_cli("import", order_id, str(items), "--create", "--customer", "acme", "--batch-size", str(batch_size),
                    "--workers", "1", env=env, timeout=600)
        )

        async def some_recorded() -> bool:
            if importing.done():
                raise AssertionError(f"the import ended before the worker was stopped: {importing.result()}")
            return orders.exists(order_id) and 0 < orders.get_order(order_id).batch_count

        await until(some_recorded, "the first batches recorded")
        code, out = await terminate(first)  # mid-import
        assert code == 0, out
        assert "draining the worker" in out and "worker stopped" in out
        status = await asyncio.to_thread(lambda: _unreachable(base))
        assert status, "the metrics port closed with the worker"
        stopped_at = orders.get_order(order_id).batch_count
        assert stopped_at < count // batch_size, "the import was still running when the worker stopped"

        second, _ = await start_worker(env)
        imported = await importing
        assert imported.code == 0, imported.stderr
        order = orders.get_order(order_id)
        assert (order.item_count, order.batch_count) == (count, count // batch_size)
        recorded = Counter(ref.batch_id for ref in orders.iter_batch_refs(order_id))
        assert len(recorded) == count // batch_size and set(recorded.values()) == {1}, "each batch exactly once"
    finally:
        orders.close()
        if second is not None:
            code, out = await terminate(second)
            assert code == 0, out
        if first.returncode is None:
            await terminate(first)


def _unreachable(base: str) -> bool:
    try:
        urllib.request.urlopen(f"{base}/healthz", timeout=5)
    except (urllib.error.URLError, OSError):
        return True
    return False


async def test_the_dev_stack_serves_the_same_endpoints(tmp_path: Path) -> None:
    from tests.cli.helpers import cli_env
    from tests.cli.test_stack_commands import stop
    from tests.fixtures.s3 import free_port

    dev = await start(["dev", "--port", str(free_port()), "--metrics-port", "0"], cli_env(tmp_path / "home"))
    try:
        line = await wait_for_line(dev, "/metrics (health")
        base = re.search(r"(http://[\d.]+:\d+)/metrics", line)
        assert base, line
        await wait_for_line(dev, "ready")
        status, page = await get(f"{base.group(1)}/metrics")
        assert status == 200 and "bulkorder_items_recorded_total" in page and "temporal_" in page
        assert (await until(lambda: _ready(base.group(1), 200), "the dev stack ready"))["status"] == "ready"
    finally:
        assert await stop(dev) == 0


async def test_a_metrics_port_in_use_is_a_clear_error(
    temporal_address: str, task_queue: str, tmp_path: Path, event_store_env: Mapping[str, str]
) -> None:
    import socket

    env = stack_env(task_queue, temporal_address, tmp_path, event_store_env)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = await run_cli("worker", "--metrics-port", str(port), env=env, timeout=120)
    assert done.code == 1, done.stderr
    assert f"the metrics port cannot listen on 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr
