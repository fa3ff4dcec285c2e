"""Write leases and gc run markers: what keeps garbage collection off blobs in flight.

A batch blob is written before the workflow knows of it, so for a while nothing durable
references it. A writer (the importer, ``OrderClient.add_items``) therefore takes a
*lease* first: a small object ``leases/<id>`` listing the keys it is about to write,
written **before** those blobs and deleted only once the workflow has acknowledged their
refs (an ``add_batches`` update returned, or, for signals, a query answered after them).
Garbage collection keeps every key of a live lease; a lease older than its TTL (its
writer crashed) stops counting and is deleted by gc.

Content addressing adds one race: a writer putting a batch whose identical bytes are
already stored (an orphan from a failed import, retried) writes nothing, so the old blob,
which a gc run may have listed as unreferenced *before* the lease existed, is the one the
new ref names. Every gc run therefore writes a marker ``gc-runs/<id>`` before it lists
anything and deletes it when it ends; a writer whose put found the blob already there
(:meth:`WriteLeases.put_fenced`) waits until every gc run it sees has ended, then checks
the blob is still there and writes it again if not. A gc run that starts after the lease
sees the lease; one that started before it is waited for. docs/data_protection.md gives
the whole argument.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Iterator, Sequence

from bulkorder.storage.blob_store import BlobStore, CollectableBlobStore, validate_key
from bulkorder.storage.errors import BlobNotFoundError, StorageError

LEASE_PREFIX = "leases"
GC_RUN_PREFIX = "gc-runs"
#: A lease older than this no longer protects its keys (its writer is taken for dead).
DEFAULT_LEASE_TTL = 3600.0
#: A gc run whose newest marker is older than this is taken for crashed (a live run renews
#: its marker every fifth of that, and stops deleting if it could not for half of it).
DEFAULT_GC_RUN_TTL = 300.0
#: Most keys one lease lists, and the most bytes gc reads of one.
MAX_LEASE_KEYS = 1_000
MAX_LEASE_BYTES = 1024 * 1024
LEASE_FORMAT = "bulkorder-write-lease"


class LeaseError(StorageError):
    """A lease or gc run marker that cannot be read, or a wait on gc that ran out."""


def _now_text() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _writer_name() -> str:
    return f"{socket.gethostname()[:64]}:{os.getpid()}"


@dataclass(frozen=True)
class LiveLeases:
    """What gc read under ``leases/``: the keys live leases hold, and the expired ones."""

    keys: frozenset[str]
    live: int
    expired: list[str]


def _store_listing(blobs: BlobStore, prefix: str) -> Iterator[tuple[str, float]]:
    if not isinstance(blobs, CollectableBlobStore):
        raise StorageError(f"{blobs.location} cannot list blobs with their times: it cannot be garbage collected")
    for info in blobs.iter_blob_infos(prefix + "/"):
        yield info.key, info.modified


def read_leases(blobs: BlobStore, *, ttl: float = DEFAULT_LEASE_TTL, now: float | None = None) -> LiveLeases:
    """Every key a live lease holds. A live lease that cannot be read is an error (gc
    must not guess what it protects); an expired one is listed for deletion unread."""
    now = time.time() if now is None else now
    keys: set[str] = set()
    expired: list[str] = []
    live = 0
    for key, modified in _store_listing(blobs, LEASE_PREFIX):
        if now - modified > ttl:
            expired.append(key)
            continue
        try:
            data = blobs.get(key, max_size=MAX_LEASE_BYTES)
        except BlobNotFoundError:
            continue  # released since it was listed: its refs are acknowledged
        keys.update(_lease_keys(key, data))
        live += 1
    return LiveLeases(frozenset(keys), live, expired)


def _lease_keys(lease_key: str, data: bytes) -> list[str]:
    try:
        document = json.loads(data)
        if not isinstance(document, dict) or document.get("format") != LEASE_FORMAT:
            raise ValueError("not a bulkorder write lease")
        keys = document["keys"]
        if not isinstance(keys, list) or len(keys) > MAX_LEASE_KEYS:
            raise ValueError(f"'keys' must be a list of at most {MAX_LEASE_KEYS} keys")
        return [validate_key(key) for key in keys]
    except (ValueError, KeyError, TypeError, StorageError) as exc:
        raise LeaseError(
            f"lease {lease_key!r} cannot be read ({exc}); gc will not run while it is there: "
            "delete it if no import is running"
        ) from None


class WriteLeases:
    """A writer's side: take a lease before writing blobs, release it once their refs are
    acknowledged, and put blobs so that a gc run cannot delete one found already stored.

    ``gc_run_ttl`` must match the collectors' (a marker older is a crashed run);
    ``max_wait`` bounds how long :meth:`put_fenced` waits for gc runs to end.
    """

    def __init__(
        self,
        blobs: BlobStore,
        *,
        writer: str | None = None,
        gc_run_ttl: float = DEFAULT_GC_RUN_TTL,
        poll_seconds: float = 0.05,
    ) -> None:
        self.blobs = blobs
        self.writer = (writer or _writer_name())[:200]
        self.gc_run_ttl = gc_run_ttl
        self.poll_seconds = poll_seconds
        self._session = uuid.uuid4().hex
        self._count = 0
        self._lock = threading.Lock()
        #: Blobs found already stored and checked after the gc runs then under way.
        self.fenced = 0
        #: Of those, the ones a gc run had deleted meanwhile and that were written again.
        self.rewritten = 0
        #: Leases taken and not yet released (:meth:`release_all`).
        self.held: list[str] = []

    def take(self, keys: Sequence[str]) -> str:
        """Write a lease on ``keys`` (before writing them); returns the lease's key."""
        if not keys or len(keys) > MAX_LEASE_KEYS:
            raise ValueError(f"a lease holds 1 to {MAX_LEASE_KEYS} keys, not {len(keys)}")
        with self._lock:  # upload threads take leases at once: one number each
            self._count += 1
            lease_key = f"{LEASE_PREFIX}/{self._session}-{self._count:09d}"
        document = {
            "format": LEASE_FORMAT,
            "version": 1,
            "keys": [validate_key(key) for key in keys],
            "writer": self.writer,
            "taken_at": _now_text(),
        }
        if not self.blobs.put(lease_key, json.dumps(document, separators=(",", ":")).encode()):
            raise LeaseError(f"lease {lease_key!r} already exists in {self.blobs.location}: not taken")
        with self._lock:
            self.held.append(lease_key)
        return lease_key

    def release(self, lease_keys: Iterable[str]) -> None:
        """Delete leases whose refs the workflow has acknowledged (or recorded): in one
        request (S3 DeleteObjects, 1,000 a request) where the store deletes many at once."""
        released = set(lease_keys)
        if not released:
            return
        if isinstance(self.blobs, CollectableBlobStore):
            self.blobs.delete_many(sorted(released))
        else:
            for lease_key in released:
                self.blobs.delete(lease_key)
        with self._lock:  # released from several threads at once (the importer's)
            self.held = [key for key in self.held if key not in released]

    def release_all(self) -> None:
        self.release(list(self.held))

    def put_fenced(self, key: str, data: bytes) -> bool:
        """``blobs.put(key, data)`` for a key under a lease taken before. If the blob was
        already there (written before, perhaps an orphan a gc run already listed), wait
        for the gc runs under way to end, then make sure it is still there."""
        if self.blobs.put(key, data):
            return True
        self.fenced += 1
        self.wait_for_gc_runs()
        if not self.blobs.exists(key):
            self.blobs.put(key, data)
            self.rewritten += 1
        return False

    def wait_for_gc_runs(self, max_wait: float = 6 * 3600.0) -> None:
        """Until every gc run live now has ended (or stopped renewing its marker)."""
        runs = live_gc_runs(self.blobs, ttl=self.gc_run_ttl)
        deadline = time.monotonic() + max_wait
        while runs:
            runs &= live_gc_runs(self.blobs, ttl=self.gc_run_ttl)
            if not runs:
                return
            if time.monotonic() > deadline:
                raise LeaseError(f"gc runs {sorted(runs)} in {self.blobs.location} did not end in {max_wait:.0f}s")
            time.sleep(self.poll_seconds)


