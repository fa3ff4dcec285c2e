"""The importer's write leases: one lease per window of consecutive batches, not per batch.

Garbage collection keeps every key a live lease lists (``bulkorder.storage.leases``). A
lease per batch costs two requests per batch besides the batch itself (the lease's put,
then its delete), each paying the store's latency. Here the upload stage takes one lease
naming the keys of every batch encoded and waiting (up to :data:`MAX_WINDOW`, gathered for
at most :data:`WINDOW_LINGER` seconds); each of those batches' uploads starts only once
that lease is written (the stage itself goes on gathering the next window meanwhile), and
the lease is deleted once the workflow has acknowledged *every* batch it names.
What gc relies on is unchanged: a lease is written before any blob it protects, lists
each of them, and outlives each one's acknowledgement. Releases are gathered too: every
lease that became releasable after one acknowledgement goes in one delete request.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Iterable, Sequence

from bulkorder.storage.leases import WriteLeases

logger = logging.getLogger(__name__)

#: Most batches one window lease names (their encoded bytes wait in memory for the lease:
#: 16 batches of 5,000 items are about 4 MB).
MAX_WINDOW = 16
#: Seconds the upload stage waits for more encoded batches before writing a window's lease.
#: 0.15 against 0.05: about four batches a window instead of two, half the lease PUTs
#: (14 against 26-29 for 60 batches), the same items/s (docs/benchmarks.md, 2026-12-01 h-cpu).
WINDOW_LINGER = 0.15


@dataclass(eq=False)
class LeaseWindow:
    """One lease and how many of the batches it names are not yet acknowledged."""

    key: str
    outstanding: int


class LeaseWindows:
    """Takes window leases through ``leases`` and releases each once all its batches are
    acknowledged. Thread-safe: acknowledgements come from the event loop, takes from a
    thread."""

    def __init__(self, leases: WriteLeases) -> None:
        self.leases = leases
        self._lock = threading.Lock()
        #: Window leases taken (one request each).
        self.taken = 0

    def take(self, keys: Sequence[str]) -> LeaseWindow:
        """Write one lease naming ``keys`` (blocking I/O: call it in a thread), before any
        of them is written."""
        window = LeaseWindow(self.leases.take(keys), len(keys))
        with self._lock:
            self.taken += 1
        return window

    def acknowledged(self, windows: Iterable[LeaseWindow]) -> list[str]:
        """One acknowledged batch per item of ``windows`` (a window once per batch of it);
        returns the keys of the leases none of whose batches is outstanding any more."""
        done: list[str] = []
        with self._lock:
            for window in windows:
                if window.outstanding <= 0:
                    raise ValueError(f"lease {window.key!r}: more batches acknowledged than it names")
                window.outstanding -= 1
                if window.outstanding == 0:
                    done.append(window.key)
        return done

    def release(self, lease_keys: list[str]) -> None:
        """Delete ``lease_keys`` (blocking I/O), in one request where the store can. Every
        batch they name is acknowledged, so a lease the store will not delete only expires
        later (its blobs are referenced now): logged, it never fails the import."""
        try:
            self.leases.release(lease_keys)
        except Exception as exc:  # noqa: BLE001 - the store's error, logged; the leases expire
            logger.warning("%d write leases not deleted (%s): left to expire", len(lease_keys), exc)
