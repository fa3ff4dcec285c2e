"""``OrderClient``: how services and importers talk to order workflows.

Every call checks its input locally first (the same rules the workflow's validators
apply), so bad input is refused before anything reaches Temporal; what only the workflow
can know (a duplicate order, a closed order) comes back as a typed error. The reads
(summary, progress, waiting until an order settles) and the call discipline are its base
class's, :class:`~bulkorder.workflows.order_reads.OrderWorkflowCalls`.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterable, Mapping, Sequence

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from bulkorder.domain.errors import OrderClosedError
from bulkorder.domain.identity import OrderIdentity, OrderName, check_idempotency_key, order_name
from bulkorder.domain.refs import BatchRef, check_batch_refs
from bulkorder.domain.summary import OrderStatus, OrderSummary
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.encryption.payloads import make_new_order_key
from bulkorder.storage.leases import WriteLeases
from bulkorder.workflows.errors import OrderRefusedError, refusal_from
from bulkorder.workflows.item_batches import STORE_WINDOW, store_item_batches  # noqa: F401 - STORE_WINDOW is API
from bulkorder.workflows.messages import MAX_REFS_PER_CALL, AddBatchesResult, CreateRequest, OrderInput, OrderLimits
from bulkorder.workflows.order_identity import NameResolver, identity_from_env
from bulkorder.workflows.order_reads import READ_TIMEOUT, OrderWorkflowCalls, RunHistory
from bulkorder.workflows.order_rules import ORDER_EXISTS
from bulkorder.workflows.order_workflow import OrderWorkflow
from bulkorder.workflows.pending import OrderProgress, PendingStep


#: The workflow's update that runs fulfillment again for an order whose fulfillment failed
#: (status ``failed``, waiting for a retry or a cancel). Its argument is the reason, which
#: is recorded with the retry; it returns the order's :class:`OrderSummary`.
RETRY_FULFILLMENT = "retry_fulfillment"
#: Longest reason a cancel or a retry may carry (it is recorded in the event store).
MAX_REASON_CHARS = 1_000


class OrderClient(OrderWorkflowCalls):
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

    async def stored_order_id(self, order: OrderName | str) -> str:
        """The ID the order is stored under (its name; the bare order ID of a 0.x order):
        what its batches are sealed for. See ``NameResolver.stored_order_id``."""
        if isinstance(order, str) and "/" not in order:
            return order  # a bare 0.x order ID already
        return await self._names.stored_order_id(order_name(order))

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
            order_id=await self.stored_order_id(order_id),
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
        stored = None if order_id is None else await self.stored_order_id(order_id)
        return await store_item_batches(
            self.batches, items, batch_size=batch_size, batch_id_prefix=batch_id_prefix, leases=leases, order_id=stored
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

__all__ = ["OrderClient", "OrderProgress", "PendingStep", "RunHistory", "OrderRefusedError", "check_reason"]


def check_reason(reason: object) -> str:
    """A cancel or retry reason: text of at most ``MAX_REASON_CHARS`` characters."""
    if not isinstance(reason, str):
        raise TypeError(f"a reason must be text, got {type(reason).__name__}")
    if len(reason) > MAX_REASON_CHARS:
        raise ValueError(f"a reason may hold at most {MAX_REASON_CHARS:,} characters, got {len(reason):,}")
    return reason
