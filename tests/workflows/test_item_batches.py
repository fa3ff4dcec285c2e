"""``store_item_batches``: the fast path and the pydantic path store the same bytes, and a
bad item gets pydantic's message whichever path its batch took."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

import bulkorder.workflows.item_batches as item_batches
from bulkorder.domain.items import ItemValidationError
from bulkorder.domain.sample_items import generate_items
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.folder_store import FolderBlobStore


def store(tmp_path: Path) -> BatchStore:
    return BatchStore(FolderBlobStore(tmp_path, fsync=False))


async def stored(batches: BatchStore, items: list[Any], **options: Any) -> list[str]:
    refs = await item_batches.store_item_batches(batches, items, batch_size=1_000, batch_id_prefix=None, leases=None, **options)
    return [ref.sha256 for ref in refs]


async def test_both_paths_store_the_same_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    items = list(generate_items(3_500))
    fast = await stored(store(tmp_path / "fast"), items)
    monkeypatch.setattr(item_batches, "convert", lambda part: None)  # every batch through pydantic
    slow = await stored(store(tmp_path / "slow"), items)
    assert fast == slow and len(fast) == 4


async def test_items_that_are_not_plain_dicts_take_the_pydantic_path(tmp_path: Path) -> None:
    items = list(generate_items(10))
    assert await stored(store(tmp_path / "a"), [MappingProxyType(item) for item in items]) == await stored(
        store(tmp_path / "b"), items
    )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"quantity": 0}, "quantity"),
        ({"sku": ""}, "sku"),
        ({"unexpected": 1}, "unexpected"),
        ({"quantity": 10**6, "unit_price": {"amount": 10**13, "currency": "EUR"}}, "quantity"),
    ],
    ids=["quantity", "sku", "unknown-field", "line-total"],
)
async def test_a_bad_item_is_named_with_pydantics_message(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    items = list(generate_items(2_500))
    items[1_700] = {**items[1_700], **change}
    with pytest.raises(ItemValidationError) as raised:
        await stored(store(tmp_path), items)
    text = str(raised.value)
    assert "batch 1 item[700]" in text and message in text, text
