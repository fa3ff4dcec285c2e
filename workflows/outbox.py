"""``OrderOutbox``: the DB-first way to change an order (the outbox pattern).

A service that must write its database synchronously records ``Created``, ``ItemsAdded``,
``Submitted`` and ``Cancelled`` itself, in the event store, in the transaction of its
choice. The event store's notification log is the outbox: each of those events is marked
``via_outbox`` and the relay (:mod:`bulkorder.workflows.relay`) forwards them to the order's
workflow, which then records nothing new (every batch is already there) and runs
fulfillment. Nothing here talks to Temporal.

Every call is idempotent, like the orders application under it: repeating a create with
the same customer, a batch ID, a submit or a cancel records nothing the second time. What
the store refuses (another customer's order, a closed order, an empty submit) raises a
typed :class:`~bulkorder.domain.errors.OrderError` and records nothing.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from bulkorder.domain.application import Orders
from bulkorder.domain.errors import EmptyOrderError
from bulkorder.domain.identity import OrderName, check_idempotency_key, order_name, request_digest
from bulkorder.domain.items import validate_item_dicts
from bulkorder.domain.refs import BatchRef, InvalidRefError, check_batch_refs
from bulkorder.domain.summary import OrderChange, OrderStatus, OrderSummary, RecordOutcome
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.leases import WriteLeases
from bulkorder.storage.ref_proof import RefProver
from bulkorder.workflows.messages import MAX_REFS_PER_CALL


class OrderOutbox:
    """Records order changes DB-first. ``batches`` is needed by :meth:`add_items`, and to
    prove refs: with it, a ref's claims are believed only when sealed by this deployment
    or borne out by its blob (``bulkorder.storage.ref_proof``), else the call is refused and records
    nothing. Without it, the service vouches for the refs it passes."""

    def __init__(self, orders: Orders, batches: BatchStore | None = None) -> None:
        self.orders = orders
        self.batches = batches
        self._prover = RefProver(batches, batches.sealer) if batches is not None else None

    def _proven(self, refs: list[BatchRef], order_id: str) -> list[BatchRef]:
        if self._prover is not None:
            for index, (ref, reason) in enumerate(zip(refs, self._prover.refusals(refs, order_id=order_id))):
                if reason is not None:
                    raise InvalidRefError(f"batch ref #{index}: batch {ref.batch_id}: {reason}")
        return refs

    def create(
        self,
        customer: OrderName | str,
        reference: str | None = None,
        refs: Sequence[BatchRef] = (),
        *,
        idempotency_key: str | None = None,
    ) -> RecordOutcome:
        """Record ``Created`` (and the first refs, in the same transaction) for the order
        ``customer/reference`` (or an :class:`OrderName` alone). As ``OrderClient.create``:
        the same request again returns the order (``existing``, nothing recorded); another
        request for the name raises ``OrderCreateConflictError`` naming what differs."""
        name = order_name(customer) if reference is None else OrderName(str(customer), reference)
        key = check_idempotency_key(idempotency_key)
        refs = self._proven(check_batch_refs(refs), str(name))
        first = refs[:MAX_REFS_PER_CALL]
        outcome = self.orders.record(
            OrderChange(
                order_id=str(name),
                customer_id=name.customer,
                create=True,
                batches=first,
                via_outbox=True,
                request_digest=request_digest(name, [(ref.batch_id, ref.sha256) for ref in first], key),
                initial_batch_ids=[ref.batch_id for ref in first],
                idempotency_key=key,
            )
        )
        order_id = str(name)
        if outcome.existing:
            return outcome
        if len(refs) > MAX_REFS_PER_CALL:
            more = self.add_batches(order_id, refs[MAX_REFS_PER_CALL:])
            outcome = _merged(outcome, more)
        return outcome

    def add_batches(self, order_id: OrderName | str, refs: Sequence[BatchRef]) -> RecordOutcome:
        """Record one ``ItemsAdded`` per new batch ID; known batch IDs come back as duplicates."""
        order_id = str(order_name(order_id))
        refs = self._proven(check_batch_refs(refs), order_id)
        if not refs:
            raise ValueError("add_batches needs at least one batch ref")
        # One transaction per chunk: each stays small, and a retry repeats only what failed.
        chunks = [refs[start : start + MAX_REFS_PER_CALL] for start in range(0, len(refs), MAX_REFS_PER_CALL)]
        outcome = self.orders.record(OrderChange(order_id=order_id, batches=chunks[0], via_outbox=True))
        for chunk in chunks[1:]:
            outcome = _merged(outcome, self.orders.record(OrderChange(order_id=order_id, batches=chunk, via_outbox=True)))
        return outcome

    def add_items(
        self,
        order_id: str,
        items: Iterable[Mapping[str, Any]],
        *,
        batch_size: int = 5_000,
        batch_id_prefix: str | None = None,
    ) -> RecordOutcome:
        """Validate every item, store them as batches, then record the batches.

        Nothing is recorded unless every item is valid; the blobs written for a refused
        call are unreferenced (content-addressed, so a corrected retry reuses them)."""
        if self.batches is None:
            raise RuntimeError("OrderOutbox needs a BatchStore to store items")
        order_id = str(order_name(order_id))
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        chunks: list[list[Mapping[str, Any]]] = [[]]
        for item in items:
            if len(chunks[-1]) == batch_size:
                chunks.append([])
            chunks[-1].append(item)
        if not chunks[-1]:
            raise ValueError(f"order {order_id!r}: no items to add")
        valid = [
            validate_item_dicts(chunk, f"batch {index} item" if batch_id_prefix is None else f"{batch_id_prefix}-{index:06d} item")
            for index, chunk in enumerate(chunks)
        ]
        # Each blob under a write lease until its ref is recorded: garbage collection
        # keeps it, whatever its grace period.
        leases = WriteLeases(self.batches.blobs)
        refs = []
        for index, chunk in enumerate(valid):
            ref, data = self.batches.encode(
                chunk, None if batch_id_prefix is None else f"{batch_id_prefix}-{index:06d}", order_id=order_id
            )
            self.batches.put_leased(ref, data, leases)
            refs.append(ref)
        outcome = self.add_batches(order_id, refs)
        leases.release_all()
        return outcome

    def submit(self, order_id: OrderName | str) -> RecordOutcome:
        """Record ``Submitted``; the relay then starts fulfillment in the workflow."""
        order_id = str(order_name(order_id))
        current = self.orders.summary(order_id)
        if current.status == OrderStatus.OPEN and current.item_count == 0:
            # Items only grow while the order is open, so this check cannot go stale.
            raise EmptyOrderError(order_id)
        return self.orders.record(OrderChange(order_id=order_id, submit=True, via_outbox=True))

    def cancel(self, order_id: OrderName | str, reason: str) -> RecordOutcome:
        return self.orders.record(
            OrderChange(order_id=str(order_name(order_id)), cancel_reason=reason or "cancelled", via_outbox=True)
        )

    def summary(self, order_id: OrderName | str) -> OrderSummary:
        return self.orders.summary(str(order_name(order_id)))


def _merged(first: RecordOutcome, then: RecordOutcome) -> RecordOutcome:
    return RecordOutcome(
        summary=then.summary,
        new_events=first.new_events + then.new_events,
        applied_batch_ids=first.applied_batch_ids + then.applied_batch_ids,
        duplicate_batch_ids=first.duplicate_batch_ids + then.duplicate_batch_ids,
    )
