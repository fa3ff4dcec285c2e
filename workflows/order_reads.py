"""Reading an order's workflow, and calling it: the part of ``OrderClient`` that asks.

:class:`OrderWorkflowCalls` is ``OrderClient``'s base: its reads (the workflow's summary
and stats queries, the pending steps ``describe`` reports, one look at the order's
progress, waiting until it settles, its runs' history sizes) and the one way every call
reaches a workflow (:meth:`~OrderWorkflowCalls._call`: refusals become typed errors,
momentary refusals are retried). The commands that change an order are ``OrderClient``'s.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Awaitable, Callable, TypeVar

from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistoryEventFilterType,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from bulkorder.domain.errors import OrderNotFoundError
from bulkorder.domain.identity import OrderName, order_name
from bulkorder.domain.summary import OrderStatus, OrderSummary
from bulkorder.workflows.errors import OrderRefusedError, refusal_from
from bulkorder.workflows.messages import OrderStats
from bulkorder.workflows.order_rules import FULFILLMENT_FAILED, ORDER_CLOSED
from bulkorder.workflows.order_workflow import OrderWorkflow
from bulkorder.workflows.pending import (
    WORKFLOW_COMPLETED,
    WORKFLOW_RUNNING,
    OrderProgress,
    PendingStep,
    failing_step,
    read_pending_steps,
)
from bulkorder.workflows.workflow_task import read_workflow_task

T = TypeVar("T")

#: How long a read of the workflow's state (describe, query) may take before it counts as
#: unanswered: a query waits for a worker, and none may be running.
READ_TIMEOUT = timedelta(seconds=10)


@dataclass(frozen=True)
class RunHistory:
    """One run of an order workflow, as Temporal reports it."""

    run_id: str
    events: int
    bytes: int
    status: str


class OrderWorkflowCalls:
    """Reads of an order's workflow and the call discipline; ``OrderClient`` adds the
    commands and says how an order's name finds its workflow (:meth:`_handle`)."""

    client: Client
    _update_slots: asyncio.Semaphore

    async def _handle(self, order: OrderName | str, run_id: str | None = None) -> WorkflowHandle[OrderWorkflow, OrderSummary]:
        raise NotImplementedError  # OrderClient's: the name resolves to a workflow ID

    async def summary(self, order_id: OrderName | str) -> OrderSummary:
        order_id = str(order_name(order_id))
        handle = await self._handle(order_id)
        return await self._call(order_id, lambda: handle.query(OrderWorkflow.summary))

    async def stats(self, order_id: OrderName | str) -> OrderStats:
        order_id = str(order_name(order_id))
        handle = await self._handle(order_id)
        return await self._call(order_id, lambda: handle.query(OrderWorkflow.stats))

    async def pending_steps(self, order_id: OrderName | str) -> list[PendingStep]:
        """The activities the order's workflow waits on, with attempts and last errors."""
        order_id = str(order_name(order_id))
        handle = await self._handle(order_id)
        description = await self._call(order_id, lambda: handle.describe(rpc_timeout=READ_TIMEOUT))
        return await read_pending_steps(description.raw_description.pending_activities, self.client.data_converter)

    async def failing_step(self, order_id: OrderName | str, *, min_attempts: int = 2) -> PendingStep | None:
        """The order's step that keeps failing (retried after a failure), if any."""
        return failing_step(await self.pending_steps(order_id), min_attempts=min_attempts)

    async def progress(self, order_id: OrderName | str) -> OrderProgress:
        """One look at the order's latest run: execution status, counters, pending steps.

        Never waits long: the summary query is bounded by ``READ_TIMEOUT`` (a workflow with
        no worker to answer it is reported with ``error`` set, not waited for)."""
        order_id = str(order_name(order_id))
        handle = await self._handle(order_id)
        description = await self._call(order_id, lambda: handle.describe(rpc_timeout=READ_TIMEOUT))
        raw = description.raw_description
        status = _status_name(raw.workflow_execution_info.status)
        steps = await read_pending_steps(raw.pending_activities, self.client.data_converter)
        summary: OrderSummary | None = None
        error: str | None = None
        if status == WORKFLOW_RUNNING:
            try:
                summary = await handle.query(OrderWorkflow.summary, rpc_timeout=READ_TIMEOUT)
            except (RPCError, WorkflowQueryFailedError) as err:
                error = f"the workflow did not answer its summary query (is a worker running?): {err}"
        elif status == WORKFLOW_COMPLETED:
            summary = await self.wait_closed(order_id)
        else:
            try:
                await self.wait_closed(order_id)
            except OrderRefusedError as err:
                error = str(err)
        return OrderProgress(
            order_id=order_id, workflow_status=status, summary=summary, steps=steps, error=error,
            workflow_task=read_workflow_task(raw),
        )

    async def wait_closed(self, order_id: OrderName | str, *, poll_seconds: float = 0.5) -> OrderSummary:
        """Wait until the order is settled: its workflow completed (following
        continue-as-new), or its fulfillment failed. A failed order's workflow stays open,
        waiting for an operator's ``retry_fulfillment`` or ``cancel``: that raises
        :class:`OrderRefusedError` of type ``FulfillmentFailed`` with the reason, as a
        workflow that ended failed does, instead of waiting for it to end."""
        order_id = str(order_name(order_id))
        result = asyncio.ensure_future((await self._handle(order_id)).result())
        try:
            while True:
                done, _ = await asyncio.wait({result}, timeout=poll_seconds)
                if done:
                    return result.result()
                summary = await self.summary(order_id)
                if summary.status == OrderStatus.FAILED:
                    raise OrderRefusedError(
                        summary.failure_reason or f"order {order_id!r}: fulfillment failed",
                        type=FULFILLMENT_FAILED,
                        order_id=order_id,
                    )
        except WorkflowFailureError as err:
            raise refusal_from(err, order_id) from None
        except RPCError as err:
            raise _translated(err, order_id) from None
        finally:
            result.cancel()

    async def run_histories(self, order_id: OrderName | str) -> list[RunHistory]:
        """Every run of the order's workflow with its history size, read from Temporal."""
        order_id = str(order_name(order_id))
        latest_handle = await self._handle(order_id)
        latest = await self._call(order_id, lambda: latest_handle.describe())
        run_id: str | None = latest.raw_description.workflow_execution_info.first_run_id or latest.run_id
        runs: list[RunHistory] = []
        while run_id:
            handle = await self._handle(order_id, run_id=run_id)
            info = (await handle.describe()).raw_description.workflow_execution_info
            runs.append(
                RunHistory(
                    run_id=run_id,
                    events=info.history_length,
                    bytes=info.history_size_bytes,
                    status=_status_name(info.status),
                )
            )
            run_id = await _next_run_id(handle)
        return runs

    async def _update(self, order_id: str, call: Callable[[], Awaitable[T]]) -> T:
        async with self._update_slots:
            return await self._call(order_id, call)

    async def _call(self, order_id: str, call: Callable[[], Awaitable[T]], *, patience: float = 300.0) -> T:
        """Run one call and translate refusals into typed errors. Retries what Temporal
        reports as momentary: the workflow's limit of concurrent updates, and an update
        aborted because its run was continuing-as-new (the retry reaches the new run;
        batch IDs make a repeat harmless)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        delay = 0.05
        while True:
            try:
                return await call()
            except WorkflowUpdateFailedError as err:
                raise refusal_from(err, order_id) from None
            except RPCError as err:
                if not _is_momentary(err) or loop.time() > deadline:
                    raise _translated(err, order_id) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)



def _is_momentary(err: RPCError) -> bool:
    if err.status == RPCStatusCode.RESOURCE_EXHAUSTED:
        return True
    return err.status == RPCStatusCode.UNAVAILABLE and "update was aborted" in str(err)


def _translated(err: RPCError, order_id: str) -> Exception:
    # Checked first: Temporal answers NOT_FOUND for an update to a workflow that ended.
    if "already completed" in str(err) or "already closed" in str(err):
        return OrderRefusedError(f"order {order_id!r} is closed: {err.message}", type=ORDER_CLOSED, order_id=order_id)
    if err.status == RPCStatusCode.NOT_FOUND:
        return OrderNotFoundError(order_id)
    return err


def _status_name(status: int) -> str:
    from temporalio.api.enums.v1 import WorkflowExecutionStatus

    return WorkflowExecutionStatus.Name(status).removeprefix("WORKFLOW_EXECUTION_STATUS_").lower()


async def _next_run_id(handle: WorkflowHandle[Any, Any]) -> str | None:
    async for event in handle.fetch_history_events(event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT):
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            return event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id or None
    return None


