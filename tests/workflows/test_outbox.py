"""``OrderOutbox``: DB-first changes are recorded synchronously, once, or refused whole."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from bulkorder.domain.application import Orders
from bulkorder.domain.errors import EmptyOrderError, OrderClosedError, OrderConflictError, OrderCreateConflictError
from bulkorder.domain.items import ItemValidationError
from bulkorder.domain.sample_items import generate_items
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.folder_store import FolderBlobStore
from tests.fixtures.orders import sqlite_env
from tests.workflows.helpers import event_types, recorded_batch_ids, store_generated
from bulkorder.workflows.outbox import OrderOutbox


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[OrderOutbox]:
    orders = Orders(env=sqlite_env(tmp_path / "events.sqlite"))
    yield OrderOutbox(orders, BatchStore(FolderBlobStore(tmp_path / "blobs")))
    orders.close()


def test_create_add_submit_are_recorded_once_and_marked_for_the_relay(outbox: OrderOutbox) -> None:
    assert outbox.batches is not None
    refs = store_generated(outbox.batches, 3_000, 500, prefix="o")
    created = outbox.create("c1", "o", refs[:2])
    assert (created.summary.status, created.summary.batch_count, created.new_events) == ("open", 2, 3)

    added = outbox.add_batches("c1/o", refs[1:])  # refs[1] again: a retried call
    assert added.applied_batch_ids == [ref.batch_id for ref in refs[2:]]
    assert added.duplicate_batch_ids == [refs[1].batch_id]
    retried = outbox.create("c1", "o", refs[:2])  # a retried create records nothing
    assert (retried.new_events, retried.existing, retried.summary.batch_count) == (0, True, 6)
    with pytest.raises(OrderCreateConflictError, match="batches of the original request missing"):
        outbox.create("c1/o")  # another request for the name: refused, naming what differs

    submitted = outbox.submit("c1/o")
    assert (submitted.summary.status, submitted.summary.item_count) == ("submitted", 3_000)
    assert outbox.submit("c1/o").new_events == 0

    assert recorded_batch_ids(outbox.orders, "c1/o") == {ref.batch_id: 1 for ref in refs}
    assert event_types(outbox.orders, "c1/o") == ["Created"] + ["ItemsAdded"] * 6 + ["Submitted"]
    assert all(event.via_outbox for event in outbox.orders.events.get(outbox.orders.get_order("c1/o").id))


def test_what_the_store_refuses_is_refused_whole(outbox: OrderOutbox) -> None:
    assert outbox.batches is not None
    refs = store_generated(outbox.batches, 200, 100, prefix="r")
    outbox.create("c1", "r")
    with pytest.raises(OrderConflictError, match="already exists with another create request"):
        outbox.create("c1", "r", refs, idempotency_key="k-1")
    assert outbox.create("c2", "r").summary.customer_id == "c2"  # another customer's "r": another order
    with pytest.raises(EmptyOrderError, match="has no items to submit"):
        outbox.submit("c1/r")
    outbox.cancel("c1/r", "changed my mind")
    with pytest.raises(OrderClosedError, match="is cancelled: cannot add batch"):
        outbox.add_batches("c1/r", refs)
    assert outbox.summary("c1/r").batch_count == 0


def test_add_items_validates_every_item_before_recording_any(outbox: OrderOutbox) -> None:
    outbox.create("c1", "v")
    items = list(generate_items(25))
    items[17] = {**items[17], "quantity": 0}
    with pytest.raises(ItemValidationError, match=r"batch 1 item\[7\]: quantity"):
        outbox.add_items("c1/v", items, batch_size=10)
    assert outbox.summary("c1/v").batch_count == 0

    items[17] = {**items[17], "quantity": 1}
    outcome = outbox.add_items("c1/v", items, batch_size=10, batch_id_prefix="v")
    assert outcome.applied_batch_ids == ["v-000000", "v-000001", "v-000002"]
    assert outcome.summary.item_count == 25
