"""The order's book inside its workflow: what handlers accept, refuse and count.

The bookkeeping half of :class:`~bulkorder.workflows.order_workflow.OrderWorkflow` (its base class,
under :class:`~bulkorder.workflows.order_recording.OrderRecording`, which records this book), kept apart so the workflow module reads as the order's lifecycle and its handlers: the
conditions its main loop waits on, what fulfillment is asked to check, accepting and
refusing refs, and the order's summary (counted by :mod:`bulkorder.domain.order_counters`).
Workflow code: deterministic, sandbox-safe, no I/O. It works on the workflow's state
(``self._state``: pending refs, rejections, status, the counters last recorded) and the
batch IDs seen this run (``self._seen``).
"""

from __future__ import annotations

from dataclasses import replace

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from bulkorder.domain.order_counters import add_batch, add_rejections
    from bulkorder.domain.refs import BatchRef, InvalidRefError, add_totals, check_batch_ref
    from bulkorder.domain.summary import (
        REJECTED_INVALID_REF,
        REJECTED_ORDER_CLOSED,
        REJECTED_ORDER_LIMIT,
        OrderStatus,
        OrderSummary,
        Rejection,
    )
    from bulkorder.workflows.messages import FulfillRequest, OrderLimits, OrderState
    from bulkorder.workflows.order_rules import INVALID_ORDER, ORDER_CLOSED, ORDER_IS_DB_FIRST, ClaimedCounters

#: Patch: a signalled batch that would pass the order bounds is rejected (``order_limit``).
PATCH_ORDER_LIMITS = "order-limits"


class OrderBook:
    """Accepting, refusing and counting refs; the order's summary as the workflow sees it."""

    _state: OrderState
    _limits: OrderLimits
    _seen: set[str]
    _pending_claims: ClaimedCounters
    _input_error: str | None
    _signals: int
    _updates: int
    _retry_reason: str | None

    # ---- what the main loop waits on ---------------------------------------------------

    def _has_unrecorded(self) -> bool:
        recorded_status = self._recorded().status
        return bool(
            self._state.pending
            or self._state.rejections
            or (self._state.submit_requested and recorded_status == OrderStatus.OPEN)
            or (self._state.cancel_reason is not None and recorded_status == OrderStatus.OPEN)
        )

    def _continue_as_new_due(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._limits.max_history_events
            or info.get_current_history_size() >= self._limits.max_history_bytes
            or self._signals >= self._limits.max_signals
            or self._updates >= self._limits.max_updates
        )

    def _fulfill_request(self) -> FulfillRequest:
        recorded = self._recorded()
        return FulfillRequest(
            order_id=self._state.order_id,
            expected_items=recorded.item_count,
            expected_batches=recorded.batch_count,
            up_to_version=recorded.version,
            concurrency=self._limits.fulfillment_concurrency,
        )

    async def _wait_for_operator(self) -> None:
        """Until an operator retries or cancels, or the hold runs out."""
        try:
            await workflow.wait_condition(
                lambda: self._retry_reason is not None or self._state.cancel_reason is not None,
                timeout=self._limits.failed_hold_seconds,
            )
        except TimeoutError:
            pass

    # ---- accepting and refusing refs --------------------------------------------------

    def _recorded(self) -> OrderSummary:
        if self._state.recorded is None:
            return OrderSummary(order_id=self._state.order_id, customer_id=self._state.customer_id)
        return self._state.recorded

    def _accept(self, ref: BatchRef) -> bool:
        if ref.batch_id in self._seen:
            self._state.duplicates_ignored += 1
            return False
        self._seen.add(ref.batch_id)
        self._state.pending.append(ref)
        self._pending_claims.add(ref)
        return True

    def _refusal(self, ref: BatchRef) -> tuple[str, str] | None:
        """Why a signalled ref is refused, and its rejection code; None to accept it."""
        if self._state.status != OrderStatus.OPEN:
            return f"order is {self._state.status}", REJECTED_ORDER_CLOSED
        try:
            check_batch_ref(ref)
        except (InvalidRefError, TypeError, AttributeError) as exc:
            return f"invalid batch ref: {exc}", REJECTED_INVALID_REF
        over = self._claimed().over_limit([ref])
        if over is not None and workflow.patched(PATCH_ORDER_LIMITS):
            return f"order limit: {over}", REJECTED_ORDER_LIMIT
        return None

    def _claimed(self) -> ClaimedCounters:
        """What the recorded counters and the pending refs claim together."""
        recorded = self._recorded()
        claimed = ClaimedCounters(recorded.quantity + self._pending_claims.quantity, recorded.totals)
        add_totals(claimed.totals, self._pending_claims.totals)
        return claimed

    def _reject(self, ref: BatchRef, reason: str, code: str = "") -> None:
        batch_id = getattr(ref, "batch_id", None)
        if not isinstance(batch_id, str) or not batch_id or len(batch_id) > 200:
            self._state.invalid_refs += 1
            batch_id = f"invalid-ref-{self._state.runs}-{self._state.invalid_refs}"
        self._seen.add(batch_id)
        key = ref.key if isinstance(getattr(ref, "key", None), str) else ""
        self._state.rejections.append(Rejection(batch_id=batch_id, reason=reason, key=key[:512], code=code))

    def _cancel(self, reason: str) -> None:
        self._state.cancel_reason = reason or "cancelled"
        self._state.status = OrderStatus.CANCELLED

    def _check_open(self, action: str) -> None:
        if self._input_error:
            raise ApplicationError(self._input_error, type=INVALID_ORDER)
        if self._state.via_outbox:
            # One writer per order: a DB-first order changes in the event store, and its
            # relay forwards the changes here; an update could race the store's own state.
            raise ApplicationError(
                f"order {self._state.order_id!r} is recorded DB-first: {action} through the outbox "
                "(bulkorder.workflows.outbox.OrderOutbox), not the workflow",
                type=ORDER_IS_DB_FIRST,
            )
        if self._state.status != OrderStatus.OPEN:
            raise ApplicationError(
                f"order {self._state.order_id!r} is {self._state.status}: cannot {action}", type=ORDER_CLOSED
            )

    def _summary(self) -> OrderSummary:
        """Recorded counters plus what is accepted but not yet recorded."""
        recorded = self._recorded()
        summary = replace(recorded, totals=dict(recorded.totals), status=self._state.status)
        for ref in self._state.pending:
            add_batch(summary, ref)
        summary.pending_batches = len(self._state.pending)
        add_rejections(summary, len(self._state.rejections))
        return summary
