"""``OrderClient``: ``store_items`` (items to stored batches, streaming, stopped by bad
input), ``progress`` and ``failing_step`` (what a running order waits on), and the recovery
calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from temporalio.testing import WorkflowEnvironment

from bulkorder.domain.errors import OrderNotFoundError
from bulkorder.domain.items import ItemValidationError
from bulkorder.domain.sample_items import generate_items
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.folder_store import FolderBlobStore
from tests.fixtures.orders import OrderStack
from bulkorder.workflows.client import MAX_REASON_CHARS, STORE_WINDOW, OrderClient
from bulkorder.workflows.errors import OrderRefusedError


def stored_batches(blobs: FolderBlobStore) -> int:
    return sum(1 for _ in blobs.iter_keys("batches/"))


async def test_store_items_reads_a_generator_as_it_goes(temporal_env: WorkflowEnvironment, tmp_path: Path) -> None:
    blobs = FolderBlobStore(tmp_path / "blobs")
    client = OrderClient(temporal_env.client, task_queue="unused", batches=BatchStore(blobs))
    batch_size, batches = 100, 40
    behind: list[int] = []

    def items() -> Iterator[dict[str, Any]]:
        for index, item in enumerate(generate_items(batch_size * batches)):
            if index % batch_size == 0:  # the first item of a batch: how many wait to be written?
                behind.append(index // batch_size - stored_batches(blobs))
            yield item

    refs = await client.store_items(items(), batch_size=batch_size, batch_id_prefix="stream")
    assert [ref.batch_id for ref in refs] == [f"stream-{index:06d}" for index in range(batches)]
    assert sum(ref.item_count for ref in refs) == batch_size * batches
    assert stored_batches(blobs) == batches
    # Never more than the window in flight: the generator is not drained ahead of the writes.
    assert max(behind) <= STORE_WINDOW


async def test_store_items_stops_at_the_first_invalid_batch_naming_it(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    client = OrderClient(temporal_env.client, task_queue="unused", batches=BatchStore(FolderBlobStore(tmp_path)))
    items = list(generate_items(1_000))
    items[734]["quantity"] = 0  # batch 7, its item 34
    with pytest.raises(ItemValidationError) as raised:
        await client.store_items(items, batch_size=100, batch_id_prefix="bad")
    assert "bad-000007 item[34]: quantity" in str(raised.value)


# ---- reads of a running order's steps, recovery calls -----------------------------------



async def test_progress_of_an_open_order_has_its_summary_and_no_failing_step(order_stack: OrderStack) -> None:
    client = order_stack.client
    await client.create("acme/progress-open")
    await client.add_items("acme/progress-open", generate_items(50))
    progress = await client.progress("acme/progress-open")
    assert progress.running and progress.workflow_status == "running"
    assert progress.status == "open" and progress.summary is not None and progress.summary.item_count == 50
    assert progress.failing_step() is None and await client.failing_step("acme/progress-open") is None

    await client.submit("acme/progress-open")
    summary = await client.wait_closed("acme/progress-open")
    closed = await client.progress("acme/progress-open")
    assert not closed.running and closed.workflow_status == "completed"
    assert closed.summary == summary and closed.status == "fulfilled" and closed.steps == []


async def test_progress_of_an_unknown_order_is_not_found(order_stack: OrderStack) -> None:
    with pytest.raises(OrderNotFoundError):
        await order_stack.client.progress("acme/never-created-progress")


async def test_retry_of_an_order_that_has_not_failed_is_refused_by_the_workflow(order_stack: OrderStack) -> None:
    client = order_stack.client
    await client.create("acme/retry-open")
    with pytest.raises(OrderRefusedError) as refused:
        await client.retry_fulfillment("acme/retry-open", "why not")
    assert refused.value.order_id == "acme/retry-open"
    assert (await client.summary("acme/retry-open")).status == "open"  # nothing changed


async def test_reasons_are_bounded_before_anything_is_sent(order_stack: OrderStack) -> None:
    client = order_stack.client
    await client.create("acme/reason-bound")
    with pytest.raises(ValueError, match=f"at most {MAX_REASON_CHARS:,} characters"):
        await client.cancel("acme/reason-bound", "x" * (MAX_REASON_CHARS + 1))
    with pytest.raises(ValueError, match="at most"):
        await client.retry_fulfillment("acme/reason-bound", "x" * (MAX_REASON_CHARS + 1))
    assert (await client.summary("acme/reason-bound")).status == "open"
