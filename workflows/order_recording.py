"""The order's writes to the event store inside its workflow: one activity, in chunks.

A base class of :class:`~bulkorder.workflows.order_workflow.OrderWorkflow` (over
:class:`~bulkorder.workflows.order_book.OrderBook`, whose book it records), kept apart so
the workflow module reads as the order's lifecycle and its handlers. It holds the one
call that writes (the record activity, idempotent: retries and replays never record twice),
what each call records next (a bounded chunk of the pending refs, the rejections, then
the submit or cancel once nothing is left), how a chunk the store refuses for good is
recorded as rejected instead, and what an outcome changes in the workflow's state.
Workflow code: deterministic, sandbox-safe, no I/O of its own.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from bulkorder.domain.summary import REJECTED_UNRECORDABLE, OrderChange, OrderStatus, RecordOutcome, Rejection
    from bulkorder.workflows.messages import RECORD_ACTIVITY
    from bulkorder.workflows.order_book import OrderBook
    from bulkorder.workflows.order_rules import RECORD_RETRY, RECORD_TIMEOUT, cause_message

#: Patch: batches the event store refuses for good are recorded as rejected, not fatal.
PATCH_UNRECORDABLE_BATCHES = "unrecordable-batches-rejected"


class OrderRecording(OrderBook):
    """Recording the order's book in the event store, a bounded chunk per call."""

    async def _record_next(self) -> None:
        """Record the oldest pending refs (a bounded chunk), rejections, then submit/cancel."""
        chunk = self._state.pending[: self._limits.max_refs_per_record]
        rejections = list(self._state.rejections)
        drained = len(chunk) == len(self._state.pending)
        change = OrderChange(order_id=self._state.order_id, batches=chunk, rejections=rejections)
        if drained and self._recorded().status == OrderStatus.OPEN:
            change.cancel_reason = self._state.cancel_reason
            change.submit = self._state.submit_requested and self._state.cancel_reason is None
        try:
            outcome = await self._record(change)
        except ActivityError as err:
            # Not retryable (transient failures are retried inside the activity): these
            # batches will never record. Record them rejected, with the reason, and go on.
            if not chunk or not workflow.patched(PATCH_UNRECORDABLE_BATCHES):
                raise
            reason = f"could not be recorded: {cause_message(err)}"
            unrecordable = [
                Rejection(batch_id=ref.batch_id, reason=reason, key=ref.key, code=REJECTED_UNRECORDABLE) for ref in chunk
            ]
            change.batches, change.rejections = [], rejections + unrecordable
            outcome = await self._record(change)
        # Handlers only append while the activity runs, so the head is what we recorded.
        for ref in chunk:
            self._pending_claims.add(ref, -1)
        del self._state.pending[: len(chunk)]
        # A ref rejected as unproven does not hold its batch ID: the real batch may follow.
        for batch_id in outcome.unproven_batch_ids:
            self._seen.discard(batch_id)
        del self._state.rejections[: len(rejections)]
        self._state.duplicates_ignored += len(outcome.duplicate_batch_ids)

    async def _record(self, change: OrderChange) -> RecordOutcome:
        """Record ``change``; the store's summary becomes what the book counts as recorded."""
        outcome: RecordOutcome = await workflow.execute_activity(
            RECORD_ACTIVITY,
            change,
            result_type=RecordOutcome,
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=RECORD_RETRY,
        )
        self._state.recorded = outcome.summary
        return outcome
