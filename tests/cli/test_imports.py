"""``bulkorder import`` as a user runs it: a separate process against a real dev server,
killed with SIGKILL mid-import and run again; exit codes, messages and the JSON summary.

The tests are async: the worker the CLI talks to runs on this test's event loop, which
must keep running while the CLI process works."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Callable, Mapping

import pytest

from tests.cli.helpers import run_cli, stack_env
from tests.fixtures.orders import OrderStack
from tests.importer.files import write_ndjson

BULKORDER = [sys.executable, "-m", "bulkorder.cli"]


@pytest.fixture
def env(order_stack: OrderStack, temporal_address: str, tmp_path: Path, event_store_env: Mapping[str, str]) -> dict[str, str]:
    """The environment of a CLI process sharing the test's worker, blobs and event store."""
    return stack_env(order_stack.task_queue, temporal_address, tmp_path, event_store_env)


async def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def test_killed_mid_import_then_run_again_records_every_item_once(
    order_stack: OrderStack, env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "items.ndjson"
    expected = write_ndjson(path, 20_000)
    lines = path.read_bytes().splitlines(keepends=True)
    # The first run reads a pipe fed the first 5,500 lines: it must still be running,
    # mid-file, when its first batches are in the event store. Then it is killed.
    fifo = tmp_path / "feed.ndjson"
    os.mkfifo(fifo)
    order_id = f"c-1/cli-{uuid.uuid4().hex[:10]}"
    importer = await asyncio.create_subprocess_exec(
        *BULKORDER, "import", order_id, str(fifo), "--create", "--customer", "c-1", "--batch-size", "1000",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    feed = await asyncio.to_thread(open, fifo, "wb")  # returns once the importer opened it
    try:
        await asyncio.to_thread(feed.write, b"".join(lines[:5_500]))
        await asyncio.to_thread(feed.flush)
        orders = order_stack.orders
        await wait_until(lambda: orders.exists(order_id) and orders.get_order(order_id).batch_count >= 5)
        importer.send_signal(signal.SIGKILL)
        await asyncio.wait_for(importer.communicate(), timeout=30)
    finally:
        feed.close()
    assert importer.returncode == -signal.SIGKILL
    assert order_stack.orders.get_order(order_id).item_count == 5_000

    again = await run_cli("import", order_id, str(path), "--batch-size", "1000", "--json", env=env)

    assert again.code == 0, again.stderr
    summary = again.json()
    assert (summary["skipped_batches"], summary["items"], summary["order_items"]) == (5, 15_000, 20_000)
    order = order_stack.orders.get_order(order_id)
    assert (order.item_count, order.quantity, order.totals) == (expected.items, expected.quantity, expected.totals)
    assert order.batch_count == 20


async def test_bad_input_exits_2_naming_file_line_and_field(order_stack: OrderStack, env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "items.ndjson"
    write_ndjson(path, 30)
    lines = path.read_text().splitlines(keepends=True)
    item = json.loads(lines[21])
    item["quantity"] = str(item["quantity"])  # line 22: a quantity written as a string
    lines[21] = json.dumps(item) + "\n"
    path.write_text("".join(lines))
    order_id = f"c-1/cli-{uuid.uuid4().hex[:10]}"

    result = await run_cli("import", order_id, str(path), "--create", "--customer", "c-1", "--batch-size", "10", env=env)

    assert result.code == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"bulkorder import: error: {path} line 22: quantity: Input should be a valid integer"
    )
    assert "lines 1-20 are in the order (20 items added now); fix line 22" in result.stderr
    assert order_stack.orders.get_order(order_id).item_count == 20

    zero = await run_cli("import", order_id, str(path), "--batch-size", "0", env=env)
    assert zero.code == 2 and "--batch-size must be from 1 to 1,000,000, got 0" in zero.stderr


async def test_unknown_order_exits_1_and_json_summary_on_success(
    order_stack: OrderStack, env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "items.csv"
    path.write_text("sku,quantity,unit_price_amount,unit_price_currency,name,attr.color\nA-1,2,150,EUR,Widget,red\n")
    order_id = f"c-1/cli-{uuid.uuid4().hex[:10]}"

    refused = await run_cli("import", order_id, str(path), env=env)
    assert refused.code == 1
    assert f"order '{order_id}' does not exist" in refused.stderr

    done = await run_cli("import", order_id, str(path), "--create", "--customer", "c-1", "--json", env=env)
    assert done.code == 0, done.stderr
    summary = done.json()
    assert {k: summary[k] for k in ("items", "batches", "rejected", "format", "order_items")} == {
        "items": 1, "batches": 1, "rejected": 0, "format": "csv", "order_items": 1,
    }  # fmt: skip
    assert summary["seconds"] > 0 and summary["items_per_second"] > 0
    assert "import " in done.stderr  # a plain progress line: stderr is not a terminal
