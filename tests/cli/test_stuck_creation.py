"""A creation whose record keeps failing is listed by ``bulkorder stuck``, and only while
it fails.

The creation's record is a local activity: while it is retried Temporal shows no pending
activity, only the workflow task the worker keeps open by heartbeats
(bulkorder.workflows.workflow_task). Here the event store is SQLite write-locked by
another connection (as in the fault suite's outage, tests/faults/test_event_store_outage.py)
and the worker's lock timeout is 1 s, so every attempt fails ("database is locked"). Real
Temporal dev server, the worker on the test's event loop, ``bulkorder stuck`` run as a
child process as an operator runs it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path
from typing import Iterator, Mapping

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.cli.helpers import CliResult, cli_env, run_cli
from tests.faults.harness import wait_until
from tests.fixtures.orders import TEST_IDENTITY, OrderStack, sqlite_env
from tests.workflows.helpers import store_generated
from bulkorder.workflows.stuck import find_stuck

STORE = "locked-events.sqlite"


@pytest.fixture
def event_store_env(tmp_path: Path) -> Mapping[str, str]:
    """The stack's event store: SQLite, giving up on a held write lock after 1 s."""
    return {**sqlite_env(tmp_path / STORE), "SQLITE_LOCK_TIMEOUT": "1"}


class WriteLock:
    """Another connection holding the database's write lock: every write times out."""

    def __init__(self, path: Path) -> None:
        self.holder = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.holder.execute("BEGIN EXCLUSIVE")
        self.held = True

    def release(self) -> None:
        if self.held:
            self.holder.execute("ROLLBACK")
            self.holder.close()
            self.held = False


@pytest.fixture
def lock_holder() -> Iterator[list[WriteLock]]:
    locks: list[WriteLock] = []
    yield locks
    for lock in locks:
        lock.release()


async def test_a_creation_whose_record_keeps_failing_is_listed_until_it_is_recorded(
    order_stack: OrderStack, temporal_env: WorkflowEnvironment, temporal_address: str, tmp_path: Path,
    lock_holder: list[WriteLock],
) -> None:
    env = cli_env(tmp_path, {"TEMPORAL_ADDRESS": temporal_address, "BULKORDER_TASK_QUEUE": order_stack.task_queue})
    healthy = f"acme/healthy-{uuid.uuid4().hex[:8]}"
    await order_stack.client.create(healthy, refs=store_generated(order_stack.batches, 20, 10, prefix=healthy[5:]))
    # Its batches are recorded after the create returns: before the store goes away, so
    # the open, healthy order has no failing step either.
    await wait_until(lambda: order_stack.orders.summary(healthy).batch_count == 2, "the healthy order's batches recorded")

    lock_holder.append(WriteLock(tmp_path / STORE))
    order_id = f"acme/unrecorded-{uuid.uuid4().hex[:8]}"
    refs = store_generated(order_stack.batches, 20, 10, prefix=order_id[5:])
    creating = asyncio.create_task(order_stack.client.create(order_id, refs=refs))
    try:
        listed: list[CliResult] = []

        async def creation_listed() -> bool:
            result = await run_cli("stuck", "--json", env=env)
            listed[:] = [result]
            return result.code == 1 and any(o["why"] == "creation not recorded" for o in result.json()["orders"])

        await wait_until(creation_listed, "the failing creation listed by `bulkorder stuck`", timeout=180, interval=1)
        assert not creating.done(), "the create returned while its record could not be written"
        [stuck] = listed[0].json()["orders"]  # the healthy open order is not listed
        assert (stuck["order_id"], stuck["why"], stuck["status"]) == (order_id, "creation not recorded", "open")
        assert stuck["failing_step"] is None  # no pending activity: a local activity
        assert "creation not recorded: its record keeps failing (local activity record_order_change" in stuck["detail"]
        assert "see the worker log" in stuck["detail"]
        creation = stuck["failing_creation"]
        assert creation["step"] == "creation" and creation["local_activity"] is True
        assert creation["attempt_at_least"] >= 2 and creation["seconds"] >= 30

        table = await run_cli("stuck", env=env)
        assert table.code == 1, table.stderr
        assert order_id in table.stdout and "creation not recorded" in table.stdout and healthy not in table.stdout
        assert "1 stuck order(s)" in table.stdout

        shown = await run_cli("show", order_id, "--json", env=env)
        assert shown.code == 0, shown.stderr
        assert shown.json()["failing_step"] is None and shown.json()["failing_creation"]["attempt_at_least"] >= 2
        text = await run_cli("show", order_id, env=env)
        assert text.code == 0 and "creation not recorded: its record keeps failing" in text.stdout, text.stdout

        # A create from the command line does not wait for ever: `--timeout` gives up, exit 3.
        waited = f"unrecorded-cli-{uuid.uuid4().hex[:8]}"
        gave_up = await run_cli("create", waited, "--customer", "acme", "--timeout", "3s", env=env)
        assert gave_up.code == 3, (gave_up.code, gave_up.stderr)
        assert f"order acme/{waited}: its creation was not recorded within 3 s" in gave_up.stderr

        # The same look from Python; a bar of attempts no heartbeat chain can prove yet.
        found = await find_stuck(order_stack.client)
        assert (order_id, "creation not recorded") in [(o.order_id, o.why) for o in found]
        assert await find_stuck(order_stack.client, min_attempts=1000) == []
    finally:
        lock_holder[0].release()  # the store is back

    summary = await asyncio.wait_for(creating, timeout=120)
    assert (summary.order_id, summary.status) == (order_id, "open")
    assert order_stack.orders.summary(order_id).status == "open"  # recorded: the order exists

    async def nothing_stuck() -> bool:
        return (await run_cli("stuck", "--json", env=env)).code == 0

    await wait_until(nothing_stuck, "`bulkorder stuck` to list nothing once the creation is recorded", timeout=60, interval=1)
    again = await run_cli("create", waited, "--customer", "acme", "--json", env=env)  # the same request, once recorded
    assert again.code == 0 and again.json()["order_id"] == f"acme/{waited}", again.stderr
    for name in (healthy, order_id, f"acme/{waited}"):
        await temporal_env.client.get_workflow_handle(TEST_IDENTITY.workflow_id(name)).terminate("test over")