class GcRun:
    """A collector's marker, written before it lists anything and deleted when it ends;
    writers that reuse a stored blob wait for it to end.

    The marker is renewed by a thread every ``heartbeat_seconds`` (a new object
    ``gc-runs/<run>-<n>``, then the old one deleted): a run whose newest marker is older
    than ``ttl`` is taken for crashed, so a killed gc holds writers up for ``ttl`` at most.
    Before each delete, :meth:`check_alive` refuses to go on if the last renewal is more
    than half the TTL old (the store unreachable, the thread stalled): a writer may soon
    take the run for dead.
    """

    def __init__(self, blobs: BlobStore, *, ttl: float = DEFAULT_GC_RUN_TTL, heartbeat_seconds: float | None = None) -> None:
        self.blobs = blobs
        self.ttl = ttl
        self.heartbeat_seconds = heartbeat_seconds if heartbeat_seconds is not None else ttl / 5
        self.run_id = uuid.uuid4().hex
        self.key = ""
        self._count = 0
        self._renewed = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write_marker(self) -> None:
        self._count += 1
        key = f"{GC_RUN_PREFIX}/{self.run_id}-{self._count:06d}"
        document = {"format": "bulkorder-gc-run", "run": self.run_id, "written_at": _now_text(), "host": _writer_name()}
        self.blobs.put(key, json.dumps(document).encode())
        old, self.key = self.key, key
        self._renewed = time.monotonic()
        if old:
            self.blobs.delete(old)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            try:
                self._write_marker()
            except StorageError:
                continue  # check_alive stops the run's deletes if this goes on

    def __enter__(self) -> GcRun:
        self._write_marker()
        self._thread = threading.Thread(target=self._heartbeat, name="bulkorder-gc-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.blobs.delete(self.key)

    def check_alive(self) -> None:
        if time.monotonic() - self._renewed > self.ttl / 2:
            raise LeaseError(
                f"gc run {self.run_id}: its marker in {self.blobs.location} was last renewed over "
                f"{self.ttl / 2:.0f}s ago; stopping before writers take the run for a crashed one"
            )


def live_gc_runs(blobs: BlobStore, *, ttl: float = DEFAULT_GC_RUN_TTL, now: float | None = None) -> set[str]:
    """The IDs of the gc runs whose newest marker is younger than ``ttl``."""
    now = time.time() if now is None else now
    newest: dict[str, float] = {}
    for key, modified in _store_listing(blobs, GC_RUN_PREFIX):
        run = key.rsplit("/", 1)[-1].rsplit("-", 1)[0]
        newest[run] = max(newest.get(run, 0.0), modified)
    return {run for run, modified in newest.items() if now - modified <= ttl}
