"""Nobody waits blind: ``show`` names a failing step, ``submit --wait`` surfaces it and ends
at its ``--timeout``, ``stuck`` lists the order; a failed fulfillment can be retried after
its cause is fixed. Real servers, the ``bulkorder`` command run as a separate process.

The transient case runs a worker whose blob store is an S3 endpoint that refuses
connections (a closed local port), so fulfillment fails on every attempt and Temporal
retries it with backoff while the order stays "submitted".
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from bulkorder.domain.application import Orders
from bulkorder.domain.sample_items import generate_items
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.s3_store import S3BlobStore
from tests.cli.helpers import cli_env, run_cli, write_ndjson
from tests.faults.harness import wait_until
from tests.fixtures.orders import TEST_IDENTITY, TEST_SEALER, OrderStack, sqlite_env, stack_settings
from tests.fixtures.s3 import S3_TEST_ENV, free_port
from bulkorder.encryption import event_protection
from bulkorder.runtime import data_converter
from bulkorder.workflows.worker import build_worker


def new_order_id() -> str:
    """A new order's name (customer/reference)."""
    return f"acme/stuck-{uuid.uuid4().hex[:10]}"


@dataclass
class DeadStoreStack:
    orders: Orders
    env: dict[str, str]
    task_queue: str


@pytest_asyncio.fixture
async def dead_store_stack(
    temporal_env: WorkflowEnvironment, temporal_address: str, task_queue: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[DeadStoreStack]:
    """A worker whose blob store is an S3 endpoint where nothing listens. The CLI writes
    its batches to the folder store as usual (recording never reads blobs): only
    fulfillment meets the dead endpoint."""
    for name, value in S3_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    dead = S3BlobStore(
        "bulkorder-unreachable", endpoint_url=f"http://127.0.0.1:{free_port()}", region_name="us-east-1",
        max_attempts=1, connect_timeout=1,
    )
    settings = stack_settings(tmp_path)
    orders = Orders(env=sqlite_env(tmp_path / "events.sqlite"), protection=event_protection(settings.encryption_settings, settings.blob_store))
    # The worker's failures go through the deployment's converter: bounded, so Temporal
    # keeps the retried step's error (workflows/failures.py); payloads encrypted.
    # Encryption as the CLI's (same blobs tmp_path/blobs, the tests' keyring).
    converter = data_converter(settings)
    client = Client(temporal_env.client.service_client, namespace=temporal_env.client.namespace, data_converter=converter)
    env = cli_env(tmp_path, {"TEMPORAL_ADDRESS": temporal_address, "BULKORDER_TASK_QUEUE": task_queue})
    # The CLI's deployment secret (cli_env) and keys: the worker believes the CLI's refs,
    # sealed for their order, without reading the (dead) store.
    batches = BatchStore(dead, sealer=TEST_SEALER, protection=settings.blob_protection())
    worker = build_worker(client, orders=orders, batches=batches, task_queue=task_queue)
    async with worker:
        yield DeadStoreStack(orders=orders, env=env, task_queue=task_queue)
        # Its orders would retry forever on the session's server: end them.
        query = f"TaskQueue='{task_queue}' AND ExecutionStatus='Running'"
        async for workflow in temporal_env.client.list_workflows(query):
            await temporal_env.client.get_workflow_handle(workflow.id).terminate("test over")
    orders.close()


async def create_order(order_id: str, tmp_path: Path, env: dict[str, str], items: int = 300) -> None:
    customer, _, reference = order_id.rpartition("/")
    path = write_ndjson(tmp_path / f"{reference}.ndjson", list(generate_items(items)))
    created = await run_cli("create", reference, "--customer", customer, "--items", str(path), env=env)
    assert created.code == 0, created.stderr


async def test_a_step_that_keeps_failing_is_shown_listed_and_ends_a_timed_wait(
    dead_store_stack: DeadStoreStack, tmp_path: Path
) -> None:
    env = dead_store_stack.env
    order_id = new_order_id()
    await create_order(order_id, tmp_path, env)

    waited = await run_cli("submit", order_id, "--wait", "--timeout", "5s", env=env)
    assert waited.code == 3, (waited.stdout, waited.stderr)
    assert f"bulkorder submit: error: timed out after 5 s waiting for order {order_id} (status submitted)" in waited.stderr
    # Surfaced while waiting (its own line), and again in the final message.
    assert f"order {order_id}: fulfillment step failing: attempt" in waited.stderr
    assert "did not answer" in waited.stderr and "(TransientStoreError)" in waited.stderr
    assert "status    submitted" in waited.stdout or "submitted" in waited.stdout

    shown = await run_cli("show", order_id, "--json", env=env)
    assert shown.code == 0, shown.stderr
    step = shown.json()["failing_step"]
    assert step["step"] == "fulfillment" and step["attempt"] >= 2
    assert step["error_type"] == "TransientStoreError" and "did not answer" in step["last_error"]
    assert step["last_attempt_at"] is not None and shown.json()["status"] == "submitted"
    assert "testing" not in shown.stdout  # the test credentials never show up

    text = await run_cli("show", order_id, env=env)
    assert text.code == 0 and "failing step" in text.stdout and "fulfillment" in text.stdout
    assert "did not answer" in text.stdout and "next retry" in text.stdout

    listed = await run_cli("stuck", "--json", env=env)
    assert listed.code == 1, listed.stderr
    [stuck] = listed.json()["orders"]
    assert stuck["order_id"] == order_id and stuck["why"] == "failing step" and stuck["status"] == "submitted"
    assert stuck["failing_step"]["step"] == "fulfillment" and stuck["failing_step"]["attempt"] >= 2

    table = await run_cli("stuck", env=env)
    assert table.code == 1 and order_id in table.stdout and "1 stuck order(s)" in table.stdout

    patient = await run_cli("stuck", "--min-attempts", "1000", "--json", env=env)
    assert patient.code == 0 and patient.json() == {"count": 0, "orders": []}


async def test_retry_of_an_order_whose_fulfillment_has_not_failed_is_refused(
    dead_store_stack: DeadStoreStack, tmp_path: Path
) -> None:
    env = dead_store_stack.env
    order_id = new_order_id()
    await create_order(order_id, tmp_path, env)
    submitted = await run_cli("submit", order_id, "--json", env=env)
    assert submitted.code == 0 and submitted.json()["status"] == "submitted"

    async def retrying() -> bool:
        shown = await run_cli("show", order_id, "--json", env=env)
        step = shown.json()["failing_step"]
        return step is not None and step["attempt"] >= 2

    await wait_until(retrying, "fulfillment's second attempt", timeout=60)
    # Fulfillment is being retried, not failed for good: the workflow refuses a retry,
    # before any wait begins.
    refused = await run_cli("retry", order_id, "--wait", "--timeout", "30s", env=env)
    assert refused.code == 1, (refused.stdout, refused.stderr)
    assert refused.stderr.startswith("bulkorder retry: error:") and "timed out" not in refused.stderr


async def test_no_stuck_orders_exit_0(order_stack: OrderStack, temporal_address: str, tmp_path: Path) -> None:
    env = cli_env(tmp_path, {"TEMPORAL_ADDRESS": temporal_address, "BULKORDER_TASK_QUEUE": order_stack.task_queue})
    order_id = new_order_id()
    await create_order(order_id, tmp_path, env)  # open, healthy: not stuck
    listed = await run_cli("stuck", env=env)
    assert listed.code == 0, listed.stderr
    assert f"no stuck orders on task queue {order_stack.task_queue}" in listed.stdout
    as_json = await run_cli("stuck", "--json", env=env)
    assert as_json.code == 0 and as_json.json()["count"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "x", "--wait", "--timeout", "soon"], "'soon' is not a duration"),
        (["submit", "x", "--wait", "--timeout", "0s"], "must be more than zero"),
        (["import", "x", "f.ndjson", "--timeout=-1m"], "must be more than zero"),
        (["retry", "x", "--reason", "r" * 1_001], "at most 1,000 characters"),
        (["stuck", "--min-attempts", "1"], "must be 2 or more"),
    ],
)
async def test_bad_wait_arguments_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = await run_cli(*args, env=cli_env(tmp_path))
    assert result.code == 2 and message in result.stderr


