"""``OrderClient``: how services and importers talk to order workflows.

Every call checks its input locally first (the same rules the workflow's validators
apply), so bad input is refused before anything reaches Temporal; what only the workflow
can know (a duplicate order, a closed order) comes back as a typed error.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Awaitable, Callable, Iterable, Mapping, Sequence, TypeVar

from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistoryEventFilterType,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from bulkorder.domain.errors import OrderClosedError, OrderNotFoundError
from bulkorder.domain.identity import OrderIdentity, OrderName, check_idempotency_key, order_name
from bulkorder.domain.refs import BatchRef, check_batch_refs
from bulkorder.domain.summary import OrderStatus, OrderSummary
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.encryption.payloads import make_new_order_key
from bulkorder.storage.leases import WriteLeases
from bulkorder.workflows.errors import OrderRefusedError, refusal_from
from bulkorder.workflows.item_batches import STORE_WINDOW, store_item_batches  # noqa: F401 - STORE_WINDOW is API
from bulkorder.workflows.messages import MAX_REFS_PER_CALL, AddBatchesResult, CreateRequest, OrderInput, OrderLimits, OrderStats
from bulkorder.workflows.order_identity import NameResolver, identity_from_env
from bulkorder.workflows.order_rules import FULFILLMENT_FAILED, ORDER_CLOSED, ORDER_EXISTS
from bulkorder.workflows.order_workflow import OrderWorkflow
from bulkorder.workflows.workflow_task import read_workflow_task
from bulkorder.workflows.pending import (
    WORKFLOW_COMPLETED,
    WORKFLOW_RUNNING,
    OrderProgress,
    PendingStep,
    failing_step,
    read_pending_steps,
)

T = TypeVar("T")


#: The workflow's update that runs fulfillment again for an order whose fulfillment failed
#: (status ``failed``, waiting for a retry or a cancel). Its argument is the reason, which
#: is recorded with the retry; it returns the order's :class:`OrderSummary`.
RETRY_FULFILLMENT = "retry_fulfillment"
#: Longest reason a cancel or a retry may carry (it is recorded in the event store).
MAX_REASON_CHARS = 1_000
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


class OrderClient:
    def __init__(
        self,
        client: Client,
        *,
        task_queue: str,
        batches: BatchStore | None = None,
        limits: OrderLimits | None = None,
        max_concurrent_updates: int = 8,
        identity: OrderIdentity | None = None,
    ) -> None:
        """``identity`` names orders in Temporal (``Settings.order_identity()``); without it,
        ``BULKORDER_IDENTITY_SECRET`` from the environment."""
        self.client = client
        self.identity = identity or identity_from_env()
        self._names = NameResolver(client, self.identity)
        self.task_queue = task_queue
        self.batches = batches
        self.limits = limits or OrderLimits()
        # Temporal admits at most 10 in-flight updates per workflow and refuses the rest;
        # queueing here is cheaper than being refused and retrying with backoff.
        self._update_slots = asyncio.Semaphore(max_concurrent_updates)

    def handle(self, order: OrderName | str, run_id: str | None = None) -> WorkflowHandle[OrderWorkflow, OrderSummary]:
        """The handle of the order's workflow by its v2 ID (a keyed hash of the name). The
        client's calls use :meth:`resolve`, which also finds orders from before identities."""
        workflow_id = self._names.known(order_name(order)) or self.identity.workflow_id(order)
        return self.client.get_workflow_handle_for(OrderWorkflow.run, workflow_id, run_id=run_id)

    async def resolve(self, order: OrderName | str) -> str:
        """The workflow ID of the order named ``order``: its v2 ID, or, for an order from
        before identities, ``order-<reference>`` when that workflow's customer is the name's."""
        return await self._names.workflow_id(order_name(order))

    async def name_of(self, workflow_id: str) -> str | None:
        """The name of the order run by workflow ``workflow_id`` (from its input); None if
        it is no order's workflow. For tools that list workflows (``bulkorder stuck``)."""
        return await self._names.name_of(workflow_id)

    async def _handle(self, order: OrderName | str, run_id: str | None = None) -> WorkflowHandle[OrderWorkflow, OrderSummary]:
        workflow_id = await self.resolve(order)
        return self.client.get_workflow_handle_for(OrderWorkflow.run, workflow_id, run_id=run_id)

    # ---- commands ----------------------------------------------------------------------

    async def create(
        self,
        customer: OrderName | str,
        reference: str | None = None,
        refs: Sequence[BatchRef] = (),
        *,
        idempotency_key: str | None = None,
    ) -> OrderSummary:
        """Open the order ``customer/reference`` (or pass an :class:`OrderName`, or its
        text, alone) with Update-With-Start. Returns once the workflow runs and the order
        is in the event store; raises :class:`OrderRefusedError` otherwise.

        Safe to retry: the same request (same first batches, or the same
        ``idempotency_key``) returns the order's summary, while it is open, after it
        closed and after its history was deleted; another request for the name is
        refused as ``OrderConflict``, naming what differs. Only the first
        ``MAX_REFS_PER_CALL`` refs are part of the request; the rest are added after."""
        name = order_name(customer) if reference is None else OrderName(str(customer), reference)
        key = check_idempotency_key(idempotency_key)
        refs = check_batch_refs(refs)
        first, rest = refs[:MAX_REFS_PER_CALL], refs[MAX_REFS_PER_CALL:]
        label = str(name)
        workflow_id = self.identity.workflow_id(name)
        # The new order's data key, made before its payloads are sealed: one S3 round trip.
        await make_new_order_key(self.client.data_converter.payload_codec, workflow_id)
        start = WithStartWorkflowOperation(
            OrderWorkflow.run,
            OrderInput(order_id=label, customer_id=name.customer, limits=self.limits),
            id=workflow_id,
            task_queue=self.task_queue,
            # An open order gets the update; its validator tells a retry from a conflict.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # A closed (or deleted) order's ID starts a new run, whose creation finds the
            # order in the event store: the same request returns it, another is refused.
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
        try:
            summary = await self.client.execute_update_with_start_workflow(
                OrderWorkflow.create, CreateRequest(refs=first, idempotency_key=key), start_workflow_operation=start
            )
        except WorkflowUpdateFailedError as err:
            raise refusal_from(err, label) from None
        except WorkflowAlreadyStartedError:
            raise OrderRefusedError(f"order {label!r} already exists and is closed", type=ORDER_EXISTS, order_id=label) from None
        if rest and summary.status == OrderStatus.OPEN:
            result = await self.add_batches(name, rest)
            assert result is not None
            summary = result.summary
        return summary

    async def add_batches(self, order_id: OrderName | str, refs: Sequence[BatchRef], *, wait: bool = True) -> AddBatchesResult | None:
        """Add refs: with ``wait`` as updates (validated, acknowledged, returns counters),
        otherwise as signals (fire and forget). Splits into calls of at most
        ``MAX_REFS_PER_CALL`` refs."""
        refs = check_batch_refs(refs)
        order_id = str(order_name(order_id))
        handle = await self._handle(order_id)
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
        """Validate items, store them as batches, and add the refs to the order.

        Each batch's blob is written under a write lease, released once the workflow
        holds its ref (the update returned; for signals, a query answered after them), so
        garbage collection never takes a batch in flight, whatever its grace period."""
        if self.batches is None:
            raise RuntimeError("OrderClient needs a BatchStore to store items")
        leases = WriteLeases(self.batches.blobs)
        refs = await store_item_batches(
            self.batches, items, batch_size=batch_size, batch_id_prefix=batch_id_prefix, leases=leases,
            order_id=order_id,
        )
        result = await self.add_batches(order_id, refs, wait=wait)
        if not wait:
            await self.summary(order_id)  # answered after the signals: the workflow holds the refs
        await asyncio.to_thread(leases.release_all)
        return result

    async def store_items(
        self,
        items: Iterable[Mapping[str, Any]],
        *,
        batch_size: int = 5_000,
        batch_id_prefix: str | None = None,
        order_id: str | None = None,
        leases: WriteLeases | None = None,
    ) -> list[BatchRef]:
        """Validate and store items as batches of ``order_id`` (sealed with its data key when
        the batch store encrypts); return their refs (nothing sent to Temporal).

        Batches are validated, encoded and written in threads, at most
        ``STORE_WINDOW`` at a time: a generator of millions of items is read as it goes,
        never held whole. The first invalid batch stops it (its error names the batch and
        the item); batches already written stay unreferenced, harmless blobs.

        With ``leases``, each blob is written under a write lease (``leases.held``), which
        the caller releases (``leases.release_all()``) once the workflow holds the refs;
        without, only the garbage collector's grace period protects these blobs until
        their refs are added (``add_items`` holds leases itself).
        """
        if self.batches is None:
            raise RuntimeError("OrderClient needs a BatchStore to store items")
        return await store_item_batches(
            self.batches, items, batch_size=batch_size, batch_id_prefix=batch_id_prefix, leases=leases, order_id=order_id
        )

    async def submit(self, order_id: OrderName | str) -> OrderSummary:
        """Close the order to additions and fulfill it. Repeated (the order is submitted,
        fulfilled or failed already), it returns the current state."""
        order_id = str(order_name(order_id))
        handle = await self._handle(order_id)
        try:
            return await self._update(order_id, lambda: handle.execute_update(OrderWorkflow.submit))
        except OrderClosedError as refused:
            repeated = (OrderStatus.SUBMITTED, OrderStatus.FULFILLED, OrderStatus.FAILED)
            return await self._closed_repeat(order_id, repeated, refused)

    async def cancel(self, order_id: OrderName | str, reason: str) -> OrderSummary:
        """Cancel an open order, or a failed one waiting for a retry (update ``cancel``).
        Repeated (the order is cancelled already), it returns the current state."""
        reason = check_reason(reason)
        order_id = str(order_name(order_id))
        handle = await self._handle(order_id)
        try:
            return await self._update(order_id, lambda: handle.execute_update(OrderWorkflow.cancel, reason))
        except OrderClosedError as refused:
            return await self._closed_repeat(order_id, (OrderStatus.CANCELLED,), refused)

    async def _closed_repeat(self, order_id: str, repeated: tuple[str, ...], refused: OrderClosedError) -> OrderSummary:
        """The state of an order whose workflow refused a command as closed: returned when
        the command is a repeat (the order is in one of ``repeated``), else ``refused``."""
        handle = await self._handle(order_id)
        try:
            summary: OrderSummary = await handle.query(OrderWorkflow.summary, rpc_timeout=READ_TIMEOUT)
        except (RPCError, WorkflowQueryFailedError):
            raise refused from None
        if summary.status in repeated:
            return summary
        raise refused

    async def retry_fulfillment(self, order_id: str, reason: str) -> OrderSummary:
        """Run fulfillment again for an order whose fulfillment failed (status ``failed``),
        once its cause is fixed. The workflow records the retry with ``reason`` and refuses
        (:class:`OrderRefusedError`) an order in any other status."""
        order_id = str(order_name(order_id))
        reason = check_reason(reason)
        handle = await self._handle(order_id)
        return await self._update(
            order_id, lambda: handle.execute_update(RETRY_FULFILLMENT, reason, result_type=OrderSummary)
        )

    # ---- reads -------------------------------------------------------------------------

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


__all__ = ["OrderClient", "OrderProgress", "PendingStep", "RunHistory", "OrderRefusedError", "check_reason"]


def check_reason(reason: object) -> str:
    """A cancel or retry reason: text of at most ``MAX_REASON_CHARS`` characters."""
    if not isinstance(reason, str):
        raise TypeError(f"a reason must be text, got {type(reason).__name__}")
    if len(reason) > MAX_REASON_CHARS:
        raise ValueError(f"a reason may hold at most {MAX_REASON_CHARS:,} characters, got {len(reason):,}")
    return reason
