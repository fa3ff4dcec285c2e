"""The orders application: the event store's API for the ``Order`` aggregate.

Every operation is idempotent. The workflow records changes through an activity that
Temporal may run more than once (retries, a worker dying after the write but before
reporting back); applying the same :class:`~bulkorder.domain.summary.OrderChange` twice must record
it once. Batch IDs and the order's status make repeats detectable, and the event store's
optimistic concurrency (aggregate versions) catches two writers racing.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Iterator, Mapping, Protocol
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Mapper, Transcoding
from eventsourcing.utils import resolve_topic

from bulkorder.domain.errors import (
    OrderAlreadyExistsError,
    OrderConflictError,
    OrderCreateConflictError,
    OrderIdentityError,
    OrderLimitError,
    OrderNotFoundError,
)
from bulkorder.domain.identity import (
    MIN_IDENTITY_KEY_BYTES,
    OrderIdentity,
    OrderName,
    legacy_aggregate_id,
    request_difference,
)
from bulkorder.domain.order import REJECTED_ORDER_LIMIT, Order
from bulkorder.domain.refs import BatchRef, ReportRef
from bulkorder.domain.summary import OrderChange, OrderSummary, RecordOutcome
from bulkorder.domain.topics import renamed_topics_mapper_class

#: A snapshot every this many events bounds the rebuild of any order to that many events.
SNAPSHOT_INTERVAL = 100
_MAX_CONFLICT_RETRIES = 20


class BatchRefAsDict(Transcoding):
    type = BatchRef
    name = "batch_ref"

    def encode(self, obj: BatchRef) -> dict[str, Any]:
        return obj.to_dict()

    def decode(self, data: dict[str, Any]) -> BatchRef:
        return BatchRef(**data)


class ReportRefAsDict(Transcoding):
    type = ReportRef
    name = "report_ref"

    def encode(self, obj: ReportRef) -> dict[str, Any]:
        return obj.to_dict()

    def decode(self, data: dict[str, Any]) -> ReportRef:
        return ReportRef(**data)


class EventProtection(Protocol):
    """Encryption at rest for the event store (``bulkorder.storage.encryption.events``):
    wraps the application's mapper in one that seals what it stores."""

    def protect(self, mapper: Mapper[UUID]) -> Mapper[UUID]: ...


