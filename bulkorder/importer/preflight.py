"""Before anything is uploaded: can this order take this import, and what is already in it?

The event store's ``Order`` aggregate knows every batch ID it applied, which is all a
resumed run needs to skip work: batches the workflow accepted but has not recorded yet are
sent again, and applied at most once all the same.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Callable, Mapping

from bulkorder.domain.application import Orders
from bulkorder.domain.errors import OrderNotFoundError
from bulkorder.domain.summary import OrderStatus
from bulkorder.importer.errors import ImportInputError, ImportRefusedError
from bulkorder.importer.identity import parse_import_id
from bulkorder.importer.sources import ItemSource
from bulkorder.workflows.client import OrderClient


@dataclass
class OrderStart:
    """What the import starts from."""

    #: Batch IDs the order already holds (a resumed import skips those).
    recorded: Mapping[str, int] = field(default_factory=dict)
    #: Set when the order does not exist yet: create it with this customer and the first batches.
    create_customer: str | None = None
    items_before: int = 0


async def prepare_order(
    client: OrderClient, orders: Orders, order_id: str, *, create_customer: str | None
) -> OrderStart:
    """Refuse early (nothing uploaded yet) if the order cannot take items."""
    try:
        order = await asyncio.to_thread(orders.get_order, order_id)
    except OrderNotFoundError:
        if create_customer is None:
            raise ImportRefusedError(
                f"order {order_id!r} does not exist: create it first (bulkorder create REFERENCE --customer CUSTOMER) "
                "or pass --create"
            ) from None
        return OrderStart(create_customer=create_customer)
    if create_customer is not None and order.customer_id != create_customer:
        raise ImportRefusedError(
            f"order {order_id!r} exists for customer {order.customer_id!r}, not {create_customer!r}"
        )
    if order.status != OrderStatus.OPEN:
        raise ImportRefusedError(f"order {order_id!r} is {order.status}: it takes no more items")
    # The workflow knows of a submit or a cancel before the event store records it.
    try:
        live = await client.summary(order_id)
    except OrderNotFoundError:
        raise ImportRefusedError(f"order {order_id!r} has no running workflow: it takes no more items") from None
    if live.status != OrderStatus.OPEN:
        raise ImportRefusedError(f"order {order_id!r} is {live.status}: it takes no more items")
    return OrderStart(recorded=dict(order.batch_ids), items_before=order.item_count)


def check_batch_size(
    open_source: Callable[[int], ItemSource], recorded: Mapping[str, int], batch_size: int, order_id: str
) -> None:
    """Refuse to resume with another ``--batch-size``: every batch would get a new ID and
    the lines already imported would be imported again."""
    other_sizes = sorted(
        {parsed[0] for batch_id in recorded if (parsed := parse_import_id(batch_id)) and parsed[0] != batch_size}
    )
    for size in other_sizes:
        with open_source(size) as source:
            first = next(source.batches(), None)
        if first is not None and first.batch_id in recorded:
            raise ImportInputError(
                f"{source.name} was already imported (perhaps partly) into order {order_id!r} with "
                f"--batch-size {size}: run it again with --batch-size {size} to resume "
                f"(with {batch_size}, its lines would be imported a second time)",
                file=source.name,
            )
