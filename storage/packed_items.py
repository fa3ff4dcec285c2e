"""Item dicts validated and packed in C: the fast path of every writer of batches.

``bulkorder.domain.items`` (pydantic) is the authority on what an item is and on every
error message; :data:`~bulkorder.storage.item_structs.FastItem` is compiled from the same
field table, and msgspec converts and packs a batch without a Python object per field.
Whatever this path accepts, pydantic accepts too (tests/storage/test_item_structs.py,
tests/fuzz/test_fuzz_items.py). When it refuses — or has any doubt — a writer takes the
pydantic path, which either accepts the batch or names the item and field that is wrong:
so the messages are the same whichever path a batch took.

What msgspec does not check by itself is checked in :func:`pack`: the line total
(quantity x unit amount) and the batch's running sums against the domain's bounds.

Used by ``OrderClient.store_items`` (items as dicts from a service) and by the importer
(``bulkorder.importer.fast_items``, which adds the JSON decoding of lines).
"""

from __future__ import annotations

from typing import Any

import msgspec

from bulkorder.domain import limits
from bulkorder.storage.item_structs import FastItem

__all__ = ["FastBatch", "convert", "pack"]

_msgpack = msgspec.msgpack.Encoder()


class FastBatch(msgspec.Struct, gc=False):
    """A validated batch, packed: what ``BatchStore.encode_packed`` takes."""

    raw: bytes
    item_count: int
    quantity: int
    totals: dict[str, int]


def convert(values: list[Any]) -> list[FastItem] | None:
    """The items of ``values`` (dicts, as parsed), or ``None`` if any breaks a rule or is
    not a plain dict of the item's fields: the caller then takes the pydantic path."""
    try:
        return msgspec.convert(values, list[FastItem], strict=True)
    except msgspec.ValidationError:
        return None


def pack(items: list[FastItem]) -> FastBatch | None:
    """The batch packed with its counters, or ``None`` if an item's line total or the
    batch's running sums pass the domain's bounds (the pydantic path then names the item)."""
    quantity = 0
    totals: dict[str, int] = {}
    line_max = limits.MAX_LINE_TOTAL
    for item in items:
        price = item.unit_price
        quantity += item.quantity
        line = item.quantity * price.amount
        if line > line_max:
            return None
        totals[price.currency] = totals.get(price.currency, 0) + line
    if quantity > limits.MAX_ORDER_QUANTITY or any(total > limits.MAX_ORDER_TOTAL for total in totals.values()):
        return None
    return FastBatch(raw=_msgpack.encode(items), item_count=len(items), quantity=quantity, totals=totals)
