"""What the analysts' read model holds, and how each ``Order`` event changes it
(the counters by the domain's rules, :mod:`bulkorder.domain.order_counters`).

Pure functions (no I/O): the projection in :mod:`bulkorder.analysis.projections` loads rows, calls
:func:`project_summary` for each event in order, and saves the rows with its tracking
record in one transaction. Per-SKU quantities come from the items of each added batch,
counted by :func:`sku_quantities`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Iterable, Mapping

from bulkorder.domain.order import Order
from bulkorder.domain.order_counters import count_event
from bulkorder.domain.summary import OrderStatus


@dataclass
class OrderSummaryRow:
    """One order in the read model. Keyed by ``aggregate_id`` (hex), which every event carries."""

    aggregate_id: str
    order_id: str
    customer_id: str
    status: str = OrderStatus.OPEN
    item_count: int = 0
    batch_count: int = 0
    quantity: int = 0
    rejected_batches: int = 0
    #: Sum of quantity x unit price per currency, in minor units (cents).
    totals: dict[str, int] = field(default_factory=dict)
    created_at: datetime | None = None
    submitted_at: datetime | None = None
    fulfilled_at: datetime | None = None
    cancelled_at: datetime | None = None
    #: Aggregate version of the last event applied.
    version: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name in ("created_at", "submitted_at", "fulfilled_at", "cancelled_at"):
            data[name] = data[name].isoformat() if data[name] is not None else None
        data["totals"] = dict(self.totals)
        return data


@dataclass(frozen=True)
class SkuQuantity:
    """One SKU across orders: units ordered, item lines, and how many orders hold it."""

    sku: str
    quantity: int
    lines: int
    orders: int


class ProjectionOrderError(ValueError):
    """An event arrived for an order the read model has not seen created (a gap in the log)."""


def project_summary(row: OrderSummaryRow | None, event: Any) -> OrderSummaryRow:
    """``row`` with ``event`` applied (a new row for ``Created``). ``row`` is not changed."""
    if isinstance(event, Order.Created):
        return OrderSummaryRow(
            aggregate_id=event.originator_id.hex,
            order_id=event.order_id,
            customer_id=event.customer_id,
            created_at=event.timestamp,
            version=event.originator_version,
        )
    if row is None:
        raise ProjectionOrderError(
            f"{type(event).__qualname__} v{event.originator_version} of aggregate {event.originator_id} "
            "arrived before the order's Created event"
        )
    new = replace(row, totals=dict(row.totals), version=event.originator_version)
    count_event(new, event)
    # When it happened: the row's own columns, beside the counters.
    if isinstance(event, Order.Submitted):
        new.submitted_at = event.timestamp
    elif isinstance(event, Order.FulfillmentCompleted):
        new.fulfilled_at = event.timestamp
    elif isinstance(event, Order.Cancelled):
        new.cancelled_at = event.timestamp
    return new


def sku_quantities(items: Iterable[Mapping[str, Any]]) -> dict[str, list[int]]:
    """``{sku: [quantity, lines]}`` over ``items`` (validated item dicts)."""
    by_sku: dict[str, list[int]] = {}
    for item in items:
        entry = by_sku.get(item["sku"])
        if entry is None:
            by_sku[item["sku"]] = [item["quantity"], 1]
        else:
            entry[0] += item["quantity"]
            entry[1] += 1
    return by_sku
