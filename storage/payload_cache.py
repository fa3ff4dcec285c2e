"""A bounded LRU cache of decoded payloads, measured in bytes, with hit and miss counts.

The claim-check codec (:mod:`bulkorder.storage.claim_check`) keeps the serialized original of every
payload it decodes or encodes here, keyed by blob key: blobs are immutable, so an entry is
never stale. A workflow replayed on a worker, or an activity result decoded by the worker
that just encoded it, then costs no download.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    evictions: int
    entries: int
    size_bytes: int
    capacity_bytes: int

    @property
    def hit_rate(self) -> float:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0

    def describe(self) -> str:
        return (
            f"{self.hits} hits, {self.misses} misses ({self.hit_rate:.0%} hit rate), {self.evictions} evicted, "
            f"{self.entries} entries, {self.size_bytes / 2**20:.1f} of {self.capacity_bytes / 2**20:.1f} MiB"
        )


class PayloadCache:
    """Serialized original payloads by blob key, least recently used evicted first,
    holding at most ``capacity_bytes`` (0 disables it). Safe for many threads."""

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes < 0:
            raise ValueError(f"cache capacity must be zero or more bytes, not {capacity_bytes}")
        self.capacity_bytes = capacity_bytes
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._hits = self._misses = self._evictions = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            raw = self._entries.get(key)
            if raw is None:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return raw

    def keeps(self, size: int) -> bool:
        """Whether :meth:`put` would keep a payload of ``size`` bytes (else, skip making it)."""
        return size <= self.capacity_bytes

    def put(self, key: str, raw: bytes) -> None:
        if not self.keeps(len(raw)):
            return  # would evict everything else and still not fit
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return
            self._entries[key] = raw
            self._size += len(raw)
            while self._size > self.capacity_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._size -= len(evicted)
                self._evictions += 1

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                self._hits, self._misses, self._evictions, len(self._entries), self._size, self.capacity_bytes
            )