async def test_a_task_queue_no_query_can_carry_is_refused(tmp_path: Path, temporal_address: str) -> None:
    env = cli_env(tmp_path, {"TEMPORAL_ADDRESS": temporal_address, "BULKORDER_TASK_QUEUE": "q' OR 'x'='x"})
    result = await run_cli("stuck", env=env)
    assert result.code == 2 and "cannot be searched" in result.stderr


# ---- a deterministic failure, then recovery --------------------------------------------


def hide_blobs(stack: OrderStack, order_id: str, where: Path) -> list[tuple[Path, Path]]:
    """Move the order's batch blobs out of the folder store: fulfillment cannot read them."""
    moved = []
    root = Path(stack.batches.blobs.root)  # type: ignore[attr-defined]  # a FolderBlobStore
    # `create --items` returns once the order is recorded; its batch is recorded just after.
    deadline = time.monotonic() + 60
    while not (refs := list(stack.orders.iter_batch_refs(order_id))):
        assert time.monotonic() < deadline, f"{order_id}: no batch recorded within 60 s"
        time.sleep(0.1)
    for ref in refs:
        path = root / ref.key
        hidden = where / ref.key.replace("/", "_")
        path.rename(hidden)
        moved.append((path, hidden))
    assert moved
    return moved


async def test_submit_wait_ends_promptly_when_fulfillment_fails(order_stack: OrderStack, temporal_address: str, tmp_path: Path) -> None:
    env = cli_env(tmp_path, {"TEMPORAL_ADDRESS": temporal_address, "BULKORDER_TASK_QUEUE": order_stack.task_queue})
    order_id = new_order_id()
    await create_order(order_id, tmp_path, env)
    hide_blobs(order_stack, order_id, tmp_path)
    loop = asyncio.get_running_loop()
    started = loop.time()
    waited = await run_cli("submit", order_id, "--wait", "--timeout", "2m", env=env)
    assert waited.code == 1, (waited.stdout, waited.stderr)
    assert loop.time() - started < 60  # the failure ends the wait, not the timeout
    assert "could be read" in waited.stderr
    shown = await run_cli("show", order_id, "--json", env=env)
    assert shown.code == 0 and shown.json()["status"] == "failed" and "could be read" in shown.json()["reason"]


