"""History stays bounded: continue-as-new under load, and a million-item order."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid

import pytest

from bulkorder.domain.items import validate_item_dicts
from bulkorder.domain.sample_items import generate_items
from tests.fixtures.orders import OrderStack
from tests.workflows.helpers import recorded_batch_ids, store_generated, totals_of
from bulkorder.workflows.messages import OrderLimits

TEMPORAL_SUGGESTED_EVENTS = 4_096
TEMPORAL_SUGGESTED_BYTES = 4 * 1024 * 1024


@pytest.fixture
def order_limits() -> OrderLimits:
    # Low enough that continue-as-new happens many times during these tests.
    return OrderLimits(max_history_events=400, max_signals=1_500, max_updates=400)


async def test_5000_concurrent_add_batches_race_continue_as_new(order_stack: OrderStack) -> None:
    order_id = f"t-{uuid.uuid4().hex[:12]}"
    # One stored blob of 2 items; 5,000 distinct batch IDs referencing it.
    base = order_stack.batches.write(validate_item_dicts(list(generate_items(2))), batch_id="base")
    refs = [dataclasses.replace(base, batch_id=f"{order_id}-{i:05d}") for i in range(5_000)]
    order_id = f"customer-1/{order_id}"  # the order's name: customer/reference
    await order_stack.client.create(order_id)

    rng = random.Random(1)

    async def add(index: int) -> None:
        # Half as acknowledged updates, half as signals, interleaved at random.
        await order_stack.client.add_batches(order_id, [refs[index]], wait=rng.random() < 0.5)

    await asyncio.gather(*(add(i) for i in range(5_000)))
    # Replays of the same batch IDs, by update and by signal: recorded once all the same.
    await order_stack.client.add_batches(order_id, refs[:50], wait=True)
    await order_stack.client.add_batches(order_id, refs[50:100], wait=False)

    await order_stack.client.submit(order_id)
    final = await order_stack.client.wait_closed(order_id)

    assert recorded_batch_ids(order_stack.orders, order_id) == {ref.batch_id: 1 for ref in refs}
    assert (final.batch_count, final.item_count) == (5_000, 10_000)
    assert order_stack.orders.summary(order_id).batch_count == 5_000
    assert final.report is not None and final.report.item_count == 10_000

    runs = await order_stack.client.run_histories(order_id)
    assert len(runs) >= 4, f"expected several continue-as-new hand-overs, got {len(runs)} runs"
    assert [run.status for run in runs[:-1]] == ["continued_as_new"] * (len(runs) - 1)
    assert runs[-1].status == "completed"
    for run in runs:
        assert run.events < TEMPORAL_SUGGESTED_EVENTS and run.bytes < TEMPORAL_SUGGESTED_BYTES


@pytest.mark.slow
async def test_million_item_order_by_reference_keeps_every_run_small(order_stack: OrderStack) -> None:
    order_id = f"t-{uuid.uuid4().hex[:12]}"
    count, batch_size = 1_000_000, 5_000
    refs = await asyncio.to_thread(store_generated, order_stack.batches, count, batch_size, prefix=order_id)
    client = order_stack.client

    order_id = f"customer-1/{order_id}"  # the order's name: customer/reference
    await client.create(order_id, refs=refs[:10])
    for index in range(10, len(refs), 2):  # many small calls: the history grows per call
        await client.add_batches(order_id, refs[index : index + 2])
    await client.submit(order_id)
    final = await client.wait_closed(order_id)

    expected = totals_of(refs)
    assert (final.status, final.item_count, final.batch_count) == ("fulfilled", count, len(refs))
    assert final.totals == expected["totals"]
    assert final.report is not None and final.report.item_count == count
    recorded = order_stack.orders.summary(order_id)
    assert (recorded.item_count, recorded.batch_count, recorded.status) == (count, 200, "fulfilled")

    runs = await client.run_histories(order_id)
    assert len(runs) >= 2
    for run in runs:
        assert run.events < TEMPORAL_SUGGESTED_EVENTS, run
        assert run.bytes < TEMPORAL_SUGGESTED_BYTES, run
