"""The workflow side of fulfillment: which activity runs, and the change that records
its outcome. Workflow code (deterministic, sandbox-safe); the reading itself is the
activity's (:mod:`bulkorder.workflows.fulfillment`).

v1 (runs started before the ``recorded-fulfillment-outcome`` patch) fails the workflow on
the first unreadable batch. v2 turns every outcome into an :class:`OrderChange` recorded
before the workflow ends: the report with the batches it could not read, or the failure.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from bulkorder.domain.refs import ReportRef
    from bulkorder.domain.summary import OrderChange
    from bulkorder.workflows.messages import FULFILL_ACTIVITY, FULFILL_CHECKED_ACTIVITY, FulfillmentResult, FulfillRequest
    from bulkorder.workflows.order_rules import FULFILL_RETRY, cause_message

_START_TO_CLOSE = timedelta(hours=6)
_HEARTBEAT = timedelta(minutes=2)


async def fulfill_v1(request: FulfillRequest) -> ReportRef:
    """v1: the report; a batch that cannot be read fails the activity, then the workflow."""
    return await workflow.execute_activity(
        FULFILL_ACTIVITY,
        request,
        result_type=ReportRef,
        start_to_close_timeout=_START_TO_CLOSE,
        heartbeat_timeout=_HEARTBEAT,
        retry_policy=FULFILL_RETRY,
    )


async def fulfill_v2(request: FulfillRequest) -> tuple[OrderChange, str | None]:
    """v2: the change that records fulfillment's outcome, and the failure's reason if it
    failed (then the change records ``FulfillmentFailed``, with any batches it found
    unreadable). Cancellation of the workflow is not an outcome: it propagates."""
    failure: str | None = None
    result: FulfillmentResult | None = None
    try:
        result = await workflow.execute_activity(
            FULFILL_CHECKED_ACTIVITY,
            request,
            result_type=FulfillmentResult,
            start_to_close_timeout=_START_TO_CLOSE,
            heartbeat_timeout=_HEARTBEAT,
            retry_policy=FULFILL_RETRY,
        )
    except ActivityError as err:
        if isinstance(err.cause, CancelledError):
            raise
        failure = f"fulfillment failed: {cause_message(err)}"
    change = OrderChange(order_id=request.order_id)
    if result is not None:
        change.rejections = result.rejections
        change.report = result.report
        if result.report is None and result.rejections:
            failure = f"fulfillment failed: none of the order's {len(result.rejections)} batches could be read"
    if failure is not None:
        change.report = None
        change.fulfillment_failure = failure
    return change, failure
