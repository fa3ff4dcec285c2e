"""Counting a batch's items: what its ref claims and what fulfillment adds up, within bounds.

The sums of a batch (its quantity and per-currency totals) stay within the order bounds:
:func:`check_batch_sums` and, item by item, :class:`BatchSums` / :func:`first_sum_crossing`.

The one check of the fields that money depends on, applied to items read back from a blob
(which the reader did not validate itself): every counted field
(:data:`~bulkorder.domain.items.COUNTED_FIELDS`: SKU, quantity, unit amount, currency) keeps
its rule of the item schema, every line total is within its bound, and the sums are within
the order bounds. Raises :class:`~bulkorder.domain.items.ItemValidationError` naming the
item, in the words the pydantic model uses for the same field.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from bulkorder.domain.items import (
    AMOUNT,
    COUNTED_FIELDS,
    CURRENCY,
    QUANTITY,
    SKU,
    ItemValidationError,
    field_problem,
    line_total_problem,
)
from bulkorder.domain.limits import MAX_ORDER_QUANTITY, MAX_ORDER_TOTAL


def count_items(items: Sequence[Mapping[str, Any]], where: str = "batch") -> tuple[int, dict[str, int]]:
    """Total quantity and per-currency totals of ``items``, every counted field checked."""
    quantity = 0
    totals: dict[str, int] = {}
    for index, item in enumerate(items):
        try:
            count = item["quantity"]
            price = item["unit_price"]
            amount = price["amount"]
            currency = price["currency"]
            sku = item["sku"]
        except (KeyError, TypeError):
            raise _refused(item, index, where) from None
        if not (QUANTITY.accepts(count) and AMOUNT.accepts(amount) and CURRENCY.accepts(currency) and SKU.accepts(sku)):
            raise _refused(item, index, where)
        line = count * amount
        problem = line_total_problem(count, amount)
        if problem is not None:
            raise ItemValidationError([(f"{where} item {index}", "quantity", problem)])
        quantity += count
        totals[currency] = totals.get(currency, 0) + line
    check_batch_sums(quantity, totals, where)
    return quantity, totals


def _refused(item: object, index: int, where: str) -> ItemValidationError:
    """The error for an item whose counted fields break their rules: the model's words."""
    return ItemValidationError([(f"{where} item {index}", path, message) for path, message in field_problem(item, COUNTED_FIELDS)])


class BatchSumError(ItemValidationError):
    """A batch's quantity or a currency's total passes what an order may hold."""


def check_batch_sums(quantity: int, totals: Mapping[str, int], where: str = "batch") -> None:
    """Refuse sums past :data:`MAX_ORDER_QUANTITY` or :data:`MAX_ORDER_TOTAL` (a batch's,
    or an order's with a batch added), naming ``where``; raises :class:`BatchSumError`."""
    if quantity > MAX_ORDER_QUANTITY:
        raise BatchSumError(
            [(where, "quantity", f"the quantity sum {quantity:,} exceeds the limit MAX_ORDER_QUANTITY = {MAX_ORDER_QUANTITY:,}")]
        )
    for currency, total in totals.items():
        if total > MAX_ORDER_TOTAL:
            raise BatchSumError(
                [(where, "unit_price.amount", f"the {currency} total {total:,} exceeds the limit MAX_ORDER_TOTAL = {MAX_ORDER_TOTAL:,}")]
            )


class BatchSums:
    """Running sums of a batch's items, kept within the order bounds: :meth:`add` takes an
    item only if the sums stay within them, else says which field crossed and why."""

    def __init__(self) -> None:
        self.quantity = 0
        self.totals: dict[str, int] = {}

    def add(self, item: Mapping[str, Any]) -> tuple[str, str] | None:
        price = item["unit_price"]
        currency = price["currency"]
        quantity = self.quantity + item["quantity"]
        total = self.totals.get(currency, 0) + item["quantity"] * price["amount"]
        if quantity > MAX_ORDER_QUANTITY:
            return "quantity", (
                f"the batch's quantity sum would reach {quantity:,} with this item, "
                f"past the limit MAX_ORDER_QUANTITY = {MAX_ORDER_QUANTITY:,}"
            )
        if total > MAX_ORDER_TOTAL:
            return "unit_price.amount", (
                f"the batch's {currency} total would reach {total:,} with this item, "
                f"past the limit MAX_ORDER_TOTAL = {MAX_ORDER_TOTAL:,}"
            )
        self.quantity = quantity
        self.totals[currency] = total
        return None


def first_sum_crossing(items: Iterable[Mapping[str, Any]]) -> tuple[int, str, str] | None:
    """``(index, field, reason)`` of the first item at which the batch's running quantity
    or a currency's running total passes the order bounds, else ``None``."""
    sums = BatchSums()
    for index, item in enumerate(items):
        crossed = sums.add(item)
        if crossed is not None:
            return index, crossed[0], crossed[1]
    return None
