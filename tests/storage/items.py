"""Item dicts for storage tests (already in the validated shape of ``bulkorder.domain.items``)."""

from __future__ import annotations

from typing import Any


def make_item(
    sku: str = "SKU-1",
    quantity: int = 1,
    amount: int = 100,
    currency: str = "USD",
    name: str = "Widget",
    **attributes: Any,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "sku": sku,
        "quantity": quantity,
        "unit_price": {"amount": amount, "currency": currency},
        "name": name,
    }
    if attributes:
        item["attributes"] = attributes
    return item


def make_items(count: int, *, currency: str = "USD") -> list[dict[str, Any]]:
    return [
        make_item(f"SKU-{i}", quantity=1 + i % 7, amount=100 + i, currency=currency, name=f"Item {i}", colour="red", size=i)
        for i in range(count)
    ]