async def test_retry_after_fix(order_stack: OrderStack, temporal_address: str, tmp_path: Path) -> None:
    """Needs the workflow to wait in status "failed" for ``retry_fulfillment`` or ``cancel``
    (issue 15, the lead's change): on a workflow that fails instead, ``retry`` is refused."""
    env = cli_env(tmp_path, {"TEMPORAL_ADDRESS": temporal_address, "BULKORDER_TASK_QUEUE": order_stack.task_queue})
    order_id = new_order_id()
    await create_order(order_id, tmp_path, env)
    moved = hide_blobs(order_stack, order_id, tmp_path)

    failed = await run_cli("submit", order_id, "--wait", "--timeout", "2m", env=env)
    assert failed.code == 1 and "could be read" in failed.stderr, failed.stderr
    shown = await run_cli("show", order_id, "--json", env=env)
    assert shown.json()["status"] == "failed" and shown.json()["source"] == "workflow", shown.stdout
    listed = await run_cli("stuck", "--json", env=env)
    assert listed.code == 1 and [o["why"] for o in listed.json()["orders"]] == ["fulfillment failed"]

    for path, hidden in moved:  # the cause, fixed
        hidden.rename(path)
    retried = await run_cli("retry", order_id, "--reason", "blobs restored", "--wait", "--timeout", "2m", "--json", env=env)
    assert retried.code == 0, (retried.stdout, retried.stderr)
    assert retried.json()["status"] == "fulfilled" and retried.json()["report"]["item_count"] == 300
    assert order_stack.orders.summary(order_id).status == "fulfilled"
    assert (await run_cli("stuck", "--json", env=env)).code == 0


async def test_cancel_a_failed_order(order_stack: OrderStack, temporal_address: str, tmp_path: Path) -> None:
    """Needs the same workflow change as ``test_retry_after_fix``: ``cancel`` accepted in "failed"."""
    env = cli_env(tmp_path, {"TEMPORAL_ADDRESS": temporal_address, "BULKORDER_TASK_QUEUE": order_stack.task_queue})
    order_id = new_order_id()
    await create_order(order_id, tmp_path, env)
    hide_blobs(order_stack, order_id, tmp_path)
    failed = await run_cli("submit", order_id, "--wait", env=env)
    assert failed.code == 1, failed.stderr
    cancelled = await run_cli("cancel", order_id, "--reason", "given up", "--json", env=env)
    assert cancelled.code == 0, cancelled.stderr
    assert cancelled.json()["status"] == "cancelled"
    await wait_until(lambda: order_stack.orders.summary(order_id).status == "cancelled", "the cancel recorded", timeout=60)


async def test_import_timeout_exits_3_with_the_orders_state(temporal_env: WorkflowEnvironment, temporal_address: str, task_queue: str, tmp_path: Path) -> None:
    """No worker serves the task queue: nothing is ever recorded, and the import gives up
    at its deadline instead of waiting for good."""
    env = cli_env(tmp_path, {"TEMPORAL_ADDRESS": temporal_address, "BULKORDER_TASK_QUEUE": task_queue})
    order_id = new_order_id()
    path = write_ndjson(tmp_path / "items.ndjson", list(generate_items(100)))
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await run_cli("import", order_id, str(path), "--create", "--customer", "acme", "--timeout", "3s", "--quiet", env=env)
    assert result.code == 3, (result.stdout, result.stderr)
    assert f"bulkorder import: error: timed out after 3 s: order {order_id}: " in result.stderr
    assert "running the same import again resumes" in result.stderr
    assert loop.time() - started < 60
    await temporal_env.client.get_workflow_handle(TEST_IDENTITY.workflow_id(order_id)).terminate("test over")
