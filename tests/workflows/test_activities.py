"""The workflow's activities: idempotent under retries and replays."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from bulkorder.domain.application import Orders
from bulkorder.domain.summary import OrderChange
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.folder_store import FolderBlobStore
from tests.fixtures.orders import sqlite_env
from tests.workflows.helpers import store_generated
from bulkorder.workflows.activities import OrderActivities
from bulkorder.workflows.fulfillment import read_report
from bulkorder.workflows.messages import FulfillRequest


@pytest.fixture(params=["sqlite", "postgres"])
def orders(request: pytest.FixtureRequest, tmp_path: Path) -> Orders:
    env = sqlite_env(tmp_path / "events.sqlite") if request.param == "sqlite" else request.getfixturevalue("postgres_env")
    return Orders(env=env)


@pytest.fixture
def activities(orders: Orders, tmp_path: Path) -> OrderActivities:
    return OrderActivities(orders, BatchStore(FolderBlobStore(tmp_path / "blobs")))


def stored(orders: Orders, order_id: str) -> list[tuple[int, str]]:
    return [(e.originator_version, type(e).__name__) for e in orders.events.get(orders.aggregate_id(order_id))]


def test_record_activity_run_twice_writes_one_set_of_events(activities: OrderActivities) -> None:
    refs = store_generated(activities.batches, 3_000, 1_000, prefix="o-1")
    change = OrderChange("o-1", "c-1", create=True, batches=refs, submit=True)
    env = ActivityEnvironment()
    first = env.run(activities.record_order_change, change)
    # A retry after the worker died before reporting, or a second delivery: same input.
    second = env.run(activities.record_order_change, change)

    assert stored(activities.orders, "o-1") == [
        (1, "Created"), (2, "ItemsAdded"), (3, "ItemsAdded"), (4, "ItemsAdded"), (5, "Submitted")
    ]
    assert first.new_events == 5 and second.new_events == 0
    assert second.existing and second.duplicate_batch_ids == []  # the create's retry: nothing applied again
    assert first.summary == second.summary
    assert (second.summary.item_count, second.summary.status) == (3_000, "submitted")


def test_fulfill_activity_run_twice_gives_the_same_report(activities: OrderActivities) -> None:
    refs = store_generated(activities.batches, 2_500, 1_000, prefix="o-2")
    summary = activities.orders.record(OrderChange("o-2", "c-1", create=True, batches=refs, submit=True)).summary
    request = FulfillRequest("o-2", summary.item_count, summary.batch_count, summary.version)
    heartbeats: list[object] = []
    env = ActivityEnvironment()
    env.on_heartbeat = heartbeats.append
    first = env.run(activities.fulfill_order, request)
    second = env.run(activities.fulfill_order, request)
    assert first == second  # same content, same key: the blob was written once
    assert len(heartbeats) == 2 * len(refs)
    body = read_report(activities.batches.blobs, first, activities.batches.protection)
    assert (body["item_count"], first.item_count, first.sku_count) == (2_500, 2_500, len(body["skus"]))


def test_permanent_errors_become_non_retryable(activities: OrderActivities) -> None:
    env = ActivityEnvironment()
    with pytest.raises(ApplicationError) as raised:
        env.run(activities.record_order_change, OrderChange("missing", batches=[]))
    assert raised.value.non_retryable and raised.value.type == "OrderNotFoundError"
    assert "'missing' does not exist" in raised.value.message


def test_tampered_batch_is_detected_at_fulfillment(activities: OrderActivities, tmp_path: Path) -> None:
    refs = store_generated(activities.batches, 2_000, 1_000, prefix="o-3")
    summary = activities.orders.record(OrderChange("o-3", "c-1", create=True, batches=refs, submit=True)).summary
    path = tmp_path / "blobs" / refs[1].key
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ApplicationError) as raised:
        ActivityEnvironment().run(
            activities.fulfill_order, FulfillRequest("o-3", summary.item_count, summary.batch_count, summary.version)
        )
    assert raised.value.type == "BlobIntegrityError" and raised.value.non_retryable
    assert refs[1].key in raised.value.message
