"""The end of an order's data: garbage collection, retention and erasure.

All three delete through one :class:`~bulkorder.storage.gc.Sweep`, so all three keep a
blob that anything still reaches (a live write lease, an open workflow's pending ref, a
recorded event of an order not purged): content-addressed blobs are shared by every
order whose items are identical, and deleting one order's items must not take another's.

- :func:`collect_garbage`: every blob under ``batches/`` and ``reports/`` older than the
  grace period and unreachable.
- :func:`purge_closed_orders` (retention): records ``ItemsPurged`` on each fulfilled or
  cancelled order closed before the cut-off, *then* sweeps that order's keys; the events
  and counters stay, readers say the items were purged.
- :func:`erase_order` (the right to be forgotten): refused while the order can still
  change (open, submitted, failed: cancel it first); else destroys the order's data key
  (``destroy_order_key``, crypto-shredding), records ``OrderErased`` (who, why, when),
  then sweeps its keys. Running it again finishes an erasure a crash interrupted.
"""

from __future__ import annotations

import functools
import getpass
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator
from uuid import UUID

from temporalio.client import Client

from bulkorder.domain.application import Orders
from bulkorder.domain.errors import BulkorderError, OrderClosedError, OrderNotFoundError
from bulkorder.domain.identity import order_key
from bulkorder.domain.order import Order
from bulkorder.domain.summary import OrderStatus
from bulkorder.storage.blob_store import BlobInfo, BlobStore
from bulkorder.storage.gc import DEFAULT_GRACE, RootSource, Sweep, SweepReport, collectable, listed_blobs
from bulkorder.storage.leases import DEFAULT_GC_RUN_TTL, DEFAULT_LEASE_TTL
from bulkorder.storage.order_refs import OrderIndex, RecordedRoots, index_orders, order_keys, root_id
from bulkorder.storage.payload_gc import sweep_payloads
from bulkorder.workflows.gc_roots import OrderRoots, workflows_gone

#: Statuses retention may purge (an order being fulfilled, or failed and waiting for an
#: operator, is never touched).
PURGEABLE_STATUSES = (OrderStatus.FULFILLED, OrderStatus.CANCELLED)

#: Destroys an order's data key; ``True`` if a key was destroyed.
OrderKeyDestroyer = Callable[[str], bool]


def destroy_order_key(order_id: str) -> bool:
    """THE crypto-shredding hook, wired at merge to the keyring's ``destroy_order_key``
    (per-order data keys, issue 12's encryption half). Until then there is no per-order
    key to destroy: erasure deletes the order's blobs and records ``key_destroyed=False``."""
    return False


class DataLifecycleInputError(BulkorderError, ValueError):
    """Bad input to gc, retention or erasure (a status retention does not purge, an empty
    reason): nothing was recorded or deleted."""


@dataclass(frozen=True)
class SweepOptions:
    dry_run: bool = False
    lease_ttl: float = DEFAULT_LEASE_TTL
    gc_run_ttl: float = DEFAULT_GC_RUN_TTL


class _WithPurged:
    """Roots as if ``extra`` orders were purged too (a retention dry run, before anything
    is recorded)."""

    def __init__(self, roots: RootSource, extra: set[UUID]) -> None:
        self.roots = roots
        self.extra = extra

    def index(self) -> OrderIndex:
        return self.roots.index()

    async def pending_keys(self, order_ids: list[str]) -> Iterable[str]:
        return await self.roots.pending_keys(order_ids)

    def recorded(self, purged: set[UUID]) -> RecordedRoots:
        return self.roots.recorded(purged | self.extra)


def _keys_of(orders: Orders, aggregates: list[UUID]) -> Callable[[], Iterator[BlobInfo]]:
    def listing() -> Iterator[BlobInfo]:
        seen: set[bytes | str] = set()
        for aggregate in aggregates:
            for key, size in order_keys(orders, aggregate):
                rid = root_id(key)
                if rid not in seen:
                    seen.add(rid)
                    yield BlobInfo(key, size, 0.0)  # listed from events: always past any grace

    return listing


async def collect_garbage(
    blobs: BlobStore,
    orders: Orders,
    client: Client | None,
    *,
    grace: float = DEFAULT_GRACE,
    options: SweepOptions = SweepOptions(),
) -> SweepReport:
    sweep = Sweep(blobs, grace=grace, dry_run=options.dry_run, lease_ttl=options.lease_ttl, gc_run_ttl=options.gc_run_ttl)
    report = await sweep.run(listed_blobs(blobs), OrderRoots(orders, client))
    gone = None if client is None else functools.partial(workflows_gone, client)
    report.payloads = await sweep_payloads(collectable(blobs), gone, grace=grace, dry_run=options.dry_run)
    return report


