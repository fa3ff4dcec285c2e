"""``bulkorder relay`` as an operator runs it: status, a catch-up run, refused settings."""

from __future__ import annotations

import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from bulkorder.domain.application import Orders
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.folder_store import FolderBlobStore
from tests.cli.helpers import cli_env, run_cli
from tests.fixtures.orders import TEST_IDENTITY, sqlite_env
from tests.workflows.helpers import store_generated
from bulkorder.workflows.outbox import OrderOutbox


async def test_status_then_once_relays_the_outbox_and_catches_up(
    temporal_env: WorkflowEnvironment, temporal_address: str, task_queue: str, tmp_path: Path
) -> None:
    store_env = sqlite_env(tmp_path / "events.sqlite")
    orders = Orders(env=store_env)
    batches = BatchStore(FolderBlobStore(tmp_path / "blobs"))
    outbox = OrderOutbox(orders, batches)
    order_ids = [f"customer-1/cli-relay-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    refs = store_generated(batches, 200, 100, prefix="cli")
    for order_id in order_ids:
        outbox.create(order_id, refs=refs)
    env = cli_env(tmp_path, {
        **store_env, "TEMPORAL_ADDRESS": temporal_address, "BULKORDER_TASK_QUEUE": task_queue,
        "BULKORDER_BLOB_DIR": str(tmp_path / "blobs"),
    })

    before = await run_cli("relay", "--status", "--json", env=env)
    assert before.code == 0, before.stderr
    assert before.json() == {"name": "Orders.relay.default", "position": 0, "lag": 6}

    once = await run_cli("relay", "--once", "--json", env=env)
    assert once.code == 0, once.stderr
    figures = once.json()
    assert (figures["deliveries"], figures["closed"], figures["position"]) == (2, 0, 6)
    for order_id in order_ids:
        description = await temporal_env.client.get_workflow_handle(TEST_IDENTITY.workflow_id(order_id)).describe()
        assert description.status is not None and description.status.name == "RUNNING"

    after = await run_cli("relay", "--status", env=env)
    assert after.code == 0 and "position=6 lag=0" in after.stdout
    orders.close()


async def test_bad_options_and_settings_exit_2_naming_them(tmp_path: Path, temporal_address: str) -> None:
    env = cli_env(tmp_path, {**sqlite_env(tmp_path / "events.sqlite"), "TEMPORAL_ADDRESS": temporal_address})
    page = await run_cli("relay", "--page-size", "0", env=env)
    assert page.code == 2 and "--page-size" in page.stderr and "greater than zero" in page.stderr
    poll = await run_cli("relay", "--poll-interval", "soon", env=env)
    assert poll.code == 2 and "'soon' is not a number of seconds" in poll.stderr
    crash = await run_cli("relay", "--once", env={**env, "BULKORDER_RELAY_CRASH_AT": "nowhere"})
    assert crash.code == 2
    assert "BULKORDER_RELAY_CRASH_AT='nowhere'" in crash.stderr and "unknown relay crash point" in crash.stderr
