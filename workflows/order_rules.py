"""What the order workflow refuses, and how it retries its activities.

Kept apart from :mod:`bulkorder.workflows.order_workflow` and sandbox-safe like it: the error types callers match on, the activities' retry policies
and timeouts, the check of refs every handler applies, and the repeats answered, not refused.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from bulkorder.domain.refs import BatchRef, InvalidRefError, add_totals, check_batch_ref, totals_over_limit
from bulkorder.domain.summary import OrderStatus
from bulkorder.workflows.messages import MAX_REFS_PER_CALL

# Error types a caller can match on (ApplicationError.type).
ORDER_EXISTS = "OrderAlreadyExists"
#: A create for an existing order with another request (``OrderCreateConflictError``).
ORDER_CONFLICT = "OrderConflict"
INVALID_ORDER = "InvalidOrder"
INVALID_REF = "InvalidBatchRef"
ORDER_CLOSED = "OrderClosed"
CREATE_REFUSED = "CreateRefused"
FULFILLMENT_FAILED = "FulfillmentFailed"
ORDER_IS_DB_FIRST = "OrderIsDbFirst"
#: A batch would take the order's quantity or a total past the bounds in bulkorder.domain.limits.
ORDER_LIMIT = "OrderLimitExceeded"

#: A submit repeated in these statuses is answered with the current state, not refused.
SUBMITTED_ALREADY = frozenset({OrderStatus.SUBMITTED, OrderStatus.FULFILLED, OrderStatus.FAILED})

# What is not worth retrying is decided in one place, by the activities themselves
# (bulkorder.workflows.activity_errors: a deterministic failure arrives as a non-retryable
# ApplicationError), so these policies say only how to back off. A policy is part of the
# ScheduleActivityTask command, but replay compares only an activity's ID and type (sdk-core's
# activity state machine), so runs scheduled with the older lists replay unchanged.
RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=10),
)
# A record is one small transaction; a short timeout is how a worker killed mid-call is
# noticed (SIGKILL sends nothing). An attempt that outlives it is retried, harmlessly:
# recording is idempotent. (Timeouts are not part of replay's determinism check.)
RECORD_TIMEOUT = timedelta(seconds=20)
FULFILL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
)


def check_refs(refs: list[BatchRef]) -> None:
    if len(refs) > MAX_REFS_PER_CALL:
        raise ApplicationError(
            f"{len(refs)} batch refs in one call; at most {MAX_REFS_PER_CALL}", type=INVALID_REF
        )
    for index, ref in enumerate(refs):
        try:
            check_batch_ref(ref)
        except InvalidRefError as exc:
            raise ApplicationError(f"batch ref #{index}: {exc}", type=INVALID_REF) from None


class ClaimedCounters:
    """What the order's recorded and pending refs claim together, kept up to date as refs
    come and go, so a handler checks the order bounds without summing every pending ref."""

    def __init__(self, quantity: int = 0, totals: dict[str, int] | None = None) -> None:
        self.quantity = quantity
        self.totals = dict(totals or {})

    def over_limit(self, refs: list[BatchRef]) -> str | None:
        """Why adding ``refs`` would pass the order bounds, else ``None``."""
        quantity, totals = self.quantity, dict(self.totals)
        for ref in refs:
            over = totals_over_limit(quantity, totals, ref.quantity, ref.totals)
            if over is not None:
                return f"batch {ref.batch_id!r}: {over}"
            quantity += ref.quantity
            add_totals(totals, ref.totals)
        return None

    def add(self, ref: BatchRef, sign: int = 1) -> None:
        self.quantity += sign * ref.quantity
        for currency, amount in ref.totals.items():
            self.totals[currency] = self.totals.get(currency, 0) + sign * amount


def check_limits(claimed: ClaimedCounters, refs: list[BatchRef]) -> None:
    over = claimed.over_limit(refs)
    if over is not None:
        raise ApplicationError(f"order limit: {over}", type=ORDER_LIMIT)


def cause_type(err: ActivityError) -> str:
    """The type of an activity failure's ``ApplicationError`` (the domain error's class)."""
    cause = err.cause
    return (cause.type or "") if isinstance(cause, ApplicationError) else ""


def cause_message(err: ActivityError) -> str:
    cause = err.cause
    return str(cause.message if isinstance(cause, ApplicationError) else cause or err)
