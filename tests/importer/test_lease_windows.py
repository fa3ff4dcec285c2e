"""The importer's write leases, one per window of batches: each written before the blobs it
names, released once all of them are acknowledged; gc running all along the import
deletes none of its blobs; a crashed importer's lease expires and its blobs then go."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Iterable

from bulkorder.domain.application import Orders
from bulkorder.domain.status import OrderStatus
from bulkorder.data_lifecycle import collect_garbage
from bulkorder.importer import ImportOptions, import_file
from bulkorder.importer.lease_windows import MAX_WINDOW, LeaseWindows
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.folder_store import FolderBlobStore
from bulkorder.storage.gc import KEPT_LEASED, KEPT_YOUNG, Sweep, listed_blobs
from bulkorder.storage.leases import LEASE_PREFIX, WriteLeases
from bulkorder.workflows.client import OrderClient
from tests.fixtures.orders import OrderStack, sqlite_env
from tests.importer.files import write_ndjson
from tests.storage.items import make_items
from tests.storage.test_gc import Roots


class RecordingFolder(FolderBlobStore):
    """The stack's own folder store, recording in order every key written (and each
    lease's document): what the importer wrote, and when, as the store saw it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.written: list[str] = []
        self.lease_keys: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes) -> bool:
        if key.startswith(LEASE_PREFIX + "/"):
            with self._lock:  # recorded before it is written: a blob put after sees it
                self.lease_keys[key] = json.loads(data)["keys"]
        written = super().put(key, data)
        with self._lock:
            self.written.append(key)
        return written


def recording_client(stack: OrderStack, root: Path) -> tuple[OrderClient, RecordingFolder]:
    store = RecordingFolder(root)
    batches = BatchStore(store, sealer=stack.batches.sealer, protection=stack.batches.protection)
    return OrderClient(stack.client.client, task_queue=stack.task_queue, batches=batches), store


async def test_one_lease_per_window_written_before_its_blobs_and_none_left_after(
    order_stack: OrderStack, tmp_path: Path
) -> None:
    path = tmp_path / "items.ndjson"
    write_ndjson(path, 20_000)
    client, store = recording_client(order_stack, tmp_path / "blobs")
    order_id = f"c-1/win-{uuid.uuid4().hex[:8]}"

    summary = await import_file(
        client, order_stack.orders, order_id, path, ImportOptions(create_customer="c-1", batch_size=100)
    )

    assert summary.batches == 200 and summary.order_batches == 200
    leased: set[str] = set()
    batch_puts = 0
    for key in store.written:
        if key.startswith(LEASE_PREFIX + "/"):
            leased |= set(store.lease_keys[key])
        elif key.startswith("batches/"):
            batch_puts += 1
            assert key in leased, f"{key} written before any lease named it"
    assert batch_puts == 200
    sizes = [len(keys) for keys in store.lease_keys.values()]
    assert sum(sizes) == 200 and max(sizes) <= MAX_WINDOW
    assert len(sizes) < 200  # windows, not a lease per batch
    assert list(store.iter_keys(LEASE_PREFIX + "/")) == []  # every window released


async def test_gc_running_all_along_an_import_of_many_batches_deletes_nothing_it_uploads(
    order_stack: OrderStack, tmp_path: Path
) -> None:
    path = tmp_path / "items.ndjson"
    write_ndjson(path, 30_000)
    client, store = recording_client(order_stack, tmp_path / "blobs")
    orphans = [order_stack.batches.write(make_items(3 + n)) for n in range(5)]
    order_id = f"c-1/gc-win-{uuid.uuid4().hex[:8]}"
    importing = asyncio.create_task(
        import_file(client, order_stack.orders, order_id, path, ImportOptions(create_customer="c-1", batch_size=100))
    )
    sweeps = []
    while not importing.done() or not sweeps:
        # No grace at all: only leases, pending refs and recorded events keep a blob.
        sweeps.append(await collect_garbage(store, order_stack.orders, order_stack.temporal, grace=0.0))
    summary = await importing

    assert summary.batches == 300 and summary.order_batches == 300
    assert sum(report.deleted.blobs for report in sweeps) >= len(orphans)  # the sweeps did delete
    assert not {ref.key for ref in orphans} & set(store.iter_keys("batches/"))
    assert any(report.live_leases for report in sweeps) or len(sweeps) == 1
    # Fulfilment reads every batch back: none missing, none unreadable.
    await order_stack.client.submit(order_id)
    closed = await order_stack.client.wait_closed(order_id, poll_seconds=0.1)
    assert closed.status == OrderStatus.FULFILLED and closed.item_count == 30_000


