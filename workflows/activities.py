"""Activities of the order workflow: all of its I/O.

All are idempotent. ``record_order_change`` applies an :class:`~domain.summary.OrderChange`
through the orders application, which records each batch ID at most once; the fulfillment
activities only read, and write their report under a content-addressed key.
``fulfill_order`` (v1) stays registered for workflows that started before
``fulfill_order_checked`` (v2) existed.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.application import Orders
from domain.errors import OrderClosedError, OrderConflictError, OrderNotFoundError
from domain.refs import InvalidRefError, ReportRef
from domain.summary import OrderChange, RecordOutcome
from storage.batches import BatchStore
from storage.errors import BatchFormatError, BlobIntegrityError, BlobNotFoundError
from workflows.fulfillment import FulfillmentMismatch, build_report, fulfill
from workflows.messages import (
    FULFILL_ACTIVITY,
    FULFILL_CHECKED_ACTIVITY,
    RECORD_ACTIVITY,
    FulfillmentResult,
    FulfillRequest,
)

# Errors retrying cannot fix become non-retryable ApplicationErrors typed by class name,
# so the workflow can tell them apart (see _PERMANENT_RECORD_ERRORS there).
_PERMANENT = (
    OrderConflictError,
    OrderClosedError,
    OrderNotFoundError,
    InvalidRefError,
    BlobNotFoundError,
    BlobIntegrityError,
    BatchFormatError,
    FulfillmentMismatch,
)


class OrderActivities:
    """Holds the event store and the blob store a worker shares between activity calls."""

    def __init__(self, orders: Orders, batches: BatchStore) -> None:
        self.orders = orders
        self.batches = batches

    @activity.defn(name=RECORD_ACTIVITY)
    def record_order_change(self, change: OrderChange) -> RecordOutcome:
        with _permanent_errors_as_application_errors():
            return self.orders.record(change)

    @activity.defn(name=FULFILL_ACTIVITY)
    def fulfill_order(self, request: FulfillRequest) -> ReportRef:
        with _permanent_errors_as_application_errors():
            return build_report(
                orders=self.orders,
                batches=self.batches,
                request=request,
                heartbeat=activity.heartbeat,
            )

    @activity.defn(name=FULFILL_CHECKED_ACTIVITY)
    def fulfill_order_checked(self, request: FulfillRequest) -> FulfillmentResult:
        with _permanent_errors_as_application_errors():
            return fulfill(
                orders=self.orders,
                batches=self.batches,
                request=request,
                heartbeat=activity.heartbeat,
            )

    def all(self) -> list[object]:
        return [self.record_order_change, self.fulfill_order, self.fulfill_order_checked]


class _permanent_errors_as_application_errors:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if exc is not None and isinstance(exc, _PERMANENT):
            raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc
        return False
