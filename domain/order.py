"""The ``Order`` aggregate: the durable, event-sourced record of one order.

It holds references and counters, never items: an order of ten million items is a few
thousand ``ItemsAdded`` events, each carrying one :class:`~bulkorder.domain.refs.BatchRef`.

Every event class states its ``class_version``; when an event's shape changes, its version
goes up and an upcaster from :mod:`bulkorder.domain.order_upcasts` reads the older shape.
The event classes stay here: their stored topics name this module.

``via_outbox`` marks what a DB-first service recorded itself (see docs/consistency.md):
the relay forwards exactly those events to the order's workflow.
"""

from __future__ import annotations

from dataclasses import field
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate

from bulkorder.domain.errors import OrderClosedError, OrderConflictError, OrderErasedError, OrderLimitError
from bulkorder.domain.identity import OrderName, legacy_aggregate_id
from bulkorder.domain.order_counters import add_batch_claims, rejected_items, status_after
from bulkorder.domain.order_upcasts import (
    OrderSnapshotDefaults, created_without_request, not_via_outbox, rejection_when_added, rejection_with_code,
    retried_without_count,
)
from bulkorder.domain.refs import BatchRef, ReportRef, check_batch_ref, check_report_ref, totals_over_limit
from bulkorder.domain.summary import (  # noqa: F401 - the codes are part of this module's API
    REJECTED_INVALID_REF, REJECTED_ORDER_CLOSED, REJECTED_ORDER_LIMIT, REJECTED_OTHER, REJECTED_UNPROVEN,
    REJECTED_UNREADABLE, REJECTED_UNRECORDABLE, REJECTION_CODES, OrderStatus, OrderSummary, rejection_code,
)


