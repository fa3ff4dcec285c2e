"""The order's create request inside its workflow: what makes a create a retry.

The part of :class:`~bulkorder.workflows.order_workflow.OrderWorkflow` (a base class, like
:class:`~bulkorder.workflows.order_book.OrderBook`) that knows the order's identity: the name it
carries in its input (a payload; never its workflow ID, which is a keyed hash), the
create request it accepted, and how a later create compares with it. Workflow code:
deterministic, sandbox-safe, no I/O.

- While the run is open, a create with the same request (digest) is a retry: the
  validator lets it through and the handler returns the current summary. Another request
  is refused as ``OrderConflict``, naming what differs.
- When no run is open (the order closed, or its history was deleted), Update-With-Start
  begins a new run; its creation activity finds the order in the event store and says
  whether the request is the same (``RecordOutcome.existing``: the run returns the
  order's summary and ends, changing nothing) or a conflict (the run fails, recording
  nothing). The event store is the guard that holds forever.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from bulkorder.domain.identifiers import InvalidIdentifierError, check_customer_id, check_order_id
    from bulkorder.domain.identity import OrderName, request_difference, request_digest
    from bulkorder.domain.summary import OrderChange, OrderStatus, RecordOutcome
    from bulkorder.workflows.messages import RECORD_ACTIVITY, CreateRequest, OrderState
    from bulkorder.workflows.order_rules import ORDER_CONFLICT, RECORD_RETRY, RECORD_TIMEOUT, ClaimedCounters

#: Patch: creation records the create request (digest, initial batch IDs, key); a create
#: that finds its order already recorded with the same request returns its summary and
#: ends the run at once (a retry after the order closed or its history was deleted).
PATCH_ORDER_IDENTITY = "order-identity-v2"
#: Patch: the creation is recorded by a local activity (the same record activity, run by
#: the worker that runs the workflow task): the create update completes in that one
#: workflow task, instead of waiting for an activity task and a second workflow task.
#: Under load that is most of a create's latency (docs/benchmarks.md, the fleet).
PATCH_LOCAL_CREATION = "creation-local-activity"


def input_error(order_id: str, customer_id: str) -> str | None:
    """Why a workflow's input names no valid order (None: it does). A name for orders
    made since identities; a bare order ID, with 0.x's rules, for those from before."""
    try:
        if "/" in order_id:
            name = OrderName.parse(order_id)
            if name.customer != customer_id:
                return "the input's customer ID is not the name's customer"
        else:
            check_order_id(order_id)
            check_customer_id(customer_id)
    except InvalidIdentifierError as exc:
        return str(exc)
    return None


class OrderCreation:
    """The create request this order accepted, and how another one compares with it."""

    _state: OrderState
    _seen: set[str]
    _pending_claims: ClaimedCounters

    def _request_of(self, request: CreateRequest) -> tuple[str, list[str], str]:
        """Digest, initial batch IDs and key of ``request`` for this order ("" digest for a
        0.x order, whose name is not a name)."""
        batch_ids = [ref.batch_id for ref in request.refs]
        key = request.idempotency_key or ""
        if "/" not in self._state.order_id:
            return "", batch_ids, key
        name = OrderName.parse(self._state.order_id)
        return request_digest(name, [(ref.batch_id, ref.sha256) for ref in request.refs], key), batch_ids, key

    def _is_retry(self, request: CreateRequest) -> bool:
        """Whether ``request`` repeats the create this run accepted. Raises ``OrderConflict``
        (naming the difference) for another request; False where the run knows no request
        (runs from before the patch: the caller refuses as before)."""
        if not self._state.request_digest:
            return False
        digest, batch_ids, key = self._request_of(request)
        if digest == self._state.request_digest:
            return True
        difference = request_difference(self._state.initial_batch_ids, self._state.idempotency_key, batch_ids, key)
        raise ApplicationError(f"this order already exists with another create request: {difference}", type=ORDER_CONFLICT)

    async def _record_creation_locally(self, change: OrderChange) -> RecordOutcome:
        """Record the creation ``change`` by a local activity (patch ``creation-local-activity``):
        same activity, timeout and retries as every other record, no activity task.

        A local activity's failure reaches the workflow as the activity's own error, not
        wrapped in an ``ActivityError`` as an activity task's is: it is wrapped here, so a
        refused creation (a conflict) fails the same way whichever ran it."""
        try:
            outcome: RecordOutcome = await workflow.execute_local_activity(
                RECORD_ACTIVITY,
                change,
                result_type=RecordOutcome,
                start_to_close_timeout=RECORD_TIMEOUT,
                retry_policy=RECORD_RETRY,
            )
        except ApplicationError as failure:
            raise ActivityError(
                "the creation's record (local activity) failed",
                scheduled_event_id=0,
                started_event_id=0,
                identity="",
                activity_type=RECORD_ACTIVITY,
                activity_id="",
                retry_state=None,
            ) from failure
        self._state.recorded = outcome.summary
        return outcome

    def _remember_request(self, request: CreateRequest) -> None:
        self._state.request_digest, self._state.initial_batch_ids, self._state.idempotency_key = self._request_of(request)

    def _creation_change(self) -> OrderChange:
        return OrderChange(
            order_id=self._state.order_id,
            customer_id=self._state.customer_id,
            create=True,
            request_digest=self._state.request_digest,
            initial_batch_ids=list(self._state.initial_batch_ids),
            idempotency_key=self._state.idempotency_key,
        )

    def _adopt_existing(self, outcome: RecordOutcome) -> None:
        """The order was recorded before, by this same request: take its state, drop the
        request's refs (already recorded, or vouched for by the key) and change nothing."""
        self._state.pending.clear()
        self._seen.clear()
        self._pending_claims = ClaimedCounters()
        self._state.status = outcome.summary.status
        self._state.submit_requested = outcome.summary.status != OrderStatus.OPEN

    def _log_id(self) -> str:
        """How log lines name this order: its workflow ID (a keyed hash), never its name."""
        return workflow.info().workflow_id
