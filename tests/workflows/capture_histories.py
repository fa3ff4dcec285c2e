"""Capture workflow histories that ``test_replay.py`` replays against the current code.

Run once per released workflow version; never regenerate the existing files (they are
the old histories that new code must still replay):

    .venv/bin/python -m tests.workflows.capture_histories tests/workflows/histories v1

Each scenario runs on a fresh dev server and saves every run of its workflow.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import tempfile
from pathlib import Path

from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from domain.application import Orders
from domain.identifiers import workflow_id_for
from tests.fixtures.orders import sqlite_env
from tests.fixtures.temporal import temporal_cli_path
from tests.workflows.helpers import store_generated
from storage.batches import BatchStore
from storage.folder_store import FolderBlobStore
from workflows.client import OrderClient
from workflows.errors import OrderRefusedError
from workflows.messages import OrderLimits
from workflows.order_workflow import OrderWorkflow
from workflows.worker import build_worker


async def scenarios(client: OrderClient, batches: BatchStore) -> list[str]:
    """Run each scenario; return the order IDs whose histories to save."""
    refs = store_generated(batches, 6_000, 500, prefix="h")

    # Full life: create with refs, updates, signals (one invalid, one duplicate),
    # continue-as-new (low limit), submit, fulfillment.
    await client.create("full", "customer-1", refs[:2])
    for ref in refs[2:8]:
        await client.add_batches("full", [ref])
    bad = dataclasses.replace(refs[8], item_count=0)
    await client.add_batches("full", refs[8:12] + [refs[2]], wait=False)
    await client.client.get_workflow_handle(workflow_id_for("full")).signal(OrderWorkflow.add_batches_signal, [bad])
    await client.submit("full")
    await client.wait_closed("full")

    # Cancelled order, with a refused duplicate create and a refused submit.
    await client.create("cancelled", "customer-2")
    try:
        await client.create("cancelled", "customer-2")
    except OrderRefusedError:
        pass
    try:
        await client.submit("cancelled")
    except OrderRefusedError:
        pass
    await client.cancel("cancelled", "no longer needed")
    await client.wait_closed("cancelled")
    return ["full", "cancelled"]


async def capture(out_dir: Path, version: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_cli_path(), dev_server_log_level="error")
    tmp = Path(tempfile.mkdtemp())
    orders = Orders(env=sqlite_env(tmp / "events.sqlite"))
    batches = BatchStore(FolderBlobStore(tmp / "blobs"))
    limits = OrderLimits(max_history_events=60)
    try:
        async with build_worker(env.client, orders=orders, batches=batches, task_queue="capture"):
            client = OrderClient(env.client, task_queue="capture", batches=batches, limits=limits)
            for order_id in await scenarios(client, batches):
                for number, run in enumerate(await client.run_histories(order_id), start=1):
                    history = await client.handle(order_id, run_id=run.run_id).fetch_history()
                    path = out_dir / f"{version}-{order_id}-run{number}.json"
                    path.write_text(history.to_json())
                    print(f"saved {path} ({run.events} events)")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(capture(Path(sys.argv[1]), sys.argv[2]))
