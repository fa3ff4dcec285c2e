"""Items into stored batches, for ``OrderClient``: validated, encoded and written in
threads, a bounded window at a time, optionally under write leases.

Each batch takes the writers' fast path first (:mod:`bulkorder.storage.packed_items`:
msgspec converts, checks and packs the dicts in C, about three times pydantic's rate);
a batch it refuses goes through pydantic, which accepts it or names the item and field,
so a bad item gets the same message either way.
"""

from __future__ import annotations

import asyncio
from collections import deque
from itertools import islice
from typing import Any, Iterable, Iterator, Mapping

from bulkorder.domain.items import validate_item_dicts
from bulkorder.domain.refs import BatchRef
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.leases import WriteLeases
from bulkorder.storage.packed_items import convert, pack

#: Batches validated, encoded and written at once (threads; with the window, memory holds
#: a few batches whatever the number of items).
STORE_WINDOW = 4


async def store_item_batches(
    batches: BatchStore,
    items: Iterable[Mapping[str, Any]],
    *,
    batch_size: int,
    batch_id_prefix: str | None,
    leases: WriteLeases | None,
    order_id: str | None = None,
) -> list[BatchRef]:
    """The refs of ``items`` stored as batches of ``batch_size``, in order, sealed with
    ``order_id``'s data key when the store encrypts. With ``leases``, each blob is written
    under a lease taken first (``leases.held``: the caller releases them once the workflow
    holds the refs)."""

    def store(part: list[Mapping[str, Any]], index: int) -> BatchRef:
        batch_id = None if batch_id_prefix is None else f"{batch_id_prefix}-{index:06d}"
        ref, data = _encode(batches, part, index, batch_id, order_id)
        if leases is None:
            batches.put_encoded(ref, data)
        else:
            batches.put_leased(ref, data, leases)
        return ref

    refs: list[BatchRef] = []
    in_flight: deque[asyncio.Future[BatchRef]] = deque()
    try:
        for index, part in enumerate(_chunks(items, batch_size)):
            in_flight.append(asyncio.ensure_future(asyncio.to_thread(store, part, index)))
            if len(in_flight) >= STORE_WINDOW:
                refs.append(await in_flight.popleft())
        while in_flight:
            refs.append(await in_flight.popleft())
    finally:
        for pending in in_flight:
            pending.cancel()
    return refs


def _encode(
    batches: BatchStore, part: list[Mapping[str, Any]], index: int, batch_id: str | None, order_id: str | None
) -> tuple[BatchRef, bytes]:
    fast = convert(part)
    packed = None if fast is None else pack(fast)
    if packed is not None:
        return batches.encode_packed(
            packed.raw, packed.item_count, packed.quantity, packed.totals, batch_id, order_id=order_id
        )
    where = f"batch {index} item" if batch_id is None else f"{batch_id} item"
    return batches.encode(validate_item_dicts(part, where), batch_id, order_id=order_id)


def _chunks(items: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    if size < 1:
        raise ValueError(f"the batch size must be at least 1, got {size}")
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