class Orders(Application[UUID]):
    """Event-sourced orders. Persistence comes from eventsourcing's own environment
    variables (``PERSISTENCE_MODULE``, ``SQLITE_DBNAME``, ``POSTGRES_*``); ``protection``
    encrypts events at rest (settings-built stores always pass one)."""

    name = "Orders"
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Order: SNAPSHOT_INTERVAL}

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        protection: EventProtection | None = None,
        identity: OrderIdentity | None = None,
    ) -> None:
        self._protection = protection  # read by construct_mapper, during super().__init__
        super().__init__(env)
        self._identity = identity

    @property
    def identity(self) -> OrderIdentity:
        """The keyed hash that gives names their aggregate IDs: the one given, else
        ``BULKORDER_IDENTITY_SECRET`` from the environment (``bulkorder.identity_secret``)."""
        if self._identity is None:
            secret = self.env.get("BULKORDER_IDENTITY_SECRET") or ""
            if len(secret.encode()) < MIN_IDENTITY_KEY_BYTES:
                raise OrderIdentityError(
                    "the orders application has no identity secret: open it with Settings "
                    "(settings.event_store.open_orders(identity=settings.order_identity())) or set "
                    f"BULKORDER_IDENTITY_SECRET (at least {MIN_IDENTITY_KEY_BYTES} bytes)"
                )
            self._identity = OrderIdentity(secret.encode())
        return self._identity

    @property
    def protection(self) -> EventProtection | None:
        """How this application's events are encrypted (``None``: not at all)."""
        return self._protection

    def construct_mapper(self) -> Mapper[UUID]:
        # Events stored by 0.1.0 name the module by its old top-level path: the mapper
        # reads them as today's classes (see domain/topics.py).
        configured = self.factory.env.get(self.factory.MAPPER_TOPIC)
        mapper_class = renamed_topics_mapper_class(resolve_topic(configured) if configured else None)
        mapper = self.factory.mapper(transcoder=self.construct_transcoder(), mapper_class=mapper_class)
        return mapper if self._protection is None else self._protection.protect(mapper)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(BatchRefAsDict())
        transcoder.register(ReportRefAsDict())

    # Writing.

    def record(self, change: OrderChange) -> RecordOutcome:
        """Apply ``change`` to its order in one transaction; repeats record nothing."""
        for _ in range(_MAX_CONFLICT_RETRIES):
            order = self._load_for_change(change)
            if change.create and order.version > 0 and not order.pending_events:
                # The order exists and this create is its retry: it changes nothing (an
                # idempotency key vouches for the request, so its batches are not added).
                return RecordOutcome(summary=order.summary(), new_events=0, existing=True)
            outcome = self._apply(order, change)
            if not order.pending_events:
                return outcome
            try:
                self.save(order)
            except IntegrityError:
                # Another writer saved this order first: reload and apply again; what
                # it recorded now shows as duplicates.
                continue
            return outcome
        raise OrderConflictError(f"order {change.order_id!r}: too many concurrent writers")

    def _load_for_change(self, change: OrderChange) -> Order:
        # A create is nearly always of a new order: ask first whether each candidate ID
        # has any event (one query each) before reading it whole (snapshot, then events).
        order = self._find(change.order_id, probably_new=change.create)
        if order is None:
            if not change.create:
                raise OrderNotFoundError(change.order_id)
            if "/" not in change.order_id:
                return Order.create_legacy(change.order_id, change.customer_id, via_outbox=change.via_outbox)
            name = OrderName.parse(change.order_id)
            return Order.create(
                name,
                aggregate_id=self.identity.aggregate_id(name),
                via_outbox=change.via_outbox,
                request_digest=change.request_digest,
                initial_batch_ids=change.initial_batch_ids,
                idempotency_key=change.idempotency_key,
            )
        order.refuse_if_erased("record a change")
        if change.create:
            self._check_same_request(order, change)
        return order

    @staticmethod
    def _check_same_request(order: Order, change: OrderChange) -> None:
        """A create of an existing order is a retry when its request is the same; anything
        else is refused, naming what differs (nothing is recorded either way)."""
        if order.customer_id != change.customer_id and "/" not in change.order_id:
            raise OrderAlreadyExistsError(
                f"order {change.order_id!r} already exists for customer {order.customer_id!r}, "
                f"not {change.customer_id!r}"
            )
        if order.request_digest == change.request_digest:
            return  # the same request (or, both empty: a 0.x-style create by the same customer)
        if not order.request_digest:
            difference = "it was created before create requests were recorded, so no retry can be matched to it"
        else:
            difference = request_difference(
                order.initial_batch_ids, order.idempotency_key, change.initial_batch_ids, change.idempotency_key
            )
        # The message names no customer or reference: it may end up in a workflow's history.
        raise OrderCreateConflictError(f"this order already exists with another create request: {difference}")

    @staticmethod
    def _apply(order: Order, change: OrderChange) -> RecordOutcome:
        applied: list[str] = []
        duplicates: list[str] = []
        for batch in change.batches:
            try:
                added = order.add_batch(batch, via_outbox=change.via_outbox)
            except OrderLimitError as exc:
                order.reject_batch(batch.batch_id, str(exc), batch.key, code=REJECTED_ORDER_LIMIT)
                continue
            (applied if added else duplicates).append(batch.batch_id)
        for rejection in change.rejections:
            if rejection.at_fulfillment:
                order.reject_unfulfillable_batch(
                    rejection.batch_id, rejection.reason, rejection.key, rejection.item_count
                )
            else:
                order.reject_batch(rejection.batch_id, rejection.reason, rejection.key, code=rejection.code)
        if change.retry_fulfillment is not None:
            order.retry_fulfillment(change.retry_fulfillment)
        if change.cancel_reason is not None:
            order.cancel(change.cancel_reason, via_outbox=change.via_outbox)
        if change.submit:
            order.submit(via_outbox=change.via_outbox)
        if change.report is not None:
            order.complete_fulfillment(change.report)
        if change.fulfillment_failure is not None:
            order.fail_fulfillment(change.fulfillment_failure)
        return RecordOutcome(
            summary=order.summary(),
            new_events=len(order.pending_events),
            applied_batch_ids=applied,
            duplicate_batch_ids=duplicates,
        )

    def purge_items(self, order_id: str, reason: str) -> bool:
        """Record ``ItemsPurged`` (retention deleted the order's items); ``False`` if the
        order was purged already. Idempotent, safe against concurrent writers."""
        return self._command(order_id, lambda order: order.purge_items(reason))

    def erase(self, order_id: str, *, by: str, reason: str, key_destroyed: bool) -> bool:
        """Record ``OrderErased``; ``False`` if the order was erased already."""
        return self._command(order_id, lambda order: order.erase(by, reason, key_destroyed))

    def _command(self, order_id: str, command: Callable[[Order], bool]) -> bool:
        for _ in range(_MAX_CONFLICT_RETRIES):
            order = self.get_order(order_id)
            changed = command(order)
            if not order.pending_events:
                return changed
            try:
                self.save(order)
            except IntegrityError:
                continue  # another writer saved first: reload and decide again
            return changed
        raise OrderConflictError(f"order {order_id!r}: too many concurrent writers")

    # Reading.

    def _find(self, order_id: str, version: int | None = None, *, probably_new: bool = False) -> Order | None:
        """The order named ``order_id`` (``customer/reference``), or ``None``.

        A name is looked up by its v2 aggregate ID, then as a 0.x order whose order ID is
        the reference and whose customer is the name's. A bare order ID (what a 0.x
        workflow's state holds) is a 0.x order's. ``probably_new``: each ID is first
        checked for any event (one query; a new order's creation makes two instead of four)."""
        if "/" not in order_id:
            return self._get(legacy_aggregate_id(order_id), version, probably_new)
        name = OrderName.parse(order_id)
        order = self._get(self.identity.aggregate_id(name), version, probably_new)
        if order is None:
            legacy = self._get(legacy_aggregate_id(name.reference), version, probably_new)
            if legacy is not None and "/" not in legacy.order_id and legacy.customer_id == name.customer:
                order = legacy
        return order

    def _get(self, aggregate_id: UUID, version: int | None, probably_new: bool = False) -> Order | None:
        if probably_new and not self.recorder.select_events(aggregate_id, limit=1):
            return None  # no event, so no snapshot either: no such order
        try:
            order: Order = self.repository.get(aggregate_id, version=version)
        except AggregateNotFoundError:
            return None
        return order

    def aggregate_id(self, order_id: str) -> UUID:
        """The aggregate ID of the order named ``order_id``; ``OrderNotFoundError`` if none."""
        order = self._find(order_id)
        if order is None:
            raise OrderNotFoundError(order_id)
        return order.id

    def get_order(self, order_id: str, version: int | None = None) -> Order:
        order = self._find(order_id, version)
        if order is None:
            raise OrderNotFoundError(order_id)
        return order

    def summary(self, order_id: str, version: int | None = None) -> OrderSummary:
        return self.get_order(order_id, version).summary()

    def exists(self, order_id: str) -> bool:
        return self._find(order_id) is not None

    def iter_batch_refs(self, order_id: str, up_to_version: int | None = None) -> Iterator[BatchRef]:
        """Every batch of the order in the order it was added, read from its events."""
        for domain_event in self.events.get(self.aggregate_id(order_id), lte=up_to_version):
            if isinstance(domain_event, Order.ItemsAdded):
                yield domain_event.batch
