"""``OrderClient``: how services and importers talk to order workflows.

Every call checks its input locally first (the same rules the workflow's validators
apply), so bad input is refused before anything reaches Temporal; what only the workflow
can know (a duplicate order, a closed order) comes back as a typed error.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from itertools import islice
from typing import Any, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistoryEventFilterType,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain.errors import OrderNotFoundError
from domain.identifiers import check_customer_id, check_order_id, workflow_id_for
from domain.items import validate_item_dicts
from domain.refs import BatchRef, check_batch_refs
from domain.summary import OrderStatus, OrderSummary
from storage.batches import BatchStore
from workflows.errors import OrderRefusedError, refusal_from
from workflows.messages import MAX_REFS_PER_CALL, AddBatchesResult, CreateRequest, OrderInput, OrderLimits, OrderStats
from workflows.order_workflow import FULFILLMENT_FAILED, ORDER_EXISTS, OrderWorkflow

T = TypeVar("T")

#: Batches ``store_items`` validates, encodes and writes at once (threads; with the window,
#: memory holds a few batches whatever the number of items).
STORE_WINDOW = 4


@dataclass(frozen=True)
class RunHistory:
    """One run of an order workflow, as Temporal reports it."""

    run_id: str
    events: int
    bytes: int
    status: str


class OrderClient:
    def __init__(
        self,
        client: Client,
        *,
        task_queue: str,
        batches: BatchStore | None = None,
        limits: OrderLimits | None = None,
        max_concurrent_updates: int = 8,
    ) -> None:
        self.client = client
        self.task_queue = task_queue
        self.batches = batches
        self.limits = limits or OrderLimits()
        # Temporal admits at most 10 in-flight updates per workflow and refuses the rest;
        # queueing here is cheaper than being refused and retrying with backoff.
        self._update_slots = asyncio.Semaphore(max_concurrent_updates)

    def handle(self, order_id: str, run_id: str | None = None) -> WorkflowHandle[OrderWorkflow, OrderSummary]:
        return self.client.get_workflow_handle_for(OrderWorkflow.run, workflow_id_for(order_id), run_id=run_id)

    # ---- commands ----------------------------------------------------------------------

    async def create(self, order_id: str, customer_id: str, refs: Sequence[BatchRef] = ()) -> OrderSummary:
        """Open an order with Update-With-Start. Returns once the workflow runs and the
        order is in the event store; raises :class:`OrderRefusedError` otherwise."""
        check_order_id(order_id)
        check_customer_id(customer_id)
        refs = check_batch_refs(refs)
        first, rest = refs[:MAX_REFS_PER_CALL], refs[MAX_REFS_PER_CALL:]
        start = WithStartWorkflowOperation(
            OrderWorkflow.run,
            OrderInput(order_id=order_id, customer_id=customer_id, limits=self.limits),
            id=workflow_id_for(order_id),
            task_queue=self.task_queue,
            # An open order with this ID gets the update, whose validator refuses it.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # A closed order's ID is never reused; one whose creation failed may be.
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        )
        try:
            summary = await self.client.execute_update_with_start_workflow(
                OrderWorkflow.create, CreateRequest(refs=first), start_workflow_operation=start
            )
        except WorkflowUpdateFailedError as err:
            raise refusal_from(err, order_id) from None
        except WorkflowAlreadyStartedError:
            raise OrderRefusedError(
                f"order {order_id!r} already exists and is closed", type=ORDER_EXISTS, order_id=order_id
            ) from None
        if rest:
            result = await self.add_batches(order_id, rest)
            assert result is not None
            summary = result.summary
        return summary

    async def add_batches(self, order_id: str, refs: Sequence[BatchRef], *, wait: bool = True) -> AddBatchesResult | None:
        """Add refs: with ``wait`` as updates (validated, acknowledged, returns counters),
        otherwise as signals (fire and forget). Splits into calls of at most
        ``MAX_REFS_PER_CALL`` refs."""
        refs = check_batch_refs(refs)
        handle = self.handle(order_id)
        result: AddBatchesResult | None = None
        accepted: list[str] = []
        duplicates: list[str] = []
        for start in range(0, len(refs), MAX_REFS_PER_CALL):
            chunk = refs[start : start + MAX_REFS_PER_CALL]
            if wait:
                result = await self._update(order_id, lambda: handle.execute_update(OrderWorkflow.add_batches, chunk))
                accepted += result.accepted
                duplicates += result.duplicates
            else:
                await self._call(order_id, lambda: handle.signal(OrderWorkflow.add_batches_signal, chunk))
        if result is None:
            return None
        return AddBatchesResult(accepted=accepted, duplicates=duplicates, summary=result.summary)

    async def add_items(
        self,
        order_id: str,
        items: Iterable[Mapping[str, Any]],
        *,
        batch_size: int = 5_000,
        batch_id_prefix: str | None = None,
        wait: bool = True,
    ) -> AddBatchesResult | None:
        """Validate items, store them as batches, and add the refs to the order."""
        refs = await self.store_items(items, batch_size=batch_size, batch_id_prefix=batch_id_prefix)
        return await self.add_batches(order_id, refs, wait=wait)

    async def store_items(
        self, items: Iterable[Mapping[str, Any]], *, batch_size: int = 5_000, batch_id_prefix: str | None = None
    ) -> list[BatchRef]:
        """Validate and store items as batches; return their refs (nothing sent to Temporal).

        Batches are validated, encoded and written in threads, at most
        ``STORE_WINDOW`` at a time: a generator of millions of items is read as it goes,
        never held whole. The first invalid batch stops it (its error names the batch and
        the item); batches already written stay unreferenced, harmless blobs.
        """
        if self.batches is None:
            raise RuntimeError("OrderClient needs a BatchStore to store items")
        batches = self.batches

        def store(part: list[Mapping[str, Any]], index: int) -> BatchRef:
            where = f"batch {index} item" if batch_id_prefix is None else f"{batch_id_prefix}-{index:06d} item"
            valid = validate_item_dicts(part, where)
            batch_id = None if batch_id_prefix is None else f"{batch_id_prefix}-{index:06d}"
            return batches.write(valid, batch_id=batch_id)

        refs: list[BatchRef] = []
        in_flight: deque[asyncio.Future[BatchRef]] = deque()
        try:
            for index, part in enumerate(_chunks(items, batch_size)):
                in_flight.append(asyncio.ensure_future(asyncio.to_thread(store, part, index)))
                if len(in_flight) >= STORE_WINDOW:
                    refs.append(await in_flight.popleft())
            while in_flight:
                refs.append(await in_flight.popleft())
        finally:
            for pending in in_flight:
                pending.cancel()
        return refs

    async def submit(self, order_id: str) -> OrderSummary:
        handle = self.handle(order_id)
        return await self._update(order_id, lambda: handle.execute_update(OrderWorkflow.submit))

    async def cancel(self, order_id: str, reason: str) -> OrderSummary:
        handle = self.handle(order_id)
        return await self._update(order_id, lambda: handle.execute_update(OrderWorkflow.cancel, reason))

    async def retry_fulfillment(self, order_id: str, reason: str) -> OrderSummary:
        """Fulfill a failed order again, once its cause is fixed; returns when the retry is
        recorded (status "submitted"). Refused (``OrderClosed``) unless the order failed."""
        handle = self.handle(order_id)
        return await self._update(order_id, lambda: handle.execute_update(OrderWorkflow.retry_fulfillment, reason))

    # ---- reads -------------------------------------------------------------------------

    async def summary(self, order_id: str) -> OrderSummary:
        handle = self.handle(order_id)
        return await self._call(order_id, lambda: handle.query(OrderWorkflow.summary))

    async def stats(self, order_id: str) -> OrderStats:
        handle = self.handle(order_id)
        return await self._call(order_id, lambda: handle.query(OrderWorkflow.stats))

    async def wait_closed(self, order_id: str, *, poll_seconds: float = 0.5) -> OrderSummary:
        """Wait until the order is settled: its workflow completed (following
        continue-as-new), or its fulfillment failed. A failed order's workflow stays open,
        waiting for an operator's ``retry_fulfillment`` or ``cancel``: that raises
        :class:`OrderRefusedError` of type ``FulfillmentFailed`` with the reason, as a
        workflow that ended failed does, instead of waiting for it to end."""
        result = asyncio.ensure_future(self.handle(order_id).result())
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

    async def run_histories(self, order_id: str) -> list[RunHistory]:
        """Every run of the order's workflow with its history size, read from Temporal."""
        latest = await self._call(order_id, lambda: self.handle(order_id).describe())
        run_id: str | None = latest.raw_description.workflow_execution_info.first_run_id or latest.run_id
        runs: list[RunHistory] = []
        while run_id:
            handle = self.handle(order_id, run_id=run_id)
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
        return OrderRefusedError(f"order {order_id!r} is closed: {err.message}", type="OrderClosed", order_id=order_id)
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


__all__ = ["OrderClient", "RunHistory", "OrderRefusedError"]


def _chunks(items: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    if size < 1:
        raise ValueError(f"the batch size must be at least 1, got {size}")
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
