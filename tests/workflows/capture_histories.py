"""Capture workflow histories that ``test_replay.py`` replays against the current code.

Run once per released workflow version; never regenerate the existing files (they are
the old histories that new code must still replay):

    .venv/bin/python -m tests.workflows.capture_histories tests/workflows/histories v2

Each version's scenarios run on a fresh dev server and save every run of their workflows.
v1: the core flow. v2: DB-first orders driven by the relay (its signals, the submit
signal), fulfillment v2 recording unreadable batches, and a recorded fulfillment failure.
v3: a failed fulfillment retried by an operator and one cancelled, and a signalled batch
past the order bounds. v4: order identity (names, keyed workflow IDs): a retried create
and a repeated submit accepted by the open run, a create after close answered by a new
run that ends at once, one refused as a conflict, and a DB-first order by name. v5: the v4
scenarios again, the creation now recorded by a local activity (patch
``creation-local-activity``: a marker where v4 has an activity task).

(The v1-v3 scenarios below were recorded with bare order IDs; they now create names, so
re-running them gives v4-style histories, not the saved ones.)
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
from bulkorder.domain.identity import OrderName
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
    await client.create("customer-1/full", refs=refs[:2])
    for ref in refs[2:8]:
        await client.add_batches("customer-1/full", [ref])
    bad = dataclasses.replace(refs[8], item_count=0)
    await client.add_batches("customer-1/full", refs[8:12] + [refs[2]], wait=False)
    await client.client.get_workflow_handle(client.identity.workflow_id("customer-1/full")).signal(OrderWorkflow.add_batches_signal, [bad])
    await client.submit("customer-1/full")
    await client.wait_closed("customer-1/full")

    # Cancelled order, with a refused duplicate create and a refused submit.
    await client.create("customer-2/cancelled")
    try:
        await client.create("customer-2/cancelled")
    except OrderRefusedError:
        pass
    try:
        await client.submit("customer-2/cancelled")
    except OrderRefusedError:
        pass
    await client.cancel("customer-2/cancelled", "no longer needed")
    await client.wait_closed("customer-2/cancelled")
    return ["customer-1/full", "customer-2/cancelled"]


async def scenarios_v2(client: OrderClient, batches: BatchStore, orders: Orders) -> list[str]:
    """v2: the DB-first flow through the relay, and the recorded fulfillment outcomes."""
    refs = store_generated(batches, 3_000, 500, prefix="g")
    relay = OrderRelay(client.client, orders, task_queue=client.task_queue, limits=client.limits, page_size=3)
    outbox = OrderOutbox(orders, batches)

    # DB-first: the service records, the relay signals (page by page), the workflow follows.
    outbox.create("customer-3/dbfirst", refs=refs[:2])
    await relay.drain()
    outbox.add_batches("customer-3/dbfirst", refs[2:4])
    outbox.add_batches("customer-3/dbfirst", refs[2:3])  # a repeat: recorded once
    outbox.submit("customer-3/dbfirst")
    await relay.drain()
    await client.wait_closed("customer-3/dbfirst")

    # DB-first, the workflow learns "submitted" from a record before the submit signal
    # arrives: it must still wake and fulfill (one event per relay page to force it).
    stepwise = OrderRelay(client.client, orders, task_queue=client.task_queue, limits=client.limits, page_size=1, name="steps")
    await stepwise.drain()
    outbox.create("customer-6/dbfirst-race", refs=refs[:1])
    await stepwise.drain()
    outbox.add_batches("customer-6/dbfirst-race", refs[1:2])
    outbox.submit("customer-6/dbfirst-race")
    await stepwise.relay_page()  # the ItemsAdded alone; its record answers "submitted"
    await _until_version(client, "customer-6/dbfirst-race", orders.summary("customer-6/dbfirst-race").version)
    await stepwise.drain()  # then the submit signal
    await client.wait_closed("customer-6/dbfirst-race")

    # One batch's blob is gone at fulfillment: recorded as BatchRejected, the rest fulfilled.
    await client.create("customer-4/unreadable", refs=refs[4:6])
    blobs = batches.blobs
    assert isinstance(blobs, FolderBlobStore)
    blobs.path_for(refs[5].key).unlink()
    await client.submit("customer-4/unreadable")
    await client.wait_closed("customer-4/unreadable")

    # Nothing readable: FulfillmentFailed is recorded, then the workflow fails.
    other = store_generated(batches, 100, 100, prefix="f", start=50_000)
    await client.create("customer-5/failed", refs=other)
    blobs.path_for(other[0].key).unlink()
    await _submit_until_failed(client, "customer-5/failed")
    return ["customer-3/dbfirst", "customer-6/dbfirst-race", "customer-4/unreadable", "customer-5/failed"]


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
    await client.create("customer-7/retried", refs=refs)
    kept = {ref.key: blobs.path_for(ref.key).read_bytes() for ref in refs}
    for ref in refs:
        blobs.path_for(ref.key).unlink()
    await _submit_until_failed(client, "customer-7/retried")
    for key, data in kept.items():
        blobs.put(key, data)
    await client.retry_fulfillment("customer-7/retried", "blobs restored")
    await client.wait_closed("customer-7/retried")

    # Failed, then given up on: Cancelled.
    lost = store_generated(batches, 100, 100, prefix="l", start=70_000)
    await client.create("customer-8/given-up", refs=lost)
    blobs.path_for(lost[0].key).unlink()
    await _submit_until_failed(client, "customer-8/given-up")
    await client.cancel("customer-8/given-up", "supplier gone")
    await client.wait_closed("customer-8/given-up")

    # A signalled batch that would pass MAX_ORDER_TOTAL: rejected (order_limit).
    line = {"sku": "BIG", "quantity": 600, "unit_price": {"amount": 10**15, "currency": "USD"}, "name": "big"}
    first = batches.write([line], batch_id="big-1")
    second = batches.write([{**line, "sku": "BIG-2"}], batch_id="big-2")
    await client.create("customer-9/bounded", refs=[first])
    await client.client.get_workflow_handle(client.identity.workflow_id("customer-9/bounded")).signal(OrderWorkflow.add_batches_signal, [second])
    await client.submit("customer-9/bounded")
    await client.wait_closed("customer-9/bounded")
    return ["customer-7/retried", "customer-8/given-up", "customer-9/bounded"]


async def scenarios_v4(client: OrderClient, batches: BatchStore, orders: Orders) -> list[str]:
    """v4: order identity. Every run of each order's workflow ID is saved (a create after
    close starts a new run, not a continuation)."""
    refs = store_generated(batches, 400, 100, prefix="i", start=80_000)
    name = "Müller-GmbH/PO-1"
    await client.create(name, refs=refs[:1], idempotency_key="req-1")
    await client.create(name, refs=refs[:1], idempotency_key="req-1")  # a retry: accepted, answered
    try:
        await client.create(name, refs=refs[:2])  # another request: refused by the validator
    except OrderRefusedError:
        pass
    await client.add_batches(name, refs[1:2])
    await client.submit(name)
    await client.submit(name)  # a repeat: answered with the state
    await client.wait_closed(name)
    await client.create(name, refs=refs[:1], idempotency_key="req-1")  # after close: a new run ends at once
    try:
        await client.create(name, refs=refs[2:3])  # after close, another request: its run fails
    except OrderRefusedError:
        pass

    cancelled = "alice@example.com/PO-1"  # the same reference, another customer
    await client.create(cancelled)
    await client.cancel(cancelled, "no longer needed")
    await client.cancel(cancelled, "no longer needed")  # a repeat
    await client.wait_closed(cancelled)

    outbox = OrderOutbox(orders, batches)
    relay = OrderRelay(client.client, orders, task_queue=client.task_queue, limits=client.limits, name="v4")
    await relay.drain()  # past the earlier scenarios' events
    dbfirst = "acme/PO-db"
    outbox.create(dbfirst, refs=refs[3:4])
    outbox.submit(dbfirst)
    await relay.drain()
    await client.wait_closed(dbfirst)
    return [name, cancelled, dbfirst]


SCENARIOS = {"v1": scenarios, "v2": scenarios_v2, "v3": scenarios_v3, "v4": scenarios_v4, "v5": scenarios_v4}
#: From v4 on, every run of a workflow ID is saved, oldest first (not only one chain).
ALL_RUNS = {"v4", "v5"}


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
                for number, run_id in enumerate(await _run_ids(client, order_id, every=version in ALL_RUNS), start=1):
                    history = await client.handle(order_id, run_id=run_id).fetch_history()
                    # File names hold the reference only (a customer may be an e-mail address).
                    name = OrderName.parse(order_id)
                    path = out_dir / f"{version}-{name.reference.lower()}-{_customer_tag(name.customer)}-run{number}.json"
                    path.write_text(history.to_json())
                    print(f"saved {path} ({len(history.events)} events)")
    finally:
        await env.shutdown()


async def _run_ids(client: OrderClient, order_id: str, *, every: bool) -> list[str]:
    if not every:
        return [run.run_id for run in await client.run_histories(order_id)]
    workflow_id = await client.resolve(order_id)
    runs = [run async for run in client.client.list_workflows(f"WorkflowId = '{workflow_id}'")]
    return [run.run_id for run in sorted(runs, key=lambda run: run.start_time)]


def _customer_tag(customer: str) -> str:
    """A short ASCII tag for a customer in a file name (the histories are test data)."""
    return "".join(c for c in customer.split("@")[0].lower() if c.isascii() and c.isalnum())[:12] or "c"


if __name__ == "__main__":
    asyncio.run(capture(Path(sys.argv[1]), sys.argv[2]))
