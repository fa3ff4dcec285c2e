"""Counting a batch's items: what its ref claims and what fulfillment adds up.

The one check of the fields that money depends on, applied to items read back from a blob
(which the reader did not validate itself): every counted field
(:data:`~bulkorder.domain.items.COUNTED_FIELDS`: SKU, quantity, unit amount, currency) keeps
its rule of the item schema, every line total is within its bound, and the sums are within
the order bounds. Raises :class:`~bulkorder.domain.items.ItemValidationError` naming the
item, in the words the pydantic model uses for the same field.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from bulkorder.domain.items import (
    AMOUNT,
    COUNTED_FIELDS,
    CURRENCY,
    QUANTITY,
    SKU,
    ItemValidationError,
    check_batch_sums,
    field_problem,
    line_total_problem,
)


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
