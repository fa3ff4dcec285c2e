"""No order is ever stuck (issue 15): a poison batch during fulfilment, and an activity
that raises an unexpected exception, each end in a recorded outcome within seconds; the
event store and the workflow agree; ``show``, ``submit --wait`` and ``stuck`` say what
happened; a failed order is recovered with ``retry`` once its cause is fixed.

Real Temporal server, folder blob store, SQLite; the ``bulkorder`` command as a child
process, as an operator runs it.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Mapping

from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from bulkorder.domain.refs import BatchRef
from bulkorder.domain.summary import OrderSummary
from bulkorder.storage.batch_codec import HEADER, MAGIC
from bulkorder.storage.blob_store import sha256_hex
from tests.cli.helpers import cli_env, run_cli
from tests.fixtures.orders import TEST_SEALER, OrderStack
from tests.workflows.helpers import store_generated, worker_serving
from bulkorder.workflows.activities import OrderActivities
from bulkorder.workflows.activity_errors import classified_failures
from bulkorder.workflows.client import OrderClient
from bulkorder.workflows.messages import FULFILL_CHECKED_ACTIVITY, FulfillmentResult, FulfillRequest


def new_order_id() -> str:
    return f"ns-{uuid.uuid4().hex[:10]}"


def poison_ref(stack: OrderStack, batch_id: str) -> BatchRef:
    """Bytes that hash to their key but do not decode (a header promising a msgpack body
    that is not one), sealed as if the deployment's own writer had made them."""
    data = HEADER.pack(MAGIC, 1, 0, 0, 3, 9) + b"\xc1" * 9  # 0xc1: never valid msgpack
    sha = sha256_hex(data)
    ref = BatchRef(batch_id, f"batches/{sha[:2]}/{sha}", sha, len(data), 3, 3, {"EUR": 300})
    stack.batches.blobs.put(ref.key, data)
    return TEST_SEALER.seal(ref)


def env_for(tmp_path: Path, address: str, task_queue: str, event_store_env: Mapping[str, str]) -> dict[str, str]:
    return cli_env(tmp_path, {"TEMPORAL_ADDRESS": address, "BULKORDER_TASK_QUEUE": task_queue, **event_store_env})


async def agree(client: OrderClient, stack: OrderStack, order_id: str) -> OrderSummary:
    workflow = await client.summary(order_id)
    recorded = stack.orders.summary(order_id)
    assert (workflow.status, workflow.item_count, workflow.quantity, workflow.totals, workflow.rejected_items) == (
        recorded.status, recorded.item_count, recorded.quantity, recorded.totals, recorded.rejected_items,
    )
    return recorded


async def test_a_poison_batch_at_fulfilment_is_recorded_and_the_rest_fulfilled(
    order_stack: OrderStack, temporal_address: str, tmp_path: Path, event_store_env: Mapping[str, str]
) -> None:
    env = env_for(tmp_path, temporal_address, order_stack.task_queue, event_store_env)
    order_id = new_order_id()
    good = store_generated(order_stack.batches, 400, 200, prefix=order_id)
    poison = poison_ref(order_stack, f"{order_id}-poison")
    order_id = f"acme/{order_id}"  # the order's name: customer/reference
    await order_stack.client.create(order_id, refs=[*good, poison])
    waited = await run_cli("submit", order_id, "--wait", "--timeout", "2m", "--json", env=env)
    assert waited.code == 0, (waited.stdout, waited.stderr)
    assert waited.json()["status"] == "fulfilled" and waited.json()["report"]["item_count"] == 400

    shown = await run_cli("show", order_id, "--json", env=env)
    assert shown.code == 0, shown.stderr
    reasons = {r["batch_id"]: r["reason"] for r in shown.json()["rejections"]}
    assert "unreadable at fulfillment" in reasons[poison.batch_id] and "not valid msgpack" in reasons[poison.batch_id]
    assert shown.json()["failing_step"] is None
    assert (await run_cli("stuck", "--json", env=env)).code == 0
    recorded = order_stack.orders.summary(order_id)
    assert (recorded.status, recorded.item_count, recorded.rejected_items) == ("fulfilled", 403, 3)


class BuggyReport(OrderActivities):
    """Fulfilment that hits a bug (an exception nobody classified) until it is fixed."""

    broken = True

    @activity.defn(name=FULFILL_CHECKED_ACTIVITY)
    def fulfill_order_checked(self, request: FulfillRequest) -> FulfillmentResult:
        with classified_failures("fulfillment"):
            if type(self).broken:
                raise RuntimeError("report writer: unsupported value")
        return super().fulfill_order_checked(request)


async def test_an_unexpected_exception_ends_failed_is_shown_listed_and_retried(
    temporal_env: WorkflowEnvironment, order_stack: OrderStack, temporal_address: str, tmp_path: Path,
    event_store_env: Mapping[str, str],
) -> None:
    task_queue = f"buggy-{uuid.uuid4().hex[:8]}"
    env = env_for(tmp_path, temporal_address, task_queue, event_store_env)
    client = OrderClient(order_stack.temporal, task_queue=task_queue, batches=order_stack.batches)
    order_id = new_order_id()
    refs = store_generated(order_stack.batches, 300, 100, prefix=order_id)
    worker = worker_serving(order_stack.temporal, BuggyReport(order_stack.orders, order_stack.batches), task_queue)
    async with worker:
        order_id = f"acme/{order_id}"  # the order's name: customer/reference
        await client.create(order_id, refs=refs)
        waited = await run_cli("submit", order_id, "--wait", "--timeout", "2m", env=env)
        assert waited.code == 1, (waited.stdout, waited.stderr)  # ends, well before the timeout
        assert "RuntimeError: report writer: unsupported value" in waited.stderr
        failed = await agree(client, order_stack, order_id)
        assert failed.status == "failed"

        shown = await run_cli("show", order_id, "--json", env=env)
        assert shown.json()["status"] == "failed" and "report writer" in shown.json()["reason"]
        listed = await run_cli("stuck", "--json", env=env)
        assert listed.code == 1 and [(o["order_id"], o["why"]) for o in listed.json()["orders"]] == [
            (order_id, "fulfillment failed")
        ]

        BuggyReport.broken = False  # the fix is deployed
        retried = await run_cli("retry", order_id, "--reason", "fixed in 1.2.1", "--wait", "--timeout", "2m", "--json", env=env)
        assert retried.code == 0, (retried.stdout, retried.stderr)
        assert retried.json()["status"] == "fulfilled"
        await client.wait_closed(order_id)
        final = await agree(client, order_stack, order_id)  # a query: answered by the worker
        assert (final.status, final.item_count) == ("fulfilled", 300)
        assert (await run_cli("stuck", "--json", env=env)).code == 0
