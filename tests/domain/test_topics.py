"""Events and snapshots stored by 0.1.0 (topics naming the top-level ``domain``) still read.

tests/domain/fixtures/events-0.1.0.sqlite was written by bulkorder 0.1.0 (commit 400d230,
when the layers were the top-level packages ``domain``, ``storage``, ``workflows``) with
the orders application itself: three orders, one of them past the snapshot interval
(a snapshot at version 100), one recorded via the outbox. events-0.1.0.json beside it
holds the topics it stored and the summaries 0.1.0 read back from it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from eventsourcing.domain import Snapshot
from eventsourcing.utils import get_topic

from bulkorder.domain.application import Orders
from bulkorder.domain.order import Order
from bulkorder.domain.summary import OrderChange
from bulkorder.domain.topics import OLD_ORDER_MODULE, RENAMED_TOPICS, current_topic, stored_topics
from bulkorder.workflows.relay import RELAYED_TOPICS
from tests.domain.test_order import ref, report
from tests.fixtures.orders import sqlite_env

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "events-0.1.0.json").read_text())


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    path = tmp_path / "events.sqlite"
    shutil.copyfile(FIXTURES / "events-0.1.0.sqlite", path)
    return path


def test_the_fixture_holds_only_old_topics(old_store: Path) -> None:
    with sqlite3.connect(old_store) as db:
        topics = {row[0] for row in db.execute("SELECT topic FROM stored_events")}
        snapshots = list(db.execute("SELECT topic, state FROM stored_snapshots"))
    assert topics == set(EXPECTED["topics"])
    assert all(topic.startswith(f"{OLD_ORDER_MODULE}:") for topic in topics)
    assert topics <= set(RENAMED_TOPICS)
    # The snapshot's state names the aggregate by its old topic.
    assert [(topic, f'"topic":"{OLD_ORDER_MODULE}:Order"'.encode() in state) for topic, state in snapshots] == [
        (get_topic(Snapshot), True)
    ]


def test_orders_stored_by_0_1_0_read_back_as_0_1_0_read_them(old_store: Path) -> None:
    orders = Orders(env=sqlite_env(old_store))
    for order_id in ("o-fulfilled", "o-cancelled", "o-outbox"):
        expected = EXPECTED["summaries"][order_id]
        # Today an order is named customer/reference; a 0.x order ID is its reference.
        named = {**expected, "order_id": f"{expected['customer_id']}/{order_id}"}
        assert orders.summary(order_id).to_dict() == named
        assert orders.summary(named["order_id"]).to_dict() == named
    at_50 = EXPECTED["summaries"]["o-fulfilled@50"]
    assert orders.summary("o-fulfilled", version=50).to_dict() == {**at_50, "order_id": f"{at_50['customer_id']}/o-fulfilled"}
    order = orders.get_order("o-fulfilled")  # from the snapshot at version 100, then events
    assert type(order) is Order and order.version == EXPECTED["summaries"]["o-fulfilled"]["version"]


def test_every_old_event_maps_to_todays_class(old_store: Path) -> None:
    orders = Orders(env=sqlite_env(old_store))
    notifications = orders.recorder.select_notifications(start=1, limit=1000)
    events = [orders.mapper.to_domain_event(n) for n in notifications]
    assert {get_topic(type(e)) for e in events} == {current_topic(t) for t in EXPECTED["topics"]}
    assert all(get_topic(type(e)).startswith("bulkorder.domain.order:") for e in events)
    created = [e for e in events if isinstance(e, Order.Created)]
    assert len(created) == 3 and {e.originator_topic for e in created} == {get_topic(Order)}


def test_new_events_follow_old_ones_in_a_stream(old_store: Path) -> None:
    orders = Orders(env=sqlite_env(old_store))
    orders.record(OrderChange("o-outbox", report=report()))
    with sqlite3.connect(old_store) as db:
        topics = [row[0] for row in db.execute("SELECT topic FROM stored_events ORDER BY rowid")]
    assert topics[-1] == get_topic(Order.FulfillmentCompleted)
    assert Orders(env=sqlite_env(old_store)).summary("o-outbox").status == "fulfilled"
    # A new order beside the old ones is stored under today's topics only.
    orders.record(OrderChange("o-new", "c-9", create=True, batches=[ref("n1")]))
    assert orders.summary("o-new").item_count == 10


def test_the_relay_selects_outbox_events_stored_under_old_topics(old_store: Path) -> None:
    orders = Orders(env=sqlite_env(old_store))
    selected = orders.recorder.select_notifications(start=1, limit=1000, topics=RELAYED_TOPICS)
    outbox = [orders.mapper.to_domain_event(n) for n in selected]
    outbox = [e for e in outbox if getattr(e, "via_outbox", False)]
    assert [type(e).__name__ for e in outbox] == ["Created", "ItemsAdded", "Submitted"]


def test_stored_topics_names_todays_and_the_old_topic() -> None:
    assert stored_topics(Order.Created) == (get_topic(Order.Created), f"{OLD_ORDER_MODULE}:Order.Created")
    assert current_topic("elsewhere:Thing") == "elsewhere:Thing"


def test_old_topics_are_not_claimed_process_wide(old_store: Path) -> None:
    # A service beside bulkorder may own the module path 0.1.0 used: reading the old store
    # must not register the old names in eventsourcing's global topic cache.
    from eventsourcing import utils

    Orders(env=sqlite_env(old_store)).summary("o-fulfilled")
    assert not [topic for topic in utils._topic_cache if topic.startswith(OLD_ORDER_MODULE)]
