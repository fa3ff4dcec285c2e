"""``OrderWorkflow``: the source of truth for an order while it is open.

One workflow per order (workflow ID = ``order-v2-<keyed hash of customer/reference>``,
``bulkorder.domain.identity``; ``order-<order ID>`` for orders from before identities). It holds counters and the
refs not yet recorded, never items. Handlers only accept or refuse work and return at
once; the main loop records accepted work in the event store through an idempotent
activity (in chunks: :mod:`bulkorder.workflows.order_recording`), continues-as-new before the run's history grows large, and after ``submit``
runs fulfillment and completes.

Every outcome ends in the event store before the workflow ends: the fulfillment report
with the batches it could not read (``BatchRejected``), or the failure
(``FulfillmentFailed``). Changes to the commands the workflow issues are guarded by
``workflow.patched`` so that runs started by older code replay unchanged.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from bulkorder.domain.refs import BatchRef
    from bulkorder.domain.summary import OrderChange, OrderStatus, OrderSummary
    from bulkorder.workflows.fulfillment_steps import fulfill_v1, fulfill_v2
    from bulkorder.workflows.messages import (
        PENDING_KEYS,
        RETRY_FULFILLMENT,
        SUBMIT,
        AddBatchesResult,
        CreateRequest,
        OrderInput,
        OrderState,
        OrderStats,
    )
    from bulkorder.workflows.order_creation import PATCH_LOCAL_CREATION, PATCH_ORDER_IDENTITY, OrderCreation, input_error
    from bulkorder.workflows.order_recording import PATCH_UNRECORDABLE_BATCHES, OrderRecording  # noqa: F401
    from bulkorder.workflows.order_rules import (
        CREATE_REFUSED,
        FULFILLMENT_FAILED,
        INVALID_ORDER,
        INVALID_REF,
        ORDER_CLOSED,
        ORDER_CONFLICT,
        ORDER_EXISTS,
        SUBMITTED_ALREADY,
        ClaimedCounters,
        cause_message,
        cause_type,
        check_limits,
        check_refs,
    )

__all__ = ["OrderWorkflow"]

#: Patch: fulfillment v2 (unreadable batches recorded as rejections; a failure recorded
#: as ``FulfillmentFailed`` before the workflow fails, where v1 failed leaving the order
#: "submitted" in the event store).
PATCH_RECORDED_FULFILLMENT = "recorded-fulfillment-outcome"
#: Patch: a failed fulfillment waits for ``retry_fulfillment`` or ``cancel`` (an
#: operator's decision) instead of ending the workflow at once.
PATCH_FULFILLMENT_RECOVERY = "fulfillment-recovery"


@workflow.defn
class OrderWorkflow(OrderRecording, OrderCreation):
    @workflow.init
    def __init__(self, input: OrderInput) -> None:
        self._limits = input.limits
        self._state = input.state or OrderState(
            order_id=input.order_id, customer_id=input.customer_id, via_outbox=input.via_outbox
        )
        self._input_error = input_error(input.order_id, input.customer_id)
        self._create_accepted = False
        self._create_error: str | None = None
        self._create_error_type = ORDER_EXISTS
        # The create found its order recorded by this same request: the run changes nothing.
        self._existing = False
        # Batch IDs accepted during this run. Duplicates from earlier runs are caught by the
        # event store (the Order aggregate applies a batch ID at most once).
        self._seen: set[str] = {ref.batch_id for ref in self._state.pending}
        self._signals = 0
        self._updates = 0
        # What the pending refs claim, kept as refs come and go (the order bounds).
        self._pending_claims = ClaimedCounters()
        for ref in self._state.pending:
            self._pending_claims.add(ref)
        # A failed fulfillment waiting for an operator, and what the operator decided.
        self._awaiting_recovery = False
        self._retry_reason: str | None = None
        self._recording_closed = False

    # ---- main loop ---------------------------------------------------------------------

    @workflow.run
    async def run(self, input: OrderInput) -> OrderSummary:
        if self._input_error:
            # The history keeps this message in clear: it names no value (the create call's
            # validator told the caller which one is invalid).
            raise ApplicationError("the order's input names no valid order", type=INVALID_ORDER, non_retryable=True)
        if not self._state.created:
            if input.create_via_update and not self._create_accepted:
                # The create update was refused by its validator: record nothing.
                raise ApplicationError(
                    "the order was not created: its create request was refused",
                    type=CREATE_REFUSED,
                    non_retryable=True,
                )
            await self._record_creation()
            if self._existing:
                # A retried create after the order's workflow closed (or its history was
                # deleted): the create update has its summary; nothing else happens here.
                await workflow.wait_condition(workflow.all_handlers_finished)
                return self._summary()

        while self._state.status == OrderStatus.OPEN or self._has_unrecorded():
            # Also wake when the order closes with nothing left to record: a DB-first
            # order's submit or cancel may already be in the store when its signal
            # arrives. (Workflow-first, closing always leaves something to record, so
            # runs of earlier versions take the same path: no patch needed.)
            await workflow.wait_condition(
                lambda: self._has_unrecorded()
                or self._continue_as_new_due()
                or self._state.status != OrderStatus.OPEN
            )
            if self._continue_as_new_due():
                # Checked first: under a steady stream of additions there is always
                # something to record, and the history must still stay bounded. Pending
                # refs travel to the next run, but only a bounded number of them.
                while len(self._state.pending) > self._limits.max_carried_refs:
                    await self._record_next()
                await workflow.wait_condition(workflow.all_handlers_finished)
                self._continue_as_new()
            if self._has_unrecorded():
                await self._record_next()

        # Nothing more is recorded from here on but fulfillment's outcome: refs signalled
        # now are counted and logged, not kept (they would never reach the event store).
        self._recording_closed = True
        if self._state.status == OrderStatus.SUBMITTED:
            if workflow.patched(PATCH_RECORDED_FULFILLMENT):
                await self._fulfill_and_record()
            else:
                report = await fulfill_v1(self._fulfill_request())
                await self._record(OrderChange(order_id=self._state.order_id, report=report))
                self._state.status = OrderStatus.FULFILLED
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._summary()

    def _continue_as_new(self) -> None:
        self._state.runs += 1
        workflow.continue_as_new(
            OrderInput(
                order_id=self._state.order_id,
                customer_id=self._state.customer_id,
                limits=self._limits,
                create_via_update=False,
                state=self._state,
            )
        )

    # ---- what the lifecycle records: creation, fulfillment's outcome -------------------

    async def _record_creation(self) -> None:
        change = OrderChange(order_id=self._state.order_id, customer_id=self._state.customer_id, create=True)
        named = "/" in self._state.order_id and workflow.patched(PATCH_ORDER_IDENTITY)
        if named:
            # A DB-first order is in the store already (the service created it): read it.
            # Otherwise record the create request, so a retry is told from a conflict.
            change = OrderChange(order_id=self._state.order_id) if self._state.via_outbox else self._creation_change()
        try:
            local = workflow.patched(PATCH_LOCAL_CREATION)
            outcome = await (self._record_creation_locally(change) if local else self._record(change))
        except ActivityError as err:
            self._create_error = cause_message(err)
            if cause_type(err) == "OrderCreateConflictError":
                self._create_error_type = ORDER_CONFLICT
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise ApplicationError(self._create_error, type=self._create_error_type, non_retryable=True) from None
        if named and outcome.existing and self._create_accepted:
            self._adopt_existing(outcome)
            self._existing = True
        self._state.created = True

    async def _fulfill_and_record(self) -> None:
        """v2: record fulfillment's outcome (report and unreadable batches, or the
        failure) before the workflow ends. On failure, the order waits for an operator
        (patch ``fulfillment-recovery``): ``retry_fulfillment`` runs it again, ``cancel``
        closes it; after ``failed_hold_seconds``, or in runs from before the patch, the
        workflow fails with the reason."""
        while True:
            change, failure = await fulfill_v2(self._fulfill_request())
            await self._record(change)
            if failure is None:
                self._state.status = OrderStatus.FULFILLED
                return
            self._state.status = OrderStatus.FAILED
            if workflow.patched(PATCH_FULFILLMENT_RECOVERY):
                self._awaiting_recovery = True
                await self._wait_for_operator()
                self._awaiting_recovery = False
                # Decided by what the operator asked, not by whether the hold timed out: a
                # request accepted in the activation where the timer fired still counts.
                if self._state.cancel_reason is not None:
                    await self._record(OrderChange(order_id=self._state.order_id, cancel_reason=self._state.cancel_reason))
                    return
                if self._retry_reason is not None:
                    await self._record(OrderChange(order_id=self._state.order_id, retry_fulfillment=self._retry_reason))
                    self._state.status = OrderStatus.SUBMITTED
                    self._retry_reason = None  # the retry update returns now
                    continue
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise ApplicationError(failure, type=FULFILLMENT_FAILED, non_retryable=True)

    # ---- handlers: accept or refuse, never wait on I/O --------------------------------

    @workflow.update
    async def create(self, request: CreateRequest) -> OrderSummary:
        """Open the order (with Update-With-Start); returns once it is in the event store.
        A retry of the accepted request (let through by the validator) returns the summary."""
        self._updates += 1
        if not self._create_accepted and not self._state.created:
            self._create_accepted = True
            self._remember_request(request)
            for ref in request.refs:
                self._accept(ref)
        await workflow.wait_condition(lambda: self._state.created or self._create_error is not None)
        if self._create_error is not None:
            raise ApplicationError(self._create_error, type=self._create_error_type, non_retryable=True)
        return self._summary()

    @create.validator
    def _validate_create(self, request: CreateRequest) -> None:
        if self._input_error:
            raise ApplicationError(self._input_error, type=INVALID_ORDER)
        if self._create_accepted or self._state.created:
            if self._is_retry(request):  # raises OrderConflict for another request
                return
            raise ApplicationError(
                f"order {self._state.order_id!r} already exists (status {self._state.status})",
                type=ORDER_EXISTS,
            )
        check_refs(request.refs)
        check_limits(self._claimed(), request.refs)

    @workflow.update(name="add_batches")
    def add_batches(self, refs: list[BatchRef]) -> AddBatchesResult:
        """Add batches and get the order's counters back (acknowledged by Temporal)."""
        self._updates += 1
        accepted: list[str] = []
        duplicates: list[str] = []
        for ref in refs:
            (accepted if self._accept(ref) else duplicates).append(ref.batch_id)
        return AddBatchesResult(accepted=accepted, duplicates=duplicates, summary=self._summary())

    @add_batches.validator
    def _validate_add_batches(self, refs: list[BatchRef]) -> None:
        self._check_open("add batches")
        check_refs(refs)
        if not refs:
            raise ApplicationError("add_batches needs at least one batch ref", type=INVALID_REF)
        check_limits(self._claimed(), refs)

    @workflow.signal(name="add_batches")
    def add_batches_signal(self, refs: list[BatchRef]) -> None:
        """Fire-and-forget variant for importers. What cannot be accepted is recorded as a
        ``BatchRejected`` event with its reason: a signal has no caller to tell."""
        self._signals += 1
        if self._recording_closed:
            self._state.late_refs_ignored += len(refs)
            workflow.logger.warning(
                "order %s is %s: %d signalled refs ignored", self._log_id(), self._state.status, len(refs)
            )
            return
        for ref in refs:
            if ref.batch_id in self._seen:
                self._state.duplicates_ignored += 1
                continue
            refusal = self._refusal(ref)
            if refusal is None:
                self._accept(ref)
            else:
                self._reject(ref, *refusal)

    @workflow.signal(name=SUBMIT)
    def submit_signal(self) -> None:
        """Fire-and-forget submit: how the relay forwards a DB-first service's submit."""
        self._signals += 1
        if self._state.status != OrderStatus.OPEN or self._summary().item_count == 0:
            workflow.logger.warning(
                "order %s is %s with %d items: submit signal ignored",
                self._log_id(), self._state.status, self._summary().item_count,
            )
            return
        self._state.submit_requested = True
        self._state.status = OrderStatus.SUBMITTED

    @workflow.update
    def submit(self) -> OrderSummary:
        """Close the order to additions and start fulfillment. Repeated, it returns the
        current state (the validator lets a repeat through)."""
        self._updates += 1
        if self._state.status != OrderStatus.OPEN:
            return self._summary()
        self._state.submit_requested = True
        self._state.status = OrderStatus.SUBMITTED
        return self._summary()

    @submit.validator
    def _validate_submit(self) -> None:
        if not self._input_error and not self._state.via_outbox and self._state.status in SUBMITTED_ALREADY:
            return  # a repeated submit: answered with the current state
        self._check_open("submit")
        if self._summary().item_count == 0:
            raise ApplicationError(f"order {self._state.order_id!r} has no items to submit", type=ORDER_CLOSED)

    @workflow.update(name="cancel")
    def cancel(self, reason: str) -> OrderSummary:
        self._updates += 1
        if self._state.status != OrderStatus.CANCELLED:
            self._cancel(reason)
        return self._summary()

    @cancel.validator
    def _validate_cancel(self, reason: str) -> None:
        if not self._input_error and not self._state.via_outbox and self._state.status == OrderStatus.CANCELLED:
            return  # a repeated cancel: answered with the current state
        if self._awaiting_recovery and self._state.cancel_reason is None and self._retry_reason is None:
            return  # an operator gives up on a failed order
        self._check_open("cancel")

    @workflow.signal(name="cancel")
    def cancel_signal(self, reason: str) -> None:
        self._signals += 1
        if self._state.status == OrderStatus.OPEN or (self._awaiting_recovery and self._retry_reason is None):
            self._cancel(reason)
        else:
            workflow.logger.warning("order %s is %s: cancel signal ignored", self._log_id(), self._state.status)

    @workflow.update(name=RETRY_FULFILLMENT)
    async def retry_fulfillment(self, reason: str) -> OrderSummary:
        """Fulfill a failed order again (its cause fixed); returns once it is recorded
        as submitted again. The new attempt's outcome is recorded like the first's."""
        self._updates += 1
        self._retry_reason = reason or "retried by an operator"
        await workflow.wait_condition(lambda: self._retry_reason is None)
        return self._summary()

    @retry_fulfillment.validator
    def _validate_retry_fulfillment(self, reason: str) -> None:
        if self._input_error:
            raise ApplicationError(self._input_error, type=INVALID_ORDER)
        if not self._awaiting_recovery or self._retry_reason is not None or self._state.cancel_reason is not None:
            raise ApplicationError(
                f"order {self._state.order_id!r} is {self._state.status}: only a failed order waiting for "
                "an operator can be retried",
                type=ORDER_CLOSED,
            )

    @workflow.query
    def summary(self) -> OrderSummary:
        return self._summary()

    @workflow.query(name=PENDING_KEYS)
    def pending_keys(self) -> list[str]:
        """Keys of the refs accepted and not yet recorded (garbage collection's roots)."""
        return [ref.key for ref in self._state.pending]

    @workflow.query
    def stats(self) -> OrderStats:
        info = workflow.info()
        return OrderStats(
            runs=self._state.runs,
            history_events=info.get_current_history_length(),
            history_bytes=info.get_current_history_size(),
            signals_this_run=self._signals,
            updates_this_run=self._updates,
            pending_batches=len(self._state.pending),
            duplicates_ignored=self._state.duplicates_ignored,
            invalid_refs=self._state.invalid_refs,
        )
