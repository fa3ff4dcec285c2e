"""Claim-check payloads against a real Temporal dev server: those of a workflow Temporal
still holds stay; those of a workflow deleted from Temporal (as retention deletes it) and
of one it never knew go, once older than the payload grace."""

from __future__ import annotations

import asyncio
import os
import time

from temporalio.api.common.v1 import Payload, WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.service import RPCError, RPCStatusCode

from bulkorder.storage.claim_check import ClaimCheck, ClaimCheckCodec
from bulkorder.storage.payload_gc import KEPT_LIVE, sweep_payloads
from bulkorder.workflows.gc_roots import workflows_gone
from tests.fixtures.orders import TEST_IDENTITY, OrderStack

HOUR = 3600.0


async def scoped_payload(blobs: object, workflow_id: str) -> str:
    payload = Payload(metadata={"encoding": b"binary/plain"}, data=os.urandom(300_000))
    [reference] = await ClaimCheckCodec(blobs).encode_for([payload], workflow_id)  # type: ignore[arg-type]
    return ClaimCheck.from_payload(reference).key


async def deleted(stack: OrderStack, workflow_id: str) -> None:
    """Every run of ``workflow_id`` deleted, as the namespace's retention deletes them."""
    client = stack.temporal
    description = await client.get_workflow_handle(workflow_id).describe()
    first = description.raw_description.workflow_execution_info.first_run_id or description.run_id
    for run_id in {first, description.run_id}:
        await client.workflow_service.delete_workflow_execution(
            DeleteWorkflowExecutionRequest(
                namespace=client.namespace, workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id)
            )
        )
    deadline = time.monotonic() + 60  # Temporal deletes in the background
    while time.monotonic() < deadline:
        try:
            await client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return
            raise
        await asyncio.sleep(0.2)
    raise AssertionError(f"{workflow_id} still described 60 s after its deletion")


async def test_payloads_go_with_their_workflow(order_stack: OrderStack) -> None:
    blobs = order_stack.batches.blobs
    await order_stack.client.create("c-1/gc-payloads-live")
    await order_stack.client.create("c-1/gc-payloads-gone")
    await order_stack.client.cancel("c-1/gc-payloads-gone", "closing it, to delete it")
    await order_stack.client.wait_closed("c-1/gc-payloads-gone")
    live = TEST_IDENTITY.workflow_id("c-1/gc-payloads-live")
    gone = TEST_IDENTITY.workflow_id("c-1/gc-payloads-gone")
    keys = {name: await scoped_payload(blobs, workflow_id) for name, workflow_id in
            [("live", live), ("gone", gone), ("never", "order-never-started")]}
    await deleted(order_stack, gone)

    later = time.time() + 2 * HOUR  # as if the sweep ran two hours later: past the payload grace
    report = await sweep_payloads(
        blobs, lambda ids: workflows_gone(order_stack.temporal, ids), grace=0.0, dry_run=False, now=later
    )

    assert report.workflows_gone == 2 and report.deleted.blobs == 2
    assert report.kept[KEPT_LIVE].blobs >= 1
    assert blobs.exists(keys["live"])
    assert not blobs.exists(keys["gone"]) and not blobs.exists(keys["never"])