class Order(Aggregate, OrderSnapshotDefaults):
    """One order: created, grown by batches, then submitted and fulfilled, or cancelled."""

    class Created(Aggregate.Created):
        """v2 added ``via_outbox``; v3 the create request (``request_digest``, its initial
        batch IDs and idempotency key: a retry is told from a conflict by them). Since v3
        ``order_id`` holds the order's name (``customer/reference``); before, the bare
        order ID of a 0.x order (docs/architecture.md, "Order identity")."""

        class_version = 3
        order_id: str
        customer_id: str
        via_outbox: bool = False
        request_digest: str = ""
        initial_batch_ids: list[str] = field(default_factory=list)
        idempotency_key: str = ""
        upcast_v1_v2 = staticmethod(not_via_outbox)
        upcast_v2_v3 = staticmethod(created_without_request)

    class ItemsAdded(Aggregate.Event):
        """v2 added ``via_outbox``."""

        class_version = 2
        batch: BatchRef
        via_outbox: bool = False
        upcast_v1_v2 = staticmethod(not_via_outbox)

        def apply(self, order: Order) -> None:
            # Batches are counted by ID (``batch_count``): applied at most once.
            order.batch_ids[self.batch.batch_id] = len(order.batch_ids)
            add_batch_claims(order, self.batch)

    class BatchRejected(Aggregate.Event):
        """v2 added ``code`` (v1 events get it from their reason, as new ones do); v3 added
        ``at_fulfillment`` and ``item_count`` (rejections found by fulfillment)."""

        class_version = 3
        batch_id: str
        reason: str
        key: str
        code: str
        #: Set when fulfillment could not read a batch the order had added (blob gone,
        #: corrupt, undecodable): its items are in ``item_count`` but not fulfilled.
        at_fulfillment: bool = False
        item_count: int = 0
        upcast_v1_v2 = staticmethod(rejection_with_code)
        upcast_v2_v3 = staticmethod(rejection_when_added)

        def apply(self, order: Order) -> None:
            order.rejected_batch_ids[self.batch_id] = self.reason
            order.rejected_items += rejected_items(self)

    class Submitted(Aggregate.Event):
        """v2 added ``via_outbox``."""

        class_version = 2
        via_outbox: bool = False
        upcast_v1_v2 = staticmethod(not_via_outbox)

        def apply(self, order: Order) -> None:
            order.status = status_after(self)
            order.submitted_at = self.timestamp

    class FulfillmentCompleted(Aggregate.Event):
        class_version = 1
        report: ReportRef

        def apply(self, order: Order) -> None:
            order.status = status_after(self)
            order.report = self.report
            order.closed_at = self.timestamp

    class FulfillmentFailed(Aggregate.Event):
        """Fulfillment hit an error retrying cannot fix. The order waits for an operator:
        ``FulfillmentRetried`` or ``Cancelled`` (workflows from before that patch failed)."""

        class_version = 1
        reason: str

        def apply(self, order: Order) -> None:
            order.status = status_after(self)
            order.failure_reason = self.reason
            order.closed_at = self.timestamp

    class FulfillmentRetried(Aggregate.Event):
        """An operator retried a failed fulfillment: submitted again, the batches it could
        not read are read again. v2 added ``reread_batches``, how many (0: not known)."""

        class_version = 2
        reason: str
        reread_batches: int = 0
        upcast_v1_v2 = staticmethod(retried_without_count)

        def apply(self, order: Order) -> None:
            order.status = status_after(self)
            order.failure_reason = None
            order.closed_at = None
            order.fulfillment_retries += 1
            for batch_id in [b for b in order.rejected_batch_ids if b in order.batch_ids]:
                del order.rejected_batch_ids[batch_id]
            order.rejected_items = 0

    class Cancelled(Aggregate.Event):
        """v2 added ``via_outbox``."""

        class_version = 2
        reason: str
        via_outbox: bool = False
        upcast_v1_v2 = staticmethod(not_via_outbox)

        def apply(self, order: Order) -> None:
            order.status = status_after(self)
            order.cancel_reason = self.reason
            order.closed_at = self.timestamp

    class ItemsPurged(Aggregate.Event):
        """Retention deletes the order's items (its batch blobs and report); its events
        and counters stay. Recorded before the blobs are deleted, so a reader never meets
        a missing blob without being told why; ``batches`` is how many the order had
        (blobs another order still references are kept)."""

        class_version = 1
        reason: str
        batches: int

        def apply(self, order: Order) -> None:
            order.items_purged_at = self.timestamp

    class OrderErased(Aggregate.Event):
        """The right to be forgotten: the order's items are deleted (and, with encryption,
        its data key destroyed); ``by`` and ``reason`` say who asked and why. Nothing is
        recorded on the order after this event."""

        class_version = 1
        by: str
        reason: str
        batches: int
        #: Whether the order's data key was destroyed (crypto-shredding) at erasure.
        key_destroyed: bool

        def apply(self, order: Order) -> None:
            order.erased_at = self.timestamp
            order.erased_by = self.by
            order.erasure_reason = self.reason
            if order.items_purged_at is None:
                order.items_purged_at = self.timestamp

    def __init__(
        self,
        order_id: str,
        customer_id: str,
        via_outbox: bool = False,
        request_digest: str = "",
        initial_batch_ids: list[str] | None = None,
        idempotency_key: str = "",
    ) -> None:
        # An attribute added later, or set only by an event (erasure, retention), also gets a
        # class-level default in OrderSnapshotDefaults, for orders rebuilt from older snapshots.
        #: The name (``customer/reference``); a bare order ID for orders from 0.x.
        self.order_id = order_id
        self.customer_id = customer_id
        #: The create request, to tell a retry from a conflict (empty before v3).
        self.request_digest = request_digest
        self.initial_batch_ids = tuple(initial_batch_ids or ())
        self.idempotency_key = idempotency_key
        #: Recorded DB-first (the service wrote it; the relay drives its workflow).
        self.via_outbox = via_outbox
        self.status: str = OrderStatus.OPEN
        self.item_count = 0
        self.quantity = 0
        self.totals: dict[str, int] = {}
        # batch ID -> position among the order's batches: "applied at most once".
        self.batch_ids: dict[str, int] = {}
        self.rejected_batch_ids: dict[str, str] = {}
        self.submitted_at: datetime | None = None
        self.closed_at: datetime | None = None
        self.cancel_reason: str | None = None
        self.report: ReportRef | None = None

    @classmethod
    def create(
        cls,
        name: OrderName,
        *,
        aggregate_id: UUID,
        via_outbox: bool = False,
        request_digest: str = "",
        initial_batch_ids: list[str] | None = None,
        idempotency_key: str = "",
    ) -> Order:
        """A new order named ``name``; ``aggregate_id`` is its keyed hash
        (``OrderIdentity.aggregate_id``), computed by the application that holds the key."""
        return cls._create(
            cls.Created,
            id=aggregate_id,
            order_id=str(name),
            customer_id=name.customer,
            via_outbox=via_outbox,
            request_digest=request_digest,
            initial_batch_ids=list(initial_batch_ids or ()),
            idempotency_key=idempotency_key,
        )

    @classmethod
    def create_legacy(cls, order_id: str, customer_id: str, *, via_outbox: bool = False) -> Order:
        """A 0.x-style order (bare order ID, legacy aggregate ID): what a workflow started
        before identities records when it creates its order after the upgrade."""
        name = OrderName(customer_id, order_id)  # the same rules (0.x IDs pass them)
        return cls._create(
            cls.Created,
            id=legacy_aggregate_id(name.reference),
            order_id=name.reference,
            customer_id=name.customer,
            via_outbox=via_outbox,
        )

    @property
    def name(self) -> OrderName:
        """``customer/reference``; for a 0.x order, its order ID is the reference."""
        if "/" in self.order_id:
            return OrderName.parse(self.order_id)
        return OrderName(self.customer_id, self.order_id)

    # Commands check invariants, then trigger an event. Repeats are no-ops, not errors,
    # because the activity that calls them may run more than once.

    def add_batch(self, batch: BatchRef, *, via_outbox: bool = False) -> bool:
        """Add one batch; return ``False`` if this batch ID was applied before.

        Raises :class:`OrderLimitError` if the batch would take the order's quantity or
        a total past the order bounds (``bulkorder.domain.limits``): the caller records it rejected.
        """
        if batch.batch_id in self.batch_ids:
            return False
        if self.status != OrderStatus.OPEN:
            raise OrderClosedError(self.order_id, self.status, f"add batch {batch.batch_id!r}")
        check_batch_ref(batch)
        over = totals_over_limit(self.quantity, self.totals, batch.quantity, batch.totals)
        if over is not None:
            raise OrderLimitError(f"order {self.order_id!r}: batch {batch.batch_id!r} refused: {over}")
        self.trigger_event(self.ItemsAdded, batch=batch, via_outbox=via_outbox)
        return True

    def reject_batch(self, batch_id: str, reason: str, key: str = "", code: str = "") -> bool:
        """Record that a batch was refused; ``False`` if already recorded or applied.
        ``code`` says why (``REJECTED_*``); without one, the reason's wording decides."""
        if batch_id in self.rejected_batch_ids or batch_id in self.batch_ids:
            return False
        reason = reason[:2000]
        code = code if code in REJECTION_CODES else rejection_code(reason)
        self.trigger_event(self.BatchRejected, batch_id=batch_id, reason=reason, key=key[:512], code=code)
        return True

    def reject_unfulfillable_batch(self, batch_id: str, reason: str, key: str, item_count: int) -> bool:
        """Record that fulfillment cannot read an added batch (never retried, never
        dropped silently); ``False`` if already recorded."""
        if batch_id in self.rejected_batch_ids:
            return False
        if batch_id not in self.batch_ids:
            raise OrderConflictError(f"order {self.order_id!r} has no batch {batch_id!r} to reject at fulfillment")
        if self.status != OrderStatus.SUBMITTED:
            raise OrderClosedError(self.order_id, self.status, f"reject batch {batch_id!r} at fulfillment")
        self.trigger_event(
            self.BatchRejected,
            batch_id=batch_id,
            reason=reason[:2000],
            key=key,
            code=REJECTED_UNREADABLE,
            at_fulfillment=True,
            item_count=item_count,
        )
        return True

    def submit(self, *, via_outbox: bool = False) -> bool:
        if self.status in (OrderStatus.SUBMITTED, OrderStatus.FULFILLED, OrderStatus.FAILED):
            return False
        if self.status != OrderStatus.OPEN:
            raise OrderClosedError(self.order_id, self.status, "submit")
        self.trigger_event(self.Submitted, via_outbox=via_outbox)
        return True

    def complete_fulfillment(self, report: ReportRef) -> bool:
        if self.status == OrderStatus.FULFILLED:
            if self.report is not None and self.report.sha256 != report.sha256:
                raise OrderConflictError(f"order {self.order_id!r} was already fulfilled with another report")
            return False
        if self.status != OrderStatus.SUBMITTED:
            raise OrderClosedError(self.order_id, self.status, "complete fulfillment")
        self.trigger_event(self.FulfillmentCompleted, report=check_report_ref(report))
        return True

    def fail_fulfillment(self, reason: str) -> bool:
        """Close the order as failed: fulfillment met an error no retry can fix."""
        if self.status == OrderStatus.FAILED:
            return False
        if self.status != OrderStatus.SUBMITTED:
            raise OrderClosedError(self.order_id, self.status, "record a fulfillment failure")
        self.trigger_event(self.FulfillmentFailed, reason=reason[:2000])
        return True

    def retry_fulfillment(self, reason: str) -> bool:
        """Submit a failed order again; ``False`` if it is already submitted again."""
        if self.status == OrderStatus.SUBMITTED:
            return False
        if self.status != OrderStatus.FAILED:
            raise OrderClosedError(self.order_id, self.status, "retry fulfillment")
        reread = sum(1 for batch_id in self.rejected_batch_ids if batch_id in self.batch_ids)
        self.trigger_event(self.FulfillmentRetried, reason=(reason or "retried")[:2000], reread_batches=reread)
        return True

    def cancel(self, reason: str, *, via_outbox: bool = False) -> bool:
        """Cancel an open order, or a failed one an operator gives up on."""
        if self.status == OrderStatus.CANCELLED:
            return False
        if self.status not in (OrderStatus.OPEN, OrderStatus.FAILED):
            raise OrderClosedError(self.order_id, self.status, "cancel")
        self.trigger_event(self.Cancelled, reason=reason[:2000], via_outbox=via_outbox)
        return True

    def purge_items(self, reason: str) -> bool:
        """Record that retention deleted this closed order's items; ``False`` if already
        purged. Only a fulfilled or cancelled order's items are purged."""
        self.refuse_if_erased("purge items")
        if self.items_purged_at is not None:
            return False
        if self.status not in (OrderStatus.FULFILLED, OrderStatus.CANCELLED):
            raise OrderClosedError(self.order_id, self.status, "purge items (only a fulfilled or cancelled order's)")
        self.trigger_event(self.ItemsPurged, reason=reason[:2000], batches=self.batch_count)
        return True

    def erase(self, by: str, reason: str, key_destroyed: bool) -> bool:
        """Record the order's erasure; ``False`` if already erased. Refused while the
        order can still change (open, submitted, failed): cancel it first."""
        if self.erased_at is not None:
            return False
        if self.status not in (OrderStatus.FULFILLED, OrderStatus.CANCELLED):
            raise OrderClosedError(self.order_id, self.status, "erase it while it can still change (cancel it first)")
        self.trigger_event(
            self.OrderErased, by=by[:200], reason=reason[:2000], batches=self.batch_count, key_destroyed=key_destroyed
        )
        return True

    def refuse_if_erased(self, action: str) -> None:
        if self.erased_at is not None:
            raise OrderErasedError(self.order_id, self.erased_at, action)

    @property
    def batch_count(self) -> int:
        return len(self.batch_ids)

    def summary(self) -> OrderSummary:
        return OrderSummary(
            order_id=str(self.name),
            customer_id=self.customer_id,
            status=self.status,
            item_count=self.item_count,
            batch_count=self.batch_count,
            quantity=self.quantity,
            totals=dict(self.totals),
            rejected_batches=len(self.rejected_batch_ids),
            rejected_items=self.rejected_items,
            version=self.version,
            report=self.report,
            failure_reason=self.failure_reason,
        )
