"""The sweep: delete the blobs nothing can reach, never one something still references.

A blob is reachable, and kept, if it is (checked in this order, each read after the one
before)

1. younger than the grace period (by the store's own clock),
2. listed by a live write lease (``bulkorder.storage.leases``: written, not yet
   acknowledged),
3. a pending ref of an open order's workflow (acknowledged, not yet recorded),
4. referenced by a recorded event of an order whose items were not purged.

A ref only ever moves down that list (lease → pending → recorded), and each stage is read
after the one above it, so a ref that moved while the sweep ran is caught by the later
stage: a lease released before stage 2 was read means its refs were acknowledged before
stage 3, and a pending ref recorded before stage 3 was read is in the log stage 4 reads
afterwards. Only blobs *listed before all of that* are candidates. A gc run marker written
before the listing covers the one remaining case, a writer reusing an already stored blob
(``WriteLeases.put_fenced``). docs/data_protection.md gives the argument in full.

Reports (``reports/...``) are deleted only when their order's items were purged and no
other order references them (a report not yet recorded is not garbage). Claim-check
payloads (``payloads/...``) have their own rule: :mod:`bulkorder.storage.payload_gc`.

Memory stays flat in the number of blobs: the listing streams into a temporary file
(one line per candidate) and is read back for the deletes; only the roots (32 bytes of
digest per referenced blob) are held. Deletes go ``delete_batch`` keys per request
(S3 DeleteObjects).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Iterator, Protocol
from uuid import UUID

from bulkorder.domain.refs import BATCH_KEY_PREFIX
from bulkorder.storage.blob_store import BlobInfo, BlobStore, CollectableBlobStore
from bulkorder.storage.errors import StorageError
from bulkorder.storage.leases import (
    DEFAULT_GC_RUN_TTL,
    DEFAULT_LEASE_TTL,
    GC_RUN_PREFIX,
    GcRun,
    read_leases,
)
from bulkorder.storage.order_refs import OrderIndex, RecordedRoots, RootId, root_id

if TYPE_CHECKING:
    from bulkorder.storage.payload_gc import PayloadSweepReport

#: Where fulfillment writes reports (``bulkorder.workflows.fulfillment.REPORT_PREFIX``).
REPORT_KEY_PREFIX = "reports"
#: What a sweep over the whole store lists.
SWEPT_PREFIXES = (BATCH_KEY_PREFIX, REPORT_KEY_PREFIX)
DEFAULT_GRACE = 24 * 3600.0
DELETE_BATCH = 1_000

# Why a blob was kept.
KEPT_YOUNG = "younger than the grace period"
KEPT_LEASED = "held by a write lease"
KEPT_PENDING = "pending in an open order's workflow"
KEPT_RECORDED = "referenced by a recorded event"
KEPT_REPORT = "report of an order not purged"


class GcError(StorageError):
    """The sweep could not be sure what is reachable: it deleted nothing more."""


class RootSource(Protocol):
    """Where the roots come from: the event store (read in a thread) and the open
    workflows (Temporal)."""

    def index(self) -> OrderIndex: ...

    def pending_keys(self, order_ids: list[str]) -> Awaitable[Iterable[str]]: ...

    def recorded(self, purged: set[UUID]) -> RecordedRoots: ...


@dataclass
class Tally:
    blobs: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.blobs += 1
        self.bytes += size


@dataclass
class SweepTallies:
    """What a sweep scanned, deleted and kept (by reason): every sweep's report has these."""

    dry_run: bool
    grace_seconds: float
    scanned: Tally = field(default_factory=Tally)
    deleted: Tally = field(default_factory=Tally)
    kept: dict[str, Tally] = field(default_factory=dict)

    def keep(self, reason: str, size: int) -> None:
        self.kept.setdefault(reason, Tally()).add(size)

    def tallies_json(self) -> dict[str, Any]:
        return {
            "grace_seconds": self.grace_seconds,
            "scanned": {"blobs": self.scanned.blobs, "bytes": self.scanned.bytes},
            "deleted": {"blobs": self.deleted.blobs, "bytes": self.deleted.bytes},
            "kept": {reason: {"blobs": t.blobs, "bytes": t.bytes} for reason, t in sorted(self.kept.items())},
        }


@dataclass
class SweepReport(SweepTallies):
    live_leases: int = 0
    expired_leases_deleted: int = 0
    stale_gc_runs_deleted: int = 0
    open_orders_asked: int = 0
    events_read: int = 0
    delete_requests: int = 0
    seconds: float = 0.0
    #: The claim-check payloads' own sweep (``bulkorder.storage.payload_gc``), when run.
    payloads: PayloadSweepReport | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            **self.tallies_json(),
            "live_leases": self.live_leases,
            "expired_leases_deleted": self.expired_leases_deleted,
            "stale_gc_runs_deleted": self.stale_gc_runs_deleted,
            "open_orders_asked": self.open_orders_asked,
            "events_read": self.events_read,
            "delete_requests": self.delete_requests,
            "seconds": round(self.seconds, 3),
            **({} if self.payloads is None else {"payloads": self.payloads.to_json()}),
        }


def listed_blobs(blobs: BlobStore, prefixes: Iterable[str] = SWEPT_PREFIXES) -> Callable[[], Iterator[BlobInfo]]:
    """The candidates of a whole-store sweep: every blob under ``prefixes``, streamed."""
    store = collectable(blobs)

    def listing() -> Iterator[BlobInfo]:
        for prefix in prefixes:
            yield from store.iter_blob_infos(prefix + "/")

    return listing


