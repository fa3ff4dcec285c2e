"""bulkorder's own Prometheus metrics: every definition in one place (docs/operations.md).

The layers below expose plain hooks and never import this module: the record activity
calls ``on_recorded`` (:data:`bulkorder.workflows.activities.RecordHook`), blob stores are
wrapped by :class:`MeteredBlobStore`, and the claim-check cache is read at scrape time by
:class:`ClaimCheckCacheCollector`. The run history length is recorded through Temporal's
own metric meter (:mod:`bulkorder.workflow_metrics`), so it appears beside the SDK's
metrics on the same ``/metrics`` page.

Metrics live in prometheus-client's default registry: one process, one set of figures,
served by ``bulkorder worker --metrics-port`` (:mod:`bulkorder.ops_server`) or written by
``bulkorder import --metrics-out FILE`` (:func:`write_metrics_file`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from bulkorder.domain.summary import REJECTED_ORDER_LIMIT, OrderChange, RecordOutcome
from bulkorder.storage.blob_store import BlobStore
from bulkorder.storage.payload_cache import CacheStats

#: Seconds, from a local folder's sub-millisecond reads to a slow S3 request.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

ITEMS_RECORDED = Counter(
    "bulkorder_items_recorded", "Items of the batches this worker recorded in the event store (ItemsAdded, duplicates not counted)"
)
BATCHES_RECORDED = Counter(
    "bulkorder_batches_recorded", "Batches this worker recorded in the event store (one ItemsAdded event each)"
)
BATCHES_REJECTED = Counter(
    "bulkorder_batches_rejected",
    "Batches this worker recorded as BatchRejected, by reason code (bulkorder.domain.order.REJECTED_*)",
    ["reason"],
)
RECORD_SECONDS = Histogram(
    "bulkorder_record_activity_seconds",
    "Duration of the record activity (proving the refs and one event-store transaction)",
    buckets=_LATENCY_BUCKETS,
)
BLOB_SECONDS = Histogram(
    "bulkorder_blob_store_request_seconds", "Blob store request latency by operation", ["operation"], buckets=_LATENCY_BUCKETS
)
BLOB_BYTES = Counter("bulkorder_blob_store_bytes", "Bytes moved to or from the blob store by operation", ["operation"])
BLOB_ERRORS = Counter(
    "bulkorder_blob_store_errors", "Blob store requests that raised, by operation and error class", ["operation", "error"]
)
IMPORT_ITEMS = Gauge("bulkorder_import_items", "Items sent by this bulkorder import (its last run)")
IMPORT_BATCHES = Gauge("bulkorder_import_batches", "Batches sent by this bulkorder import (its last run)")
IMPORT_REJECTED_LINES = Gauge("bulkorder_import_rejected_lines", "Input lines this bulkorder import refused")
IMPORT_SECONDS = Gauge("bulkorder_import_seconds", "Wall time of this bulkorder import")

#: The reason label of a rejection made before reason codes travelled with rejections.
UNCODED_REASON = "other"


def record_observed(change: OrderChange, outcome: RecordOutcome, seconds: float) -> None:
    """The record activity's hook (``build_worker(on_recorded=...)``): count what it recorded.

    Items and batches count only the batches the event store applied now
    (``applied_batch_ids``), so a retried activity or a duplicate ref counts once.
    Rejections count each time a record call carries them (a rejection retried after a
    lost reply counts twice: an alert on ``increase() > 0`` does not mind).
    """
    RECORD_SECONDS.observe(seconds)
    applied = set(outcome.applied_batch_ids)
    if applied:
        BATCHES_RECORDED.inc(len(applied))
        ITEMS_RECORDED.inc(sum(ref.item_count for ref in change.batches if ref.batch_id in applied))
    for rejection in change.rejections:
        BATCHES_REJECTED.labels(rejection.code or UNCODED_REASON).inc()
    # Batches the aggregate refused for the order's limits were neither applied nor duplicates.
    refused = len(change.batches) - len(applied) - len(outcome.duplicate_batch_ids)
    if refused > 0:
        BATCHES_REJECTED.labels(REJECTED_ORDER_LIMIT).inc(refused)


_T = TypeVar("_T")


class MeteredBlobStore:
    """A :class:`~bulkorder.storage.blob_store.BlobStore` that times every request and counts
    its bytes (``operation`` = put, get, exists, delete, size, list). Anything else is the
    wrapped store's."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def __repr__(self) -> str:
        return f"MeteredBlobStore({self.store!r})"

    @property
    def location(self) -> str:
        return self.store.location

    def _timed(self, operation: str, call: Callable[[], _T]) -> _T:
        started = time.perf_counter()
        try:
            return call()
        except Exception as exc:
            BLOB_ERRORS.labels(operation, type(exc).__name__).inc()
            raise
        finally:
            BLOB_SECONDS.labels(operation).observe(time.perf_counter() - started)

    def put(self, key: str, data: bytes) -> bool:
        written = self._timed("put", lambda: self.store.put(key, data))
        if written:
            BLOB_BYTES.labels("put").inc(len(data))
        return written

    def get(self, key: str, *, sha256: str | None = None, max_size: int | None = None) -> bytes:
        data = self._timed("get", lambda: self.store.get(key, sha256=sha256, max_size=max_size))
        BLOB_BYTES.labels("get").inc(len(data))
        return data

    def exists(self, key: str) -> bool:
        return self._timed("exists", lambda: self.store.exists(key))

    def delete(self, key: str) -> None:
        self._timed("delete", lambda: self.store.delete(key))

    def size(self, key: str) -> int:
        return self._timed("size", lambda: self.store.size(key))

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        # A listing is many requests over time: timed as a whole when it is used up.
        started = time.perf_counter()
        try:
            yield from self.store.iter_keys(prefix)
        finally:
            BLOB_SECONDS.labels("list").observe(time.perf_counter() - started)


