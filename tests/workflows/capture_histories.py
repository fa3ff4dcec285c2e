"""Capture workflow histories that ``test_replay.py`` replays against the current code.

Run once per released workflow version; never regenerate the existing files (they are
the old histories that new code must still replay):

    .venv/bin/python -m tests.workflows.capture_histories tests/workflows/histories v2

Each version's scenarios run on a fresh dev server and save every run of their workflows.
v1: the core flow. v2: DB-first orders driven by the relay (its signals, the submit
signal), fulfillment v2 recording unreadable batches, and a recorded fulfillment failure.
v3: a failed fulfillment retried by an operator and one cancelled, and a signalled batch
past the order bounds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import tempfile
from pathlib import Path

from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from bulkorder.domain.application import Orders
from bulkorder.domain.identifiers import workflow_id_for
from tests.fixtures.orders import TEST_SEALER, sqlite_env
from tests.fixtures.temporal import temporal_cli_path
from tests.workflows.helpers import store_generated
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.folder_store import FolderBlobStore
from bulkorder.workflows.client import OrderClient
from bulkorder.workflows.errors import OrderRefusedError
from bulkorder.workflows.messages import OrderLimits
from bulkorder.workflows.order_workflow import OrderWorkflow
from bulkorder.workflows.outbox import OrderOutbox
from bulkorder.workflows.relay import OrderRelay
from bulkorder.workflows.worker import build_worker


async def scenarios(client: OrderClient, batches: BatchStore, orders: Orders) -> list[str]:
    """v1: run each scenario; return the order IDs whose histories to save."""
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


async def scenarios_v2(client: OrderClient, batches: BatchStore, orders: Orders) -> list[str]:
    """v2: the DB-first flow through the relay, and the recorded fulfillment outcomes."""
    refs = store_generated(batches, 3_000, 500, prefix="g")
    relay = OrderRelay(client.client, orders, task_queue=client.task_queue, limits=client.limits, page_size=3)
    outbox = OrderOutbox(orders, batches)

    # DB-first: the service records, the relay signals (page by page), the workflow follows.
    outbox.create("dbfirst", "customer-3", refs[:2])
    await relay.drain()
    outbox.add_batches("dbfirst", refs[2:4])
    outbox.add_batches("dbfirst", refs[2:3])  # a repeat: recorded once
    outbox.submit("dbfirst")
    await relay.drain()
    await client.wait_closed("dbfirst")

    # DB-first, the workflow learns "submitted" from a record before the submit signal
    # arrives: it must still wake and fulfill (one event per relay page to force it).
    stepwise = OrderRelay(client.client, orders, task_queue=client.task_queue, limits=client.limits, page_size=1, name="steps")
    await stepwise.drain()
    outbox.create("dbfirst-race", "customer-6", refs[:1])
    await stepwise.drain()
    outbox.add_batches("dbfirst-race", refs[1:2])
    outbox.submit("dbfirst-race")
    await stepwise.relay_page()  # the ItemsAdded alone; its record answers "submitted"
    await _until_version(client, "dbfirst-race", orders.summary("dbfirst-race").version)
    await stepwise.drain()  # then the submit signal
    await client.wait_closed("dbfirst-race")

    # One batch's blob is gone at fulfillment: recorded as BatchRejected, the rest fulfilled.
    await client.create("unreadable", "customer-4", refs[4:6])
    blobs = batches.blobs
    assert isinstance(blobs, FolderBlobStore)
    blobs.path_for(refs[5].key).unlink()
    await client.submit("unreadable")
    await client.wait_closed("unreadable")

    # Nothing readable: FulfillmentFailed is recorded, then the workflow fails.
    other = store_generated(batches, 100, 100, prefix="f", start=50_000)
    await client.create("failed", "customer-5", other)
    blobs.path_for(other[0].key).unlink()
    await _submit_until_failed(client, "failed")
    return ["dbfirst", "dbfirst-race", "unreadable", "failed"]


async def _submit_until_failed(client: OrderClient, order_id: str) -> None:
    """Submit an order whose fulfillment cannot succeed, and wait until it is failed."""
    await client.submit(order_id)
    try:
        await client.wait_closed(order_id)
    except OrderRefusedError:
        pass


async def _until_version(client: OrderClient, order_id: str, version: int) -> None:
    for _ in range(600):
        if (await client.summary(order_id)).version >= version:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{order_id}: the workflow never saw version {version}")


async def scenarios_v3(client: OrderClient, batches: BatchStore, orders: Orders) -> list[str]:
    """v3: a failed fulfillment waits for an operator (retried once fixed, or cancelled),
    and a signalled batch past the order bounds is rejected."""
    blobs = batches.blobs
    assert isinstance(blobs, FolderBlobStore)

    # Failed, then retried after the cause is fixed: FulfillmentRetried, then fulfilled.
    refs = store_generated(batches, 200, 100, prefix="r", start=60_000)
    await client.create("retried", "customer-7", refs)
    kept = {ref.key: blobs.path_for(ref.key).read_bytes() for ref in refs}
    for ref in refs:
        blobs.path_for(ref.key).unlink()
    await _submit_until_failed(client, "retried")
    for key, data in kept.items():
        blobs.put(key, data)
    await client.retry_fulfillment("retried", "blobs restored")
    await client.wait_closed("retried")

    # Failed, then given up on: Cancelled.
    lost = store_generated(batches, 100, 100, prefix="l", start=70_000)
    await client.create("given-up", "customer-8", lost)
    blobs.path_for(lost[0].key).unlink()
    await _submit_until_failed(client, "given-up")
    await client.cancel("given-up", "supplier gone")
    await client.wait_closed("given-up")

    # A signalled batch that would pass MAX_ORDER_TOTAL: rejected (order_limit).
    line = {"sku": "BIG", "quantity": 600, "unit_price": {"amount": 10**15, "currency": "USD"}, "name": "big"}
    first = batches.write([line], batch_id="big-1")
    second = batches.write([{**line, "sku": "BIG-2"}], batch_id="big-2")
    await client.create("bounded", "customer-9", [first])
    await client.client.get_workflow_handle(workflow_id_for("bounded")).signal(OrderWorkflow.add_batches_signal, [second])
    await client.submit("bounded")
    await client.wait_closed("bounded")
    return ["retried", "given-up", "bounded"]


SCENARIOS = {"v1": scenarios, "v2": scenarios_v2, "v3": scenarios_v3}


async def capture(out_dir: Path, version: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_cli_path(), dev_server_log_level="error")
    tmp = Path(tempfile.mkdtemp())
    orders = Orders(env=sqlite_env(tmp / "events.sqlite"))
    # Sealed (as a deployment's writer seals): a ref's claims are believed without reading
    # its blob, so a scenario may remove a blob as soon as its ref is accepted.
    batches = BatchStore(FolderBlobStore(tmp / "blobs"), sealer=TEST_SEALER)
    limits = OrderLimits(max_history_events=60)
    try:
        async with build_worker(env.client, orders=orders, batches=batches, task_queue="capture"):
            client = OrderClient(env.client, task_queue="capture", batches=batches, limits=limits)
            for order_id in await SCENARIOS[version](client, batches, orders):
                for number, run in enumerate(await client.run_histories(order_id), start=1):
                    history = await client.handle(order_id, run_id=run.run_id).fetch_history()
                    path = out_dir / f"{version}-{order_id}-run{number}.json"
                    path.write_text(history.to_json())
                    print(f"saved {path} ({run.events} events)")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(capture(Path(sys.argv[1]), sys.argv[2]))