def collectable(blobs: BlobStore) -> CollectableBlobStore:
    if not isinstance(blobs, CollectableBlobStore):
        raise GcError(f"{blobs.location} cannot list blobs with their times or delete many: it cannot be swept")
    return blobs


class Sweep:
    """One sweep over ``candidates`` (see the module doc). ``grace`` seconds: a candidate
    modified more recently is kept. ``dry_run``: decide, report, delete nothing."""

    def __init__(
        self,
        blobs: BlobStore,
        *,
        grace: float = DEFAULT_GRACE,
        dry_run: bool = False,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        gc_run_ttl: float = DEFAULT_GC_RUN_TTL,
        delete_batch: int = DELETE_BATCH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if grace < 0:
            raise ValueError(f"grace must be 0 seconds or more, not {grace}")
        self.blobs = collectable(blobs)
        self.grace = grace
        self.dry_run = dry_run
        self.lease_ttl = lease_ttl
        self.gc_run_ttl = gc_run_ttl
        self.delete_batch = delete_batch
        self.clock = clock

    async def run(self, candidates: Callable[[], Iterator[BlobInfo]], roots: RootSource) -> SweepReport:
        started = time.monotonic()
        report = SweepReport(dry_run=self.dry_run, grace_seconds=self.grace)
        with GcRun(self.blobs, ttl=self.gc_run_ttl) as run, tempfile.TemporaryFile("w+", encoding="ascii") as spill:
            # 1. What exists now, and is old enough (streamed to disk, not held).
            await asyncio.to_thread(self._list, candidates, spill, report)
            # 2. Live write leases.
            now = self.clock()
            leases = await asyncio.to_thread(read_leases, self.blobs, ttl=self.lease_ttl, now=now)
            report.live_leases = leases.live
            leased = {root_id(key) for key in leases.keys}
            # 3. Pending refs of every order the event store says is open.
            index = await asyncio.to_thread(roots.index)
            open_orders = index.open_order_ids()
            report.open_orders_asked = len(open_orders)
            pending = {root_id(key) for key in await roots.pending_keys(open_orders)}
            # 4. Every key a recorded event of a non-purged order references.
            recorded = await asyncio.to_thread(roots.recorded, index.purged())
            report.events_read = recorded.events_read
            await asyncio.to_thread(self._decide_and_delete, spill, leased, pending, recorded, run, report)
            if not self.dry_run:
                report.expired_leases_deleted = self._delete_all(leases.expired)
                report.stale_gc_runs_deleted = self._delete_stale_runs(run.run_id, now)
        report.seconds = time.monotonic() - started
        return report

    def _list(self, candidates: Callable[[], Iterator[BlobInfo]], spill: Any, report: SweepReport) -> None:
        cutoff = self.clock() - self.grace
        for info in candidates():
            report.scanned.add(info.size)
            if info.modified > cutoff:
                report.keep(KEPT_YOUNG, info.size)
                continue
            spill.write(f"{info.key}\t{info.size}\n")
        spill.flush()

    def _verdict(
        self, key: str, leased: set[RootId], pending: set[RootId], recorded: RecordedRoots
    ) -> str | None:
        """Why ``key`` is kept, or ``None`` to delete it."""
        rid = root_id(key)
        if rid in leased:
            return KEPT_LEASED
        if rid in pending:
            return KEPT_PENDING
        if rid in recorded.roots:
            return KEPT_RECORDED
        if key.startswith(REPORT_KEY_PREFIX + "/") and rid not in recorded.purged_reports:
            return KEPT_REPORT
        return None

    def _decide_and_delete(
        self,
        spill: Any,
        leased: set[RootId],
        pending: set[RootId],
        recorded: RecordedRoots,
        run: GcRun,
        report: SweepReport,
    ) -> None:
        spill.seek(0)
        chunk: list[str] = []
        sizes = 0
        for line in spill:
            key, _, size_text = line.rstrip("\n").partition("\t")
            size = int(size_text)
            reason = self._verdict(key, leased, pending, recorded)
            if reason is not None:
                report.keep(reason, size)
                continue
            chunk.append(key)
            sizes += size
            if len(chunk) >= self.delete_batch:
                self._delete_chunk(chunk, sizes, run, report)
                chunk, sizes = [], 0
        if chunk:
            self._delete_chunk(chunk, sizes, run, report)

    def _delete_chunk(self, chunk: list[str], sizes: int, run: GcRun, report: SweepReport) -> None:
        if not self.dry_run:
            run.check_alive()
            report.delete_requests += self.blobs.delete_many(chunk)
        report.deleted.blobs += len(chunk)
        report.deleted.bytes += sizes

    def _delete_all(self, keys: list[str]) -> int:
        if keys:
            self.blobs.delete_many(keys)
        return len(keys)

    def _delete_stale_runs(self, own_run: str, now: float) -> int:
        """Markers of crashed runs (older than the TTL; a live run's are renewed)."""
        stale = [
            info.key
            for info in self.blobs.iter_blob_infos(GC_RUN_PREFIX + "/")
            if not info.key.rsplit("/", 1)[-1].startswith(own_run) and now - info.modified > self.gc_run_ttl
        ]
        return self._delete_all(stale)
