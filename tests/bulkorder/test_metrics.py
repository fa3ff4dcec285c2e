"""bulkorder's own metrics: what the record hook counts, the metered blob store, the cache
collector and the metrics file. Against real stores: a folder, the orders application."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from bulkorder.domain.application import Orders
from bulkorder.domain.items import validate_item_dicts
from bulkorder.domain.sample_items import generate_items
from bulkorder.domain.summary import OrderChange, Rejection
from bulkorder.metrics import ClaimCheckCacheCollector, MeteredBlobStore, metered, record_observed, write_metrics_file
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.errors import BlobNotFoundError
from bulkorder.storage.folder_store import FolderBlobStore
from bulkorder.storage.payload_cache import PayloadCache
from tests.fixtures.orders import sqlite_env


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_record_hook_counts_what_the_event_store_applied(tmp_path: Path) -> None:
    batches = BatchStore(FolderBlobStore(tmp_path / "blobs"))
    refs = [batches.write(validate_item_dicts(list(generate_items(10, start=i * 10))), batch_id=f"m-{i}") for i in range(3)]
    orders = Orders(env=sqlite_env(tmp_path / "events.sqlite"))
    before = {
        "items": value("bulkorder_items_recorded_total"),
        "batches": value("bulkorder_batches_recorded_total"),
        "unproven": value("bulkorder_batches_rejected_total", reason="unproven"),
        "other": value("bulkorder_batches_rejected_total", reason="other"),
        "records": value("bulkorder_record_activity_seconds_count"),
    }
    try:
        orders.record(OrderChange(order_id="m", customer_id="c", create=True))
        first = OrderChange(order_id="m", batches=refs[:2], rejections=[Rejection("bad", "unproven claims", code="unproven")])
        record_observed(first, orders.record(first), 0.01)
        # Again, with one batch more: the two already recorded are duplicates, not counted.
        again = OrderChange(order_id="m", batches=refs, rejections=[Rejection("old", "no code")])
        record_observed(again, orders.record(again), 0.02)
    finally:
        orders.close()
    assert value("bulkorder_items_recorded_total") - before["items"] == 30
    assert value("bulkorder_batches_recorded_total") - before["batches"] == 3
    assert value("bulkorder_batches_rejected_total", reason="unproven") - before["unproven"] == 1
    assert value("bulkorder_batches_rejected_total", reason="other") - before["other"] == 1
    assert value("bulkorder_record_activity_seconds_count") - before["records"] == 2


def test_the_metered_store_times_and_counts_by_operation(tmp_path: Path) -> None:
    store = metered(FolderBlobStore(tmp_path / "blobs"))
    assert isinstance(store, MeteredBlobStore) and metered(store) is store
    puts, put_bytes = value("bulkorder_blob_store_request_seconds_count", operation="put"), value("bulkorder_blob_store_bytes_total", operation="put")
    gets, get_bytes = value("bulkorder_blob_store_request_seconds_count", operation="get"), value("bulkorder_blob_store_bytes_total", operation="get")
    missing = value("bulkorder_blob_store_errors_total", operation="get", error="BlobNotFoundError")
    assert store.put("a/one", b"x" * 100) is True
    assert store.put("a/one", b"x" * 100) is False  # exists: no bytes moved
    assert store.get("a/one") == b"x" * 100
    with pytest.raises(BlobNotFoundError):
        store.get("a/two")
    assert list(store.iter_keys("a/")) == ["a/one"] and store.size("a/one") == 100 and store.location
    assert value("bulkorder_blob_store_request_seconds_count", operation="put") - puts == 2
    assert value("bulkorder_blob_store_bytes_total", operation="put") - put_bytes == 100
    assert value("bulkorder_blob_store_request_seconds_count", operation="get") - gets == 2
    assert value("bulkorder_blob_store_bytes_total", operation="get") - get_bytes == 100
    assert value("bulkorder_blob_store_errors_total", operation="get", error="BlobNotFoundError") - missing == 1


def test_the_cache_is_read_when_scraped_and_the_file_is_prometheus_text(tmp_path: Path) -> None:
    cache = PayloadCache(1_000)
    cache.put("k", b"payload")
    cache.get("k"), cache.get("absent")
    registry = CollectorRegistry()
    registry.register(ClaimCheckCacheCollector(cache.stats))
    assert registry.get_sample_value("bulkorder_claim_check_cache_hits_total") == 1
    assert registry.get_sample_value("bulkorder_claim_check_cache_misses_total") == 1
    assert registry.get_sample_value("bulkorder_claim_check_cache_bytes") == 7
    cache.get("k")
    assert registry.get_sample_value("bulkorder_claim_check_cache_hits_total") == 2, "read at each scrape"
    text = write_metrics_file(tmp_path / "figures.prom", registry).read_text()
    assert "# TYPE bulkorder_claim_check_cache_hits_total counter" in text and "bulkorder_claim_check_cache_hits_total 2.0" in text
