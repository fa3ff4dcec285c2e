"""The relay: follows the event store's notification log and drives DB-first orders.

What a DB-first service records through :class:`~bulkorder.workflows.outbox.OrderOutbox` is marked
``via_outbox``; the relay reads those events in log order, a page at a time, and forwards
each order's to its workflow, then writes its position (a tracking record in the same
database as the events). Crash anywhere and restart: the relay re-reads from the last
position written, so a page is delivered at least once, and every delivery is idempotent:

- each delivery is a signal-with-start (``Created`` alone: a plain start) to the order's
  workflow ID (``order-v2-<keyed hash of its name>``; ``order-<order ID>`` for orders from
  before identities) with ``USE_EXISTING``: an open order's workflow gets the signal,
  never a second run, and a missing one is started first;
- ``REJECT_DUPLICATE`` for closed workflows: an order whose workflow has finished is never
  started again (its final state was built from this same event store);
- the workflow de-duplicates batch IDs, and the event store applies a batch ID at most
  once, so re-delivered ``ItemsAdded`` add nothing; ``submit`` and ``cancel`` are no-ops
  once applied.

Two relays on the same store are safe too (they duplicate work; positions only advance).
Crash points can be injected for fault tests (see :func:`crash_at`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable
from uuid import UUID

from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError, PersistenceError, Tracking, TrackingRecorder
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from bulkorder.domain.application import Orders
from bulkorder.domain.order import Order
from bulkorder.domain.topics import stored_topics
from bulkorder.workflows.messages import ADD_BATCHES, CANCEL, MAX_REFS_PER_CALL, SUBMIT, OrderInput, OrderLimits
from bulkorder.workflows.order_workflow import OrderWorkflow

logger = logging.getLogger(__name__)

#: The events a DB-first service records; the relay asks the store for these topics only,
#: under 0.1.0's names too (the store compares the strings it holds: domain/topics.py).
RELAYED_TOPICS = stored_topics(Order.Created, Order.ItemsAdded, Order.Submitted, Order.Cancelled)

# Named crash points, in the order a page passes them.
MID_DELIVERY = "mid-delivery"  # one order's workflow signalled, the page's others not yet
AFTER_DELIVERY = "after-delivery"  # every workflow of the page signalled, position not written
AFTER_TRACKING = "after-tracking"  # position written, the next page's workflows not started
CRASH_POINTS = (MID_DELIVERY, AFTER_DELIVERY, AFTER_TRACKING)
CRASH_EXIT_CODE = 75

#: Errors that may pass (server restarting, database locked or unreachable): back off, retry.
TRANSIENT_ERRORS = (RPCError, PersistenceError, OSError, TimeoutError)
#: Temporal answers that no retry changes (a malformed request, a payload over its limits,
#: no permission): the relay stops and says so instead of retrying one page for good.
_PERMANENT_RPC = frozenset(
    {
        RPCStatusCode.INVALID_ARGUMENT,
        RPCStatusCode.FAILED_PRECONDITION,
        RPCStatusCode.PERMISSION_DENIED,
        RPCStatusCode.UNAUTHENTICATED,
        RPCStatusCode.UNIMPLEMENTED,
        RPCStatusCode.OUT_OF_RANGE,
    }
)


class RelayStoppedError(RuntimeError):
    """The relay met an error no retry fixes; the message names the cause. Nothing after
    its position was relayed, so a relay started after the fix resumes exactly there."""


def is_transient(err: BaseException) -> bool:
    """Whether the relay should back off and retry ``err`` (visible in its retries)."""
    if isinstance(err, RPCError):
        return err.status not in _PERMANENT_RPC
    if isinstance(err, PersistenceError):
        return isinstance(err, (InterfaceError, OperationalError))
    return isinstance(err, TRANSIENT_ERRORS)


@dataclass
class RelayStats:
    """What a relay did since it started."""

    position: int = 0
    pages: int = 0
    events: int = 0
    #: Signal-with-start (or start) calls made to order workflows.
    deliveries: int = 0
    #: Deliveries skipped because the order's workflow had already closed.
    closed: int = 0
    retries: int = 0


@dataclass
class _OrderDelivery:
    order_id: str
    customer_id: str
    #: (signal name, signal args) in log order; empty: start the workflow only.
    signals: list[tuple[str, list[Any]]] = field(default_factory=list)

    def add_batch(self, ref: Any) -> None:
        if self.signals and self.signals[-1][0] == ADD_BATCHES and len(self.signals[-1][1][0]) < MAX_REFS_PER_CALL:
            self.signals[-1][1][0].append(ref)
        else:
            self.signals.append((ADD_BATCHES, [[ref]]))


class OrderRelay:
    """Forwards DB-first orders' events from ``orders`` to their workflows.

    ``name`` keys the position (several relays can follow one store, e.g. per task queue);
    ``fault`` is called at each crash point (tests inject crashes with it).
    """

    def __init__(
        self,
        client: Client,
        orders: Orders,
        *,
        task_queue: str,
        limits: OrderLimits | None = None,
        name: str = "default",
        page_size: int = 500,
        concurrency: int = 8,
        fault: Callable[[str], None] | None = None,
    ) -> None:
        if page_size <= 0 or concurrency <= 0:
            raise ValueError("page_size and concurrency must be positive")
        self.client = client
        self.orders = orders
        self.task_queue = task_queue
        self.limits = limits or OrderLimits()
        self.tracking_name = f"{orders.name}.relay.{name}"
        self.page_size = page_size
        self.stats = RelayStats()
        self._slots = asyncio.Semaphore(concurrency)
        self._fault = fault or (lambda point: None)
        self._tracking: TrackingRecorder = orders.factory.tracking_recorder()
        # Aggregate ID -> (order ID, customer ID), for events that carry neither.
        self._orders_seen: OrderedDict[UUID, tuple[str, str]] = OrderedDict()

    # ---- position --------------------------------------------------------------------

    def position(self) -> int:
        """ID of the last notification relayed (0: none yet)."""
        return self._tracking.max_tracking_id(self.tracking_name) or 0

    def lag(self) -> int:
        """Notifications (of any kind) recorded after the position: 0 means caught up."""
        return max(0, (self.orders.recorder.max_notification_id() or 0) - self.position())

    def _track(self, notification_id: int) -> None:
        try:
            self._tracking.insert_tracking(Tracking(self.tracking_name, notification_id))
        except IntegrityError:
            # Another relay with this name is already past this page: nothing to do.
            logger.info("relay %s: position %d already passed", self.tracking_name, notification_id)

    # ---- relaying --------------------------------------------------------------------

    async def relay_page(self) -> int:
        """Deliver the next page of outbox events; the number relayed (0: caught up)."""
        position = await asyncio.to_thread(self.position)
        # Read the log's end first: every notification up to it is committed (the event
        # store commits them in ID order), so a page ending there skips nothing.
        last = await asyncio.to_thread(self.orders.recorder.max_notification_id) or 0
        notifications = await asyncio.to_thread(
            self.orders.recorder.select_notifications,
            position,
            self.page_size,
            last,
            topics=RELAYED_TOPICS,
            inclusive_of_start=False,
        )
        if not notifications:
            if last > position:
                # Only workflow-first events since the position: move past them.
                await asyncio.to_thread(self._track, last)
            self.stats.position = max(position, last)
            return 0
        deliveries = await asyncio.to_thread(self._plan, notifications)
        first = True
        pending = []
        for delivery in deliveries:
            if first:
                # Sequential first delivery, so the mid-delivery crash point is well defined.
                await self._deliver(delivery)
                self._fault(MID_DELIVERY)
                first = False
            else:
                pending.append(self._deliver(delivery))
        await asyncio.gather(*pending)
        self._fault(AFTER_DELIVERY)
        await asyncio.to_thread(self._track, notifications[-1].id)
        self._fault(AFTER_TRACKING)
        self.stats.position = notifications[-1].id
        self.stats.pages += 1
        self.stats.events += len(notifications)
        return len(notifications)

    async def drain(self) -> RelayStats:
        """Relay until caught up with the log (errors propagate)."""
        while await self.relay_page():
            pass
        return self.stats

    async def run(self, stop: asyncio.Event, *, poll_interval: float = 0.5, max_backoff: float = 10.0) -> RelayStats:
        """Relay until ``stop`` is set, polling when caught up and backing off while
        Temporal or the event store is unavailable."""
        backoff = poll_interval
        while not stop.is_set():
            try:
                relayed = await self.relay_page()
            except TRANSIENT_ERRORS as err:
                if not is_transient(err):
                    raise RelayStoppedError(
                        f"relay {self.tracking_name} stopped at position {self.stats.position}: "
                        f"{type(err).__name__}: {getattr(err, 'message', None) or err} (retrying cannot fix this)"
                    ) from err
                self.stats.retries += 1
                logger.warning("relay %s: %s; retrying in %.1f s", self.tracking_name, err, backoff)
                await _wait(stop, backoff)
                backoff = min(backoff * 2, max_backoff)
                continue
            backoff = poll_interval
            if not relayed:
                await _wait(stop, poll_interval)
        return self.stats

    def _plan(self, notifications: list[Any]) -> list[_OrderDelivery]:
        """Group the page's outbox events by order, keeping each order's in log order."""
        deliveries: dict[UUID, _OrderDelivery] = {}
        for notification in notifications:
            event = self.orders.mapper.to_domain_event(notification)
            if not getattr(event, "via_outbox", False):
                continue  # recorded by a workflow (workflow-first): it already knows
            aggregate_id = event.originator_id
            if isinstance(event, Order.Created):
                self._remember(aggregate_id, event.order_id, event.customer_id)
            order_id, customer_id = self._order_of(aggregate_id)
            delivery = deliveries.setdefault(aggregate_id, _OrderDelivery(order_id, customer_id))
            if isinstance(event, Order.ItemsAdded):
                delivery.add_batch(event.batch)
            elif isinstance(event, Order.Submitted):
                delivery.signals.append((SUBMIT, []))
            elif isinstance(event, Order.Cancelled):
                delivery.signals.append((CANCEL, [event.reason]))
        return list(deliveries.values())

    def _remember(self, aggregate_id: UUID, order_id: str, customer_id: str) -> None:
        self._orders_seen[aggregate_id] = (order_id, customer_id)
        self._orders_seen.move_to_end(aggregate_id)
        while len(self._orders_seen) > 10_000:
            self._orders_seen.popitem(last=False)

    def _order_of(self, aggregate_id: UUID) -> tuple[str, str]:
        known = self._orders_seen.get(aggregate_id)
        if known is None:
            created = next(iter(self.orders.events.get(aggregate_id, lte=1)), None)
            if not isinstance(created, Order.Created):
                raise RelayStoppedError(f"aggregate {aggregate_id} has outbox events but no Created event")
            self._remember(aggregate_id, created.order_id, created.customer_id)
            known = (created.order_id, created.customer_id)
        return known

    async def _deliver(self, delivery: _OrderDelivery) -> None:
        async with self._slots:
            start = OrderInput(
                order_id=delivery.order_id,
                customer_id=delivery.customer_id,
                limits=self.limits,
                create_via_update=False,
                via_outbox=True,
            )
            options: dict[str, Any] = dict(
                # The name's keyed hash (a bare 0.x order ID: its old ID), never the name.
                id=self.orders.identity.workflow_id_of_stored(delivery.order_id),
                task_queue=self.task_queue,
                # An open order's workflow gets the signal; a second run is never created.
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                # A closed order's workflow is never started again.
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
            calls = delivery.signals or [(None, [])]
            for signal, args in calls:
                try:
                    await self.client.start_workflow(
                        OrderWorkflow.run, start, start_signal=signal, start_signal_args=args, **options
                    )
                except WorkflowAlreadyStartedError:
                    # The workflow closed: every later event of this order was recorded
                    # before it closed and is already part of its final state.
                    self.stats.closed += 1
                    return
                self.stats.deliveries += 1


def crash_at(spec: str) -> Callable[[str], None]:
    """A fault hook for tests: ``"after-tracking"`` or ``"after-tracking:3"`` kills the
    process (``os._exit``, no cleanup, like SIGKILL) the 1st or 3rd time it passes that point."""
    point, _, nth = spec.partition(":")
    if point not in CRASH_POINTS:
        raise ValueError(f"unknown relay crash point {point!r}: expected one of {', '.join(CRASH_POINTS)}")
    remaining = int(nth or 1)
    if remaining <= 0:
        raise ValueError(f"relay crash point {spec!r}: the count must be positive")

    def hook(reached: str) -> None:
        nonlocal remaining
        if reached == point:
            remaining -= 1
            if remaining == 0:
                logger.warning("relay: crashing at %s (fault injection)", point)
                os._exit(CRASH_EXIT_CODE)

    return hook


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass
