"""The sweep against the real stores (a folder, moto's S3 over HTTP) and a real event
store: what it deletes, what it keeps and why, leases, the gc run fence, batched deletes."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import pytest

from bulkorder.domain.application import Orders
from bulkorder.domain.refs import BatchRef
from bulkorder.domain.summary import OrderChange
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.blob_store import BlobStore, CollectableBlobStore, content_key, sha256_hex
from bulkorder.storage.folder_store import FolderBlobStore
from bulkorder.storage.gc import (
    KEPT_LEASED,
    KEPT_PENDING,
    KEPT_RECORDED,
    KEPT_REPORT,
    KEPT_YOUNG,
    REPORT_KEY_PREFIX,
    GcError,
    Sweep,
    listed_blobs,
)
from bulkorder.storage.leases import GC_RUN_PREFIX, LEASE_PREFIX, GcRun, LeaseError, WriteLeases, read_leases
from bulkorder.storage.order_refs import OrderIndex, RecordedRoots, index_orders, recorded_roots
from bulkorder.storage.s3_store import S3BlobStore
from tests.fixtures.orders import sqlite_env
from tests.storage.items import make_items


class Roots:
    """The event store for real; the open workflows' pending refs as given (Temporal's
    side is tested in tests/workflows/test_gc_roots.py)."""

    def __init__(self, orders: Orders, pending: Iterable[str] = ()) -> None:
        self.orders = orders
        self.pending = list(pending)
        self.asked: list[list[str]] = []

    def index(self) -> OrderIndex:
        return index_orders(self.orders)

    async def pending_keys(self, order_ids: list[str]) -> Iterable[str]:
        self.asked.append(order_ids)
        return self.pending

    def recorded(self, purged: set[Any]) -> RecordedRoots:
        return recorded_roots(self.orders, purged)


@pytest.fixture(params=["folder", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "folder":
        return FolderBlobStore(tmp_path / "blobs", fsync=False)
    store = S3BlobStore(
        request.getfixturevalue("s3_bucket"), prefix="gc", endpoint_url=request.getfixturevalue("s3_endpoint"),
        region_name="us-east-1",
    )
    store.list_page_size = 7  # several pages even for a few blobs
    store.delete_batch_size = 3
    return store


@pytest.fixture
def orders(tmp_path: Path) -> Orders:
    return Orders(env=sqlite_env(tmp_path / "events.sqlite"))


def write_batch(blobs: BlobStore, name: str, count: int = 3) -> BatchRef:
    items = make_items(count)
    for item in items:
        item["name"] = f"{name} {item['name']}"
    return BatchStore(blobs).write(items)


def keys(blobs: BlobStore, prefix: str = "") -> set[str]:
    return set(blobs.iter_keys(prefix))


async def sweep(blobs: BlobStore, roots: Roots, **options: Any) -> Any:
    return await Sweep(blobs, grace=options.pop("grace", 0.0), **options).run(listed_blobs(blobs), roots)


def test_both_stores_can_be_swept(blobs: BlobStore) -> None:
    assert isinstance(blobs, CollectableBlobStore)
    ref = write_batch(blobs, "x")
    (info,) = list(blobs.iter_blob_infos("batches/"))
    assert (info.key, info.size) == (ref.key, ref.size) and abs(info.modified - time.time()) < 120


async def test_unreachable_blobs_go_and_reachable_ones_stay_each_with_its_reason(blobs: BlobStore, orders: Orders) -> None:
    recorded = write_batch(blobs, "recorded")
    orders.record(OrderChange("o-1", "c-1", create=True, batches=[recorded]))
    pending = write_batch(blobs, "pending")
    leased = write_batch(blobs, "leased")
    WriteLeases(blobs).take([leased.key])
    orphans = [write_batch(blobs, f"orphan {i}") for i in range(8)]
    stray_report = content_key(sha256_hex(b"report not yet recorded"), REPORT_KEY_PREFIX)
    blobs.put(stray_report, b"report not yet recorded")
    roots = Roots(orders, pending=[pending.key])

    report = await sweep(blobs, roots)

    assert roots.asked == [["o-1"]]  # only open orders are asked
    assert keys(blobs, "batches/") == {recorded.key, pending.key, leased.key}
    assert stray_report in keys(blobs, "reports/")
    assert report.deleted.blobs == 8 and report.deleted.bytes == sum(ref.size for ref in orphans)
    kept = {reason: tally.blobs for reason, tally in report.kept.items()}
    assert kept == {KEPT_RECORDED: 1, KEPT_PENDING: 1, KEPT_LEASED: 1, KEPT_REPORT: 1}
    assert report.scanned.blobs == 12 and report.live_leases == 1
    assert report.to_json()["deleted"] == {"blobs": 8, "bytes": report.deleted.bytes}
    if isinstance(blobs, S3BlobStore):
        assert report.delete_requests == 3  # DeleteObjects, 3 keys per request here
    assert not keys(blobs, GC_RUN_PREFIX + "/")  # the run's marker is gone


async def test_a_dry_run_deletes_nothing_and_says_what_it_would(blobs: BlobStore, orders: Orders) -> None:
    for i in range(4):
        write_batch(blobs, f"orphan {i}")
    report = await sweep(blobs, Roots(orders), dry_run=True)
    assert report.deleted.blobs == 4 and report.delete_requests == 0
    assert len(keys(blobs, "batches/")) == 4


async def test_the_grace_period_keeps_young_blobs(tmp_path: Path, orders: Orders) -> None:
    blobs = FolderBlobStore(tmp_path / "blobs", fsync=False)
    old = write_batch(blobs, "old")
    young = write_batch(blobs, "young")
    hour_ago = time.time() - 3600
    os.utime(blobs.path_for(old.key), (hour_ago, hour_ago))
    report = await sweep(blobs, Roots(orders), grace=600)
    assert keys(blobs, "batches/") == {young.key}
    assert report.kept[KEPT_YOUNG].blobs == 1 and report.deleted.blobs == 1


async def test_expired_leases_stop_counting_and_are_deleted(tmp_path: Path, orders: Orders) -> None:
    blobs = FolderBlobStore(tmp_path / "blobs", fsync=False)
    ref = write_batch(blobs, "abandoned")
    lease = WriteLeases(blobs).take([ref.key])
    two_hours_ago = time.time() - 7200
    os.utime(blobs.path_for(lease), (two_hours_ago, two_hours_ago))
    report = await sweep(blobs, Roots(orders), lease_ttl=3600)
    assert not keys(blobs) - {k for k in keys(blobs) if k.startswith(GC_RUN_PREFIX)}
    assert report.expired_leases_deleted == 1 and report.deleted.blobs == 1


async def test_a_lease_that_cannot_be_read_stops_the_sweep(blobs: BlobStore, orders: Orders) -> None:
    orphan = write_batch(blobs, "orphan")
    blobs.put(f"{LEASE_PREFIX}/garbled", b"{not json")
    with pytest.raises(LeaseError, match="lease 'leases/garbled' cannot be read"):
        await sweep(blobs, Roots(orders))
    assert orphan.key in keys(blobs)


async def test_a_pending_ref_source_that_fails_deletes_nothing(blobs: BlobStore, orders: Orders) -> None:
    orders.record(OrderChange("o-1", "c-1", create=True))
    orphan = write_batch(blobs, "orphan")

    class Unanswered(Roots):
        async def pending_keys(self, order_ids: list[str]) -> Iterable[str]:
            raise GcError("order 'o-1' did not answer")

    with pytest.raises(GcError, match="did not answer"):
        await sweep(blobs, Unanswered(orders))
    assert orphan.key in keys(blobs)


async def test_reports_of_purged_orders_go_unless_another_order_shares_them(blobs: BlobStore, orders: Orders) -> None:
    from bulkorder.domain.refs import ReportRef

    def report_of(text: bytes) -> ReportRef:
        key = content_key(sha256_hex(text), REPORT_KEY_PREFIX)
        blobs.put(key, text)
        return ReportRef(key=key, sha256=sha256_hex(text), size=len(text), sku_count=1, item_count=3, quantity=3)

    shared = write_batch(blobs, "shared")
    own = write_batch(blobs, "own")
    for order_id, batches in (("gone", [shared, own]), ("kept", [shared])):
        orders.record(OrderChange(order_id, "c-1", create=True, batches=batches, submit=True))
        orders.record(OrderChange(order_id, report=report_of(order_id.encode())))
    orders.purge_items("gone", "retention")

    report = await sweep(blobs, Roots(orders))

    assert keys(blobs, "batches/") == {shared.key}
    assert keys(blobs, "reports/") == {content_key(sha256_hex(b"kept"), REPORT_KEY_PREFIX)}
    assert report.deleted.blobs == 2


def test_a_writer_reusing_a_stored_blob_waits_for_the_gc_run_under_way(tmp_path: Path) -> None:
    """The content-addressed race: an orphan a gc run listed is what a new import's put
    finds; the writer waits for that run to end, then writes the blob again if it went."""
    blobs = FolderBlobStore(tmp_path / "blobs", fsync=False)
    ref, data = BatchStore(blobs).encode(make_items(3))
    blobs.put(ref.key, data)  # the orphan
    writer = WriteLeases(blobs, poll_seconds=0.01)
    run = GcRun(blobs).__enter__()  # a run that listed the orphan before the lease
    writer.take([ref.key])
    finished = threading.Event()

    def write() -> None:
        writer.put_fenced(ref.key, data)
        finished.set()

    thread = threading.Thread(target=write)
    thread.start()
    deadline = time.monotonic() + 10
    while writer.fenced == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.fenced == 1 and not finished.is_set()  # waiting on the run
    blobs.delete(ref.key)  # the run deletes the orphan it listed...
    run.__exit__(None, None, None)  # ...and ends
    thread.join(10)
    assert finished.is_set() and writer.rewritten == 1
    assert blobs.get(ref.key, sha256=ref.sha256) == data


def test_leases_list_their_keys(blobs: BlobStore) -> None:
    writer = WriteLeases(blobs)
    first = writer.take(["batches/aa/x", "batches/bb/y"])
    writer.take(["batches/cc/z"])
    live = read_leases(blobs)
    assert live.keys == {"batches/aa/x", "batches/bb/y", "batches/cc/z"} and live.live == 2
    writer.release([first])
    assert read_leases(blobs).keys == {"batches/cc/z"}
    with pytest.raises(ValueError):
        writer.take([])


def test_leases_are_released_in_one_request_where_the_store_deletes_many(blobs: BlobStore) -> None:
    writer = WriteLeases(blobs)
    taken = [writer.take([f"batches/aa/{n}"]) for n in range(5)]
    requests: list[str] = []
    if isinstance(blobs, S3BlobStore):
        blobs.delete_batch_size = 1000
        blobs.client.meta.events.register("before-call.s3", lambda model, **_: requests.append(model.name))
    writer.release(taken)
    if isinstance(blobs, S3BlobStore):
        assert requests == ["DeleteObjects"]  # five leases, one request
    assert read_leases(blobs).live == 0 and writer.held == []


def test_listing_streams_every_page(blobs: BlobStore) -> None:
    written = {write_batch(blobs, f"b{i}").key for i in range(20)}
    listed: Iterator[Any] = listed_blobs(blobs)()
    assert {info.key for info in listed} == written
    blobs.delete_many(sorted(written)[:10])  # type: ignore[attr-defined]
    assert keys(blobs, "batches/") == set(sorted(written)[10:])


def test_a_live_run_renews_its_marker_and_a_crashed_one_holds_nobody(tmp_path: Path) -> None:
    from bulkorder.storage.leases import live_gc_runs

    blobs = FolderBlobStore(tmp_path / "blobs", fsync=False)
    with GcRun(blobs, ttl=60, heartbeat_seconds=0.05) as run:
        first = run.key
        deadline = time.monotonic() + 10
        while run.key == first and time.monotonic() < deadline:
            time.sleep(0.01)
        assert run.key != first and live_gc_runs(blobs) == {run.run_id}
        assert len(keys(blobs, GC_RUN_PREFIX + "/")) <= 2  # the old one is deleted after the new one
        run.check_alive()
    assert live_gc_runs(blobs) == set() and not keys(blobs, GC_RUN_PREFIX + "/")

    crashed = GcRun(blobs, ttl=60)
    crashed._write_marker()  # written, never renewed, never removed: the process died
    old = time.time() - 120
    os.utime(blobs.path_for(crashed.key), (old, old))
    assert live_gc_runs(blobs, ttl=60) == set()
    ref, data = BatchStore(blobs).encode(make_items(2))
    blobs.put(ref.key, data)
    writer = WriteLeases(blobs, gc_run_ttl=60)
    assert writer.put_fenced(ref.key, data) is False and writer.fenced == 1 and writer.rewritten == 0


def test_a_run_that_could_not_renew_its_marker_stops_deleting(tmp_path: Path) -> None:
    blobs = FolderBlobStore(tmp_path / "blobs", fsync=False)
    run = GcRun(blobs, ttl=60)
    run._write_marker()
    run._renewed -= 31  # the last renewal, over half the TTL ago
    with pytest.raises(LeaseError, match="last renewed over 30s ago"):
        run.check_alive()
