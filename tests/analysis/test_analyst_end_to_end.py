"""An order made by the real workflow (real Temporal dev server) read back by the analysts:
history, replay, items, export and read model, from the event store and blobs alone."""

from __future__ import annotations

import io
import json
import uuid
from typing import Mapping

from bulkorder.analysis import Analyst
from bulkorder.domain.sample_items import generate_items
from bulkorder.storage.config import EventStoreConfig
from tests.fixtures.analysts import items_digest
from tests.fixtures.orders import TEST_IDENTITY, OrderStack


async def test_a_fulfilled_workflow_order_reads_back_whole(order_stack: OrderStack, event_store_env: Mapping[str, str]) -> None:
    # An e-mail address with a non-ASCII letter as the customer: the name round-trips
    # through history, replay, items, export and the read model.
    reference = f"e2e-{uuid.uuid4().hex[:10]}"
    order_id = f"jürgen.müller@example.com/{reference}"
    items = list(generate_items(4_500, seed=5))
    client = order_stack.client
    await client.create("jürgen.müller@example.com", reference)
    await client.add_items(order_id, items, batch_size=1_000, batch_id_prefix=reference)
    await client.submit(order_id)
    final = await client.wait_closed(order_id)
    assert final.status == "fulfilled"

    config = EventStoreConfig.from_mapping(event_store_env)
    with Analyst(config, order_stack.batches, TEST_IDENTITY, protection=order_stack.orders.protection) as analyst:
        records = list(analyst.events(order_id))
        types = [r.type for r in records]
        assert types[0] == "Created" and types[-2:] == ["Submitted", "FulfillmentCompleted"]
        assert types.count("ItemsAdded") == 5 and records[-1].item_count == 4_500

        submitted = records[-2]
        state = analyst.state(order_id, at=submitted.timestamp)
        assert (state.version, state.summary.status, state.summary.item_count) == (submitted.version, "submitted", 4_500)
        assert analyst.state(order_id).summary.report == final.report

        out = io.BytesIO()
        analyst.stream_items(order_id, out)
        assert items_digest(json.loads(line) for line in out.getvalue().splitlines()) == items_digest(items)

        log = io.BytesIO()
        analyst.export(log)
        exported = [json.loads(line) for line in log.getvalue().splitlines()]
        assert [e["type"] for e in exported] == types and {e["order_id"] for e in exported} == {order_id}
        assert exported[-1]["report"]["item_count"] == 4_500  # refs expanded to metadata, never items

        analyst.project()
        (row,) = analyst.report().orders
        assert (row.order_id, row.status, row.item_count, row.batch_count) == (order_id, "fulfilled", 4_500, 5)
        assert row.fulfilled_at == records[-1].timestamp
