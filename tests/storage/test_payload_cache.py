"""The decoded-payload cache: least recently used out first, never over its size."""

from __future__ import annotations

from bulkorder.storage.payload_cache import PayloadCache


def test_least_recently_used_is_evicted_first() -> None:
    cache = PayloadCache(capacity_bytes=30)
    cache.put("a", b"a" * 10)
    cache.put("b", b"b" * 10)
    cache.put("c", b"c" * 10)
    assert cache.get("a") == b"a" * 10  # "b" is now the least recently used
    cache.put("d", b"d" * 10)
    assert cache.get("b") is None
    assert [cache.get(key) is not None for key in "acd"] == [True, True, True]
    stats = cache.stats()
    assert (stats.entries, stats.size_bytes, stats.evictions) == (3, 30, 1)
    assert (stats.hits, stats.misses) == (4, 1) and stats.hit_rate == 0.8


def test_an_entry_larger_than_the_cache_is_not_kept() -> None:
    cache = PayloadCache(capacity_bytes=10)
    cache.put("small", b"s" * 5)
    cache.put("huge", b"h" * 11)
    assert cache.get("huge") is None and cache.get("small") == b"s" * 5
    assert cache.stats().evictions == 0


def test_zero_capacity_keeps_nothing_and_counts_misses() -> None:
    cache = PayloadCache(capacity_bytes=0)
    cache.put("a", b"x")
    assert cache.get("a") is None
    assert "0% hit rate" in cache.stats().describe()