def test_a_crashed_importers_window_lease_expires_and_its_blobs_go_after_grace(tmp_path: Path) -> None:
    blobs = FolderBlobStore(tmp_path / "blobs", fsync=False)
    batches = BatchStore(blobs)
    windows = LeaseWindows(WriteLeases(blobs))
    encoded = [batches.encode(make_items(2 + n)) for n in range(3)]
    window = windows.take([ref.key for ref, _ in encoded])
    for ref, data in encoded:
        batches.put_encoded(ref, data, leases=windows.leases)
    assert windows.acknowledged([window, window]) == []  # two of three: the lease stays
    # The importer dies here: the third batch is never acknowledged, the lease never released.
    orders = Orders(env=sqlite_env(tmp_path / "events.sqlite"))

    def sweep(grace: float) -> object:
        return asyncio.run(Sweep(blobs, grace=grace, lease_ttl=3600).run(listed_blobs(blobs), Roots(orders)))

    live = sweep(0.0)
    assert live.kept[KEPT_LEASED].blobs == 3 and live.deleted.blobs == 0  # type: ignore[attr-defined]

    two_hours_ago = time.time() - 7200
    os.utime(blobs.path_for(window.key), (two_hours_ago, two_hours_ago))  # the lease has expired
    young = sweep(3600.0)  # the blobs themselves are still within the grace period
    assert young.kept[KEPT_YOUNG].blobs == 3 and young.deleted.blobs == 0  # type: ignore[attr-defined]
    assert young.expired_leases_deleted == 1  # type: ignore[attr-defined]

    for ref, _ in encoded:
        os.utime(blobs.path_for(ref.key), (two_hours_ago, two_hours_ago))
    gone = sweep(3600.0)
    assert gone.deleted.blobs == 3 and list(blobs.iter_keys("batches/")) == []  # type: ignore[attr-defined]
    assert list(blobs.iter_keys(LEASE_PREFIX + "/")) == []
    orders.close()


class RefusingLeaseDeletes(RecordingFolder):
    """The stack's folder store, refusing every delete of a lease (a bucket policy that
    denies deletes, a store briefly down when the import ends)."""

    def delete(self, key: str) -> None:
        if key.startswith(LEASE_PREFIX + "/"):
            raise PermissionError(f"delete of {key} denied")
        super().delete(key)

    def delete_many(self, keys: Iterable[str]) -> int:  # type: ignore[override]
        keys = list(keys)
        if any(key.startswith(LEASE_PREFIX + "/") for key in keys):
            raise PermissionError("delete of leases denied")
        return super().delete_many(keys)


async def test_leases_that_cannot_be_deleted_expire_and_do_not_fail_the_import(
    order_stack: OrderStack, tmp_path: Path
) -> None:
    path = tmp_path / "items.ndjson"
    write_ndjson(path, 2_000)
    store = RefusingLeaseDeletes(tmp_path / "blobs")
    batches = BatchStore(store, sealer=order_stack.batches.sealer, protection=order_stack.batches.protection)
    client = OrderClient(order_stack.client.client, task_queue=order_stack.task_queue, batches=batches)
    order_id = f"c-1/undeleted-{uuid.uuid4().hex[:8]}"

    summary = await import_file(client, order_stack.orders, order_id, path, ImportOptions(create_customer="c-1", batch_size=100))

    assert summary.batches == 20 and summary.order_batches == 20
    assert order_stack.orders.summary(order_id).item_count == 2_000  # recorded, every batch
    assert list(store.iter_keys(LEASE_PREFIX + "/"))  # left to expire (their TTL)