@dataclass
class RetentionResult:
    closed_before: datetime
    statuses: tuple[str, ...]
    #: Orders purged by this run (in a dry run: that would be).
    purged: list[str] = field(default_factory=list)
    #: Orders already purged before (their blobs are gc's to finish).
    already_purged: int = 0
    sweep: SweepReport | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "closed_before": self.closed_before.isoformat().replace("+00:00", "Z"),
            "statuses": list(self.statuses),
            "purged_orders": self.purged,
            "already_purged": self.already_purged,
            "sweep": None if self.sweep is None else self.sweep.to_json(),
        }


async def purge_closed_orders(
    blobs: BlobStore,
    orders: Orders,
    client: Client | None,
    *,
    closed_before: timedelta,
    statuses: Iterable[str] = PURGEABLE_STATUSES,
    options: SweepOptions = SweepOptions(),
    now: datetime | None = None,
) -> RetentionResult:
    statuses = tuple(statuses)
    bad = [status for status in statuses if status not in PURGEABLE_STATUSES]
    if bad or not statuses:
        raise DataLifecycleInputError(f"retention purges only {', '.join(PURGEABLE_STATUSES)} orders, not {', '.join(bad) or 'none'}")
    cutoff = (now or datetime.now(timezone.utc)) - closed_before
    result = RetentionResult(closed_before=cutoff, statuses=statuses)
    index = index_orders(orders)
    selected: list[UUID] = []
    for aggregate, record in index.orders.items():
        if record.status not in statuses or record.closed_at is None or record.closed_at >= cutoff:
            continue
        if record.purged_at is not None:
            result.already_purged += 1
            continue
        if not options.dry_run:
            reason = f"retention: {record.status} before {result.to_json()['closed_before']}"
            try:
                orders.purge_items(record.order_id, reason)
            except OrderClosedError:
                continue  # changed since it was read (retried fulfillment): not purged
        selected.append(aggregate)
        result.purged.append(record.order_id)
    result.purged.sort()
    if selected:
        sweep = Sweep(blobs, grace=0.0, dry_run=options.dry_run, lease_ttl=options.lease_ttl, gc_run_ttl=options.gc_run_ttl)
        result.sweep = await sweep.run(_keys_of(orders, selected), _WithPurged(OrderRoots(orders, client), set(selected)))
    return result


@dataclass
class ErasureResult:
    order_id: str
    by: str
    reason: str
    erased_at: datetime
    #: False: erased before (this run finished its deletes).
    newly_erased: bool
    key_destroyed: bool
    sweep: SweepReport

    def to_json(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "by": self.by,
            "reason": self.reason,
            "erased_at": self.erased_at.isoformat().replace("+00:00", "Z"),
            "newly_erased": self.newly_erased,
            "key_destroyed": self.key_destroyed,
            "sweep": self.sweep.to_json(),
        }


def default_eraser() -> str:
    """Who erases, when ``--by`` is not given: the operating-system user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


async def erase_order(
    blobs: BlobStore,
    orders: Orders,
    client: Client | None,
    order_id: str,
    *,
    by: str,
    reason: str,
    destroy_key: OrderKeyDestroyer = destroy_order_key,
    options: SweepOptions = SweepOptions(),
) -> ErasureResult:
    order_id = order_key(order_id)  # the order's name (or a 0.x order's bare ID)
    if not reason.strip():
        raise DataLifecycleInputError("an erasure needs a reason (it is recorded)")
    order = orders.get_order(order_id)  # OrderNotFoundError
    newly = order.erased_at is None
    if newly:
        if order.status not in PURGEABLE_STATUSES:
            raise OrderClosedError(order_id, order.status, "erase it while it can still change (cancel it first)")
        # Key first: the items are unreadable from here on, even if the rest fails.
        key_destroyed = bool(destroy_key(order_id))
        orders.erase(order_id, by=by, reason=reason, key_destroyed=key_destroyed)
        order = orders.get_order(order_id)
    aggregate_id = orders.aggregate_id(order_id)
    erased = [e for e in orders.events.get(aggregate_id) if isinstance(e, Order.OrderErased)]
    if not erased:
        raise OrderNotFoundError(order_id)
    event = erased[0]
    sweep = Sweep(blobs, grace=0.0, dry_run=False, lease_ttl=options.lease_ttl, gc_run_ttl=options.gc_run_ttl)
    report = await sweep.run(_keys_of(orders, [aggregate_id]), OrderRoots(orders, client))
    return ErasureResult(
        order_id=order_id,
        by=event.by,
        reason=event.reason,
        erased_at=event.timestamp,
        newly_erased=newly,
        key_destroyed=event.key_destroyed,
        sweep=report,
    )


__all__ = [
    "DEFAULT_GRACE", "PURGEABLE_STATUSES", "DataLifecycleInputError", "ErasureResult", "RetentionResult", "SweepOptions", "collect_garbage",
    "default_eraser", "destroy_order_key", "erase_order", "purge_closed_orders",
]
