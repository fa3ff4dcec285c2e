"""Every activity failure ends somewhere: deterministic ones are recorded, not retried;
transient ones are retried; unexpected ones get a few attempts, then are recorded too."""

from __future__ import annotations

import sqlite3
import uuid

import pytest
from eventsourcing.persistence import OperationalError
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from bulkorder.domain.errors import OrderClosedError, OrderConflictError, OrderNotFoundError
from bulkorder.domain.items import ItemValidationError
from bulkorder.domain.refs import InvalidRefError
from bulkorder.domain.summary import OrderChange, RecordOutcome
from bulkorder.storage.errors import BatchFormatError, BlobIntegrityError, BlobNotFoundError, TransientStoreError
from tests.fixtures.orders import OrderStack
from tests.workflows.helpers import event_types, store_generated, worker_serving
from bulkorder.workflows.activities import OrderActivities
from bulkorder.workflows.activity_errors import UNEXPECTED_ATTEMPTS, classified_failures, classify
from bulkorder.workflows.errors import OrderRefusedError
from bulkorder.workflows.fulfillment import FulfillmentMismatch
from bulkorder.workflows.messages import FULFILL_CHECKED_ACTIVITY, RECORD_ACTIVITY, FulfillmentResult, FulfillRequest
from bulkorder.workflows.order_rules import FULFILL_RETRY, RECORD_RETRY


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (TransientStoreError("S3 down"), "transient"),
        (OperationalError("database is locked"), "transient"),
        (sqlite3.OperationalError("database is locked"), "transient"),
        (ConnectionRefusedError(), "transient"),
        (TimeoutError(), "transient"),
        (BatchFormatError("corrupt"), "deterministic"),
        (ItemValidationError([("item", "quantity", "too big")]), "deterministic"),
        (OverflowError("int too big to convert"), "deterministic"),
        (TypeError("bug"), "deterministic"),
        (KeyError("bug"), "deterministic"),
        (RuntimeError("who knows"), "unexpected"),
        (ApplicationError("x", non_retryable=True), "deterministic"),
    ],
)
def test_each_failure_has_a_kind(exc: Exception, kind: str) -> None:
    assert classify(exc) == kind


def test_a_deterministic_failure_becomes_non_retryable_typed_by_its_class() -> None:
    with pytest.raises(ApplicationError) as raised:
        with classified_failures("fulfillment"):
            raise OverflowError("Integer value out of range")
    assert (raised.value.type, raised.value.non_retryable, raised.value.message) == (
        "OverflowError", True, "Integer value out of range",
    )


@pytest.mark.parametrize(
    "exc",
    [
        OrderConflictError("another report"),
        OrderClosedError("o-1", "fulfilled", "submit"),
        OrderNotFoundError("o-1"),
        InvalidRefError("bad key"),
        BlobNotFoundError("batches/ab/cd"),
        BlobIntegrityError("batches/ab/cd", "0" * 64, "1" * 64),
        BatchFormatError("corrupt"),
        FulfillmentMismatch("batch b1 holds 3 items, its ref says 4"),
    ],
)
def test_what_the_retry_policies_once_listed_is_decided_here(exc: Exception) -> None:
    """One list of what is not worth retrying: the activities' (the policies carry none)."""
    assert RECORD_RETRY.non_retryable_error_types is None and FULFILL_RETRY.non_retryable_error_types is None
    with pytest.raises(ApplicationError) as raised:
        with classified_failures("recording"):
            raise exc
    assert (raised.value.type, raised.value.non_retryable) == (type(exc).__name__, True)


def test_a_transient_failure_goes_to_the_retry_policy_as_it_is() -> None:
    with pytest.raises(TransientStoreError):
        with classified_failures("recording"):
            raise TransientStoreError("S3 down")


def new_order_id() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


