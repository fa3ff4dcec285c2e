"""Retention and erasure in process: which orders they touch, the sharing rule for
content-addressed blobs, erasure refused while an import is still adding to the order."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bulkorder.data_lifecycle import DataLifecycleInputError, erase_order, purge_closed_orders
from bulkorder.domain.application import Orders
from bulkorder.domain.errors import OrderClosedError
from bulkorder.domain.identifiers import aggregate_id_for
from bulkorder.domain.sample_items import generate_items
from bulkorder.domain.summary import OrderChange
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.folder_store import FolderBlobStore
from bulkorder.storage.order_refs import index_orders, recorded_roots, root_id
from tests.fixtures.orders import OrderStack, sqlite_env


@pytest.fixture
def orders(tmp_path: Path) -> Orders:
    return Orders(env=sqlite_env(tmp_path / "events.sqlite"))


@pytest.fixture
def batches(tmp_path: Path) -> BatchStore:
    return BatchStore(FolderBlobStore(tmp_path / "blobs", fsync=False))


def keys(batches: BatchStore) -> set[str]:
    return set(batches.blobs.iter_keys("batches/"))


async def test_retention_purges_closed_orders_and_never_one_being_fulfilled(orders: Orders, batches: BatchStore) -> None:
    shared = batches.write(list(generate_items(4)))
    done = batches.write(list(generate_items(4, start=100)))
    busy = batches.write(list(generate_items(4, start=200)))
    failed = batches.write(list(generate_items(4, start=300)))
    orders.record(OrderChange("done", "c-1", create=True, batches=[shared, done], cancel_reason="no longer needed"))
    orders.record(OrderChange("busy", "c-1", create=True, batches=[shared, busy], submit=True))  # being fulfilled
    orders.record(OrderChange("failed", "c-1", create=True, batches=[failed], submit=True))
    orders.record(OrderChange("failed", fulfillment_failure="printer on fire"))

    result = await purge_closed_orders(batches.blobs, orders, None, closed_before=timedelta(0))

    assert result.purged == ["done"]
    assert keys(batches) == {shared.key, busy.key, failed.key}  # shared: "busy" still needs it
    assert result.sweep is not None and result.sweep.deleted.blobs == 1
    assert orders.get_order("done").items_purged_at is not None
    for untouched in ("busy", "failed"):
        assert orders.get_order(untouched).items_purged_at is None
    later = await purge_closed_orders(batches.blobs, orders, None, closed_before=timedelta(0))
    assert later.purged == [] and later.already_purged == 1


async def test_retention_keeps_orders_closed_after_the_cut_off(orders: Orders, batches: BatchStore) -> None:
    ref = batches.write(list(generate_items(3)))
    orders.record(OrderChange("recent", "c-1", create=True, batches=[ref], cancel_reason="x"))
    result = await purge_closed_orders(batches.blobs, orders, None, closed_before=timedelta(days=30))
    assert result.purged == [] and result.sweep is None and keys(batches) == {ref.key}
    with pytest.raises(DataLifecycleInputError, match="retention purges only"):
        await purge_closed_orders(batches.blobs, orders, None, closed_before=timedelta(0), statuses=["submitted"])


def test_the_index_and_the_roots_follow_the_events(orders: Orders, batches: BatchStore) -> None:
    kept = batches.write(list(generate_items(2)))
    gone = batches.write(list(generate_items(2, start=50)))
    orders.record(OrderChange("live", "c-1", create=True, batches=[kept]))
    orders.record(OrderChange("old", "c-1", create=True, batches=[gone], cancel_reason="x"))
    orders.purge_items("old", "retention")
    index = index_orders(orders)
    by_id = {record.order_id: record for record in index.orders.values()}
    assert by_id["live"].status == "open" and by_id["old"].status == "cancelled"
    assert by_id["old"].purged_at is not None and by_id["old"].closed_at is not None
    assert index.open_order_ids() == ["live"] and index.purged() == {aggregate_id_for("old")}
    roots = recorded_roots(orders, index.purged())
    assert roots.roots == {root_id(kept.key)} and roots.events_read == 6  # 2 + 3 + ItemsPurged


async def test_erase_is_refused_while_an_import_is_adding_then_done_once_closed(order_stack: OrderStack) -> None:
    client, orders, batches = order_stack.client, order_stack.orders, order_stack.batches
    await client.create("erase-me", "acme")
    await client.add_items("erase-me", generate_items(200), batch_size=100)
    before = keys(batches)

    with pytest.raises(OrderClosedError, match="cancel it first"):
        await erase_order(batches.blobs, orders, client.client, "erase-me", by="dpo", reason="request 1")
    assert keys(batches) == before and orders.get_order("erase-me").erased_at is None

    # The import goes on, untouched, and the order is fulfilled whole.
    await client.add_items("erase-me", generate_items(100, start=200), batch_size=100)
    await client.submit("erase-me")
    summary = await client.wait_closed("erase-me")
    assert summary.status == "fulfilled" and summary.item_count == 300 and summary.rejected_items == 0

    destroyed: list[str] = []

    def destroy(order_id: str) -> bool:  # the crypto-shredding hook, as the keyring will provide it
        destroyed.append(order_id)
        return True

    result = await erase_order(
        batches.blobs, orders, client.client, "erase-me", by="dpo", reason="request 1", destroy_key=destroy
    )
    assert destroyed == ["erase-me"] and result.key_destroyed and result.newly_erased
    assert result.sweep.deleted.blobs == 4 and keys(batches) == set()  # 3 batches and the report
    assert orders.get_order("erase-me").erased_by == "dpo"