def metered(store: BlobStore) -> BlobStore:
    """``store`` with its requests measured (never wrapped twice)."""
    return store if isinstance(store, MeteredBlobStore) else MeteredBlobStore(store)  # type: ignore[return-value]


class ClaimCheckCacheCollector(Collector):
    """The claim-check codec's payload cache, read when scraped (no hook in the cache)."""

    def __init__(self, stats: Callable[[], CacheStats]) -> None:
        self.stats = stats

    def collect(self) -> Iterable[Any]:
        stats = self.stats()
        prefix = "bulkorder_claim_check_cache"
        yield CounterMetricFamily(f"{prefix}_hits", "Claim-check payloads served from the cache", value=stats.hits)
        yield CounterMetricFamily(f"{prefix}_misses", "Claim-check payloads not in the cache (downloaded)", value=stats.misses)
        yield CounterMetricFamily(f"{prefix}_evictions", "Claim-check cache entries evicted", value=stats.evictions)
        yield GaugeMetricFamily(f"{prefix}_bytes", "Bytes held by the claim-check cache", value=stats.size_bytes)
        yield GaugeMetricFamily(f"{prefix}_capacity_bytes", "Capacity of the claim-check cache", value=stats.capacity_bytes)


_cache_collector: ClaimCheckCacheCollector | None = None


def watch_claim_check_cache(stats: Callable[[], CacheStats], registry: CollectorRegistry = REGISTRY) -> None:
    """Report this cache at ``/metrics`` (once per process: a second call replaces the source)."""
    global _cache_collector
    if _cache_collector is None:
        _cache_collector = ClaimCheckCacheCollector(stats)
        registry.register(_cache_collector)
    else:
        _cache_collector.stats = stats


def write_metrics_file(path: str | os.PathLike[str], registry: CollectorRegistry = REGISTRY) -> Path:
    """The process's figures in Prometheus text format, written whole (temporary file, then
    rename): what node_exporter's textfile collector reads."""
    target = Path(path)
    write_to_textfile(str(target), registry)
    return target