class BuggyFulfillment(OrderActivities):
    """Real activities, but fulfillment hits a bug until it is fixed (``broken = False``)."""

    broken = True
    attempts = 0

    @activity.defn(name=FULFILL_CHECKED_ACTIVITY)
    def fulfill_order_checked(self, request: FulfillRequest) -> FulfillmentResult:
        with classified_failures("fulfillment"):
            if self.broken:
                type(self).attempts += 1
                raise RuntimeError("bug: the report writer tripped")
        return super().fulfill_order_checked(request)


class UnrecordableOnce(OrderActivities):
    """The event store refuses, for good, the first change that carries batches."""

    refused = 0

    @activity.defn(name=RECORD_ACTIVITY)
    def record_order_change(self, change: OrderChange) -> RecordOutcome:
        if change.batches and not type(self).refused:
            type(self).refused += 1
            with classified_failures("recording"):
                raise ValueError("cannot encode this change")
        return super().record_order_change(change)


async def test_an_unexpected_failure_is_retried_a_few_times_then_recorded_and_recoverable(
    temporal_env: WorkflowEnvironment, order_stack: OrderStack
) -> None:
    # The fixture's worker stays on its own queue; this order runs on a queue of its own.
    task_queue = f"buggy-{uuid.uuid4().hex[:8]}"
    buggy = BuggyFulfillment(order_stack.orders, order_stack.batches)
    client = type(order_stack.client)(order_stack.temporal, task_queue=task_queue, batches=order_stack.batches)
    order_id = new_order_id()
    refs = store_generated(order_stack.batches, 300, 100, prefix=order_id)
    async with worker_serving(order_stack.temporal, buggy, task_queue):
        order_id = f"customer-1/{order_id}"  # the order's name: customer/reference
        await client.create(order_id, refs=refs)
        await client.submit(order_id)
        with pytest.raises(OrderRefusedError, match="RuntimeError: bug: the report writer tripped") as failed:
            await client.wait_closed(order_id)
        assert failed.value.type == "FulfillmentFailed"
        assert BuggyFulfillment.attempts == UNEXPECTED_ATTEMPTS  # a few attempts, not forever
        recorded = order_stack.orders.get_order(order_id)
        assert recorded.status == "failed" and "UnexpectedError" not in (recorded.failure_reason or "x")
        assert "bug: the report writer tripped" in (recorded.failure_reason or "")
        # The bug fixed (a new release of the worker), an operator retries.
        BuggyFulfillment.broken = False
        assert (await client.retry_fulfillment(order_id, "bug fixed in 1.2.1")).status == "submitted"
        final = await client.wait_closed(order_id)
    assert (final.status, final.item_count) == ("fulfilled", 300)
    assert event_types(order_stack.orders, order_id)[-3:] == ["FulfillmentFailed", "FulfillmentRetried", "FulfillmentCompleted"]


async def test_batches_the_event_store_refuses_for_good_are_recorded_rejected_and_the_order_goes_on(
    temporal_env: WorkflowEnvironment, order_stack: OrderStack
) -> None:
    task_queue = f"unrecordable-{uuid.uuid4().hex[:8]}"
    activities = UnrecordableOnce(order_stack.orders, order_stack.batches)
    client = type(order_stack.client)(order_stack.temporal, task_queue=task_queue, batches=order_stack.batches)
    order_id = new_order_id()
    first = store_generated(order_stack.batches, 200, 100, prefix=order_id)
    later = store_generated(order_stack.batches, 100, 100, prefix=order_id + "-later", start=200)
    async with worker_serving(order_stack.temporal, activities, task_queue):
        order_id = f"customer-1/{order_id}"  # the order's name: customer/reference
        await client.create(order_id, refs=first)
        await client.add_batches(order_id, later)
        await client.submit(order_id)
        final = await client.wait_closed(order_id)
    recorded = order_stack.orders.get_order(order_id)
    assert final.status == "fulfilled"
    assert set(recorded.rejected_batch_ids) == {ref.batch_id for ref in first}
    assert all("could not be recorded: cannot encode this change" in reason for reason in recorded.rejected_batch_ids.values())
    assert (recorded.item_count, final.report is not None and final.report.item_count) == (100, 100)
