"""Activities of the order workflow: all of its I/O.

All are idempotent. ``record_order_change`` applies an :class:`~bulkorder.domain.summary.OrderChange`
through the orders application, which records each batch ID at most once; the fulfillment
activities only read, and write their report under a content-addressed key.
``fulfill_order`` (v1) stays registered for workflows that started before
``fulfill_order_checked`` (v2) existed.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from typing import Callable, Iterator

from temporalio import activity

from bulkorder.domain.application import Orders
from bulkorder.domain.order import REJECTED_UNPROVEN
from bulkorder.domain.refs import ReportRef
from bulkorder.domain.summary import OrderChange, RecordOutcome, Rejection
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.ref_proof import RefProver
from bulkorder.workflows.activity_errors import classified_failures
from bulkorder.workflows.fulfillment import build_report, fulfill
from bulkorder.workflows.messages import (
    FULFILL_ACTIVITY,
    FULFILL_CHECKED_ACTIVITY,
    RECORD_ACTIVITY,
    FulfillmentResult,
    FulfillRequest,
)


#: Told of each change the record activity applied: the change as proven (its batches and
#: rejections), what the event store did, and how long the call took in seconds. A plain
#: callback, so the worker's metrics (``bulkorder.metrics``) need no import here.
RecordHook = Callable[[OrderChange, RecordOutcome, float], None]


class OrderActivities:
    """Holds the event store and the blob store a worker shares between activity calls.

    Refs are proven before they are recorded (``bulkorder.storage.ref_proof``): sealed by this
    deployment's writer, or borne out by their blob. An unproven ref is recorded as a
    ``BatchRejected`` with the reason instead of its claims.
    """

    def __init__(self, orders: Orders, batches: BatchStore, *, on_recorded: RecordHook | None = None) -> None:
        self.orders = orders
        self.batches = batches
        self.prover = RefProver(batches, batches.sealer)
        self.on_recorded = on_recorded

    @activity.defn(name=RECORD_ACTIVITY)
    def record_order_change(self, change: OrderChange) -> RecordOutcome:
        started = time.perf_counter()
        with classified_failures("recording"):
            proven = self.proven(change)
            with _cancel_deferred():
                outcome = self.orders.record(proven)
            kept = {ref.batch_id for ref in proven.batches}
            outcome.unproven_batch_ids = [ref.batch_id for ref in change.batches if ref.batch_id not in kept]
        if self.on_recorded is not None:
            self.on_recorded(proven, outcome, time.perf_counter() - started)
        return outcome

    def proven(self, change: OrderChange) -> OrderChange:
        """``change`` with every unproven batch moved to its rejections."""
        if not change.batches:
            return change
        batches = []
        rejections = list(change.rejections)
        for ref, reason in zip(change.batches, self.prover.refusals(change.batches, order_id=change.order_id)):
            if reason is None:
                batches.append(ref)
            else:
                rejections.append(Rejection(batch_id=ref.batch_id, reason=reason, key=ref.key, code=REJECTED_UNPROVEN))
        if len(batches) == len(change.batches):
            return change
        return replace(change, batches=batches, rejections=rejections)

    @activity.defn(name=FULFILL_ACTIVITY)
    def fulfill_order(self, request: FulfillRequest) -> ReportRef:
        with classified_failures("fulfillment"):
            return build_report(
                orders=self.orders,
                batches=self.batches,
                request=request,
                heartbeat=activity.heartbeat,
            )

    @activity.defn(name=FULFILL_CHECKED_ACTIVITY)
    def fulfill_order_checked(self, request: FulfillRequest) -> FulfillmentResult:
        with classified_failures("fulfillment"):
            return fulfill(
                orders=self.orders,
                batches=self.batches,
                request=request,
                heartbeat=activity.heartbeat,
            )

    def all(self) -> list[object]:
        return [self.record_order_change, self.fulfill_order, self.fulfill_order_checked]


@contextlib.contextmanager
def _cancel_deferred() -> Iterator[None]:
    """Hold a cancellation back until the write is over. A sync activity is cancelled by an
    exception raised into its thread at any bytecode (temporalio's thread raiser); landing
    inside the event store's connection pool it leaks the pool's one writer, and every
    later write of the process fails ("Timed out waiting for return of writer") even once
    the store is back. Core cancels a creation's local activity attempt while it retries
    (seen with SQLite locked: tests/cli/test_stuck_creation.py). Outside an activity (a
    direct call) there is nothing to defer."""
    if not activity.in_activity():
        yield
        return
    with activity.shield_thread_cancel_exception():
        yield
