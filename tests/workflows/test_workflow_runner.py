"""The worker's workflow runner: temporalio's sandbox (the default) or none
(``BULKORDER_WORKFLOW_SANDBOX=off``, which saves a create some of the worker's CPU). The same workflow code either way: an order
served without the sandbox lives its whole life, and its history replays in the sandbox."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from bulkorder.errors import SettingsError
from bulkorder.runtime import Runtime
from bulkorder.settings import Settings
from bulkorder.workflows.client import OrderClient
from bulkorder.workflows.order_workflow import OrderWorkflow
from bulkorder.workflows.worker import build_worker
from tests.fixtures.orders import TEST_IDENTITY, OrderStack
from tests.workflows.helpers import event_types, store_generated


async def test_an_order_served_without_the_sandbox_lives_and_replays_in_it(order_stack: OrderStack) -> None:
    task_queue = f"unsandboxed-{uuid.uuid4().hex[:8]}"
    worker = build_worker(
        order_stack.temporal, orders=order_stack.orders, batches=order_stack.batches, task_queue=task_queue, sandboxed=False
    )
    assert isinstance(worker.config()["workflow_runner"], UnsandboxedWorkflowRunner)
    client = OrderClient(order_stack.temporal, task_queue=task_queue, batches=order_stack.batches, identity=TEST_IDENTITY)
    name = f"customer-1/t-{uuid.uuid4().hex[:12]}"
    refs = store_generated(order_stack.batches, 3_000, 1_000, prefix=name.replace("/", "-"), order_id=name)
    async with worker:
        created = await client.create(name, refs=refs[:1])
        assert (created.status, created.item_count) == ("open", 1_000)
        await client.add_batches(name, refs[1:])
        await client.submit(name)
        final = await client.wait_closed(name)
    assert (final.status, final.item_count, final.batch_count) == ("fulfilled", 3_000, 3)
    assert event_types(order_stack.orders, name)[0] == "Created"

    history = await order_stack.temporal.get_workflow_handle(client.identity.workflow_id(name)).fetch_history()
    replayer = Replayer(
        workflows=[OrderWorkflow], data_converter=order_stack.temporal.data_converter,
        workflow_runner=SandboxedWorkflowRunner(),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None


def test_the_sandbox_is_a_worker_setting(tmp_path: Path) -> None:
    def runner(value: str | None) -> object:
        env = {"BULKORDER_HOME": str(tmp_path)}
        if value is not None:
            env["BULKORDER_WORKFLOW_SANDBOX"] = value
        return Settings.from_env(env).workflow_sandbox

    assert runner(None) is True  # temporalio's default (docs/configuration.md)
    assert runner("on") is True and runner(" ON ") is True and runner("") is True
    assert runner("off") is False and runner(" Off ") is False
    with pytest.raises(SettingsError, match="BULKORDER_WORKFLOW_SANDBOX='yes': expected on or off"):
        runner("yes")


async def test_the_runtime_worker_follows_the_setting(order_stack: OrderStack, tmp_path: Path) -> None:
    for value, expected in (("on", SandboxedWorkflowRunner), ("off", UnsandboxedWorkflowRunner)):
        settings = Settings.from_env({
            "BULKORDER_HOME": str(tmp_path), "BULKORDER_WORKFLOW_SANDBOX": value,
            "BULKORDER_TASK_QUEUE": f"runner-{value}-{uuid.uuid4().hex[:8]}",
        })
        runtime = Runtime(settings=settings, client=order_stack.temporal, blobs=order_stack.batches.blobs,
                          batches=order_stack.batches, _orders=order_stack.orders)
        assert isinstance(runtime.worker().config()["workflow_runner"], expected)
