"""Counting a batch's items: what its ref claims and what fulfillment adds up.

The one check of the fields that money depends on, applied to items read back from a blob
(which the reader did not validate itself): every quantity, amount and line total within
the domain's bounds, every currency a code, every SKU a string, and the sums within the
order bounds. Raises :class:`~bulkorder.domain.items.ItemValidationError` naming the item.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from bulkorder.domain.items import CURRENCY_PATTERN, MAX_QUANTITY, MAX_UNIT_AMOUNT, ItemValidationError, check_batch_sums
from bulkorder.domain.limits import MAX_LINE_TOTAL

_CURRENCY = re.compile(CURRENCY_PATTERN)  # used with fullmatch: the whole value, no trailing newline


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
            raise ItemValidationError([(f"{where} item {index}", "", "lacks a sku, quantity or unit_price")]) from None
        if type(count) is not int or not 1 <= count <= MAX_QUANTITY:
            raise ItemValidationError([(f"{where} item {index}", "quantity", f"must be a whole number from 1 to {MAX_QUANTITY}")])
        if type(amount) is not int or not 0 <= amount <= MAX_UNIT_AMOUNT:
            raise ItemValidationError(
                [(f"{where} item {index}", "unit_price.amount", f"must be a whole number from 0 to {MAX_UNIT_AMOUNT}")]
            )
        if type(currency) is not str or not _CURRENCY.fullmatch(currency):
            raise ItemValidationError([(f"{where} item {index}", "unit_price.currency", "must be a 3-letter code")])
        if type(sku) is not str or not sku:
            raise ItemValidationError([(f"{where} item {index}", "sku", "must be a non-empty string")])
        line = count * amount
        if line > MAX_LINE_TOTAL:
            raise ItemValidationError(
                [(f"{where} item {index}", "unit_price.amount", f"the line total {line:,} exceeds the limit MAX_LINE_TOTAL = {MAX_LINE_TOTAL:,}")]
            )
        quantity += count
        totals[currency] = totals.get(currency, 0) + line
    check_batch_sums(quantity, totals, where)
    return quantity, totals
