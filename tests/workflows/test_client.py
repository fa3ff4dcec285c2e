"""``OrderClient.store_items``: items to stored batches, streaming, and stopped by bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from temporalio.testing import WorkflowEnvironment

from domain.items import ItemValidationError
from domain.sample_items import generate_items
from storage.batches import BatchStore
from storage.folder_store import FolderBlobStore
from workflows.client import STORE_WINDOW, OrderClient


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
