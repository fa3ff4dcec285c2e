"""A batch's sums within the order bounds, and the counted fields of items read back."""

from __future__ import annotations

import re

import pytest

from bulkorder.domain.counters import BatchSumError, BatchSums, check_batch_sums, count_items, first_sum_crossing
from bulkorder.domain.items import ItemValidationError
from bulkorder.domain.limits import MAX_LINE_TOTAL, MAX_ORDER_QUANTITY, MAX_ORDER_TOTAL
from tests.domain.test_items import item


def test_check_batch_sums_names_where_and_the_limit() -> None:
    check_batch_sums(MAX_ORDER_QUANTITY, {"EUR": MAX_ORDER_TOTAL, "USD": 0}, "batch b-1")
    with pytest.raises(BatchSumError, match=re.escape("batch b-1: quantity: the quantity sum 1,000,000,000,000,000,001 exceeds the limit MAX_ORDER_QUANTITY")):
        check_batch_sums(MAX_ORDER_QUANTITY + 1, {}, "batch b-1")
    with pytest.raises(BatchSumError, match="the USD total 1,000,000,000,000,000,001 exceeds the limit MAX_ORDER_TOTAL"):
        check_batch_sums(1, {"EUR": 5, "USD": MAX_ORDER_TOTAL + 1}, "batch b-1")


def test_the_first_item_at_which_a_batch_crosses_the_bounds_is_named() -> None:
    big = item(quantity=10**9, unit_price={"amount": 10**9, "currency": "EUR"})  # a line total of 10**18
    small = item(quantity=1, unit_price={"amount": 1, "currency": "USD"})
    assert first_sum_crossing([big, small]) is None
    index, field, reason = first_sum_crossing([small, big, small, big])  # type: ignore[misc]
    assert (index, field) == (3, "unit_price.amount") and "EUR total would reach 2,000,000,000,000,000,000" in reason
    sums = BatchSums()
    assert sums.add(big) is None and sums.add(big) is not None
    assert sums.totals == {"EUR": MAX_LINE_TOTAL}  # the refused item is not counted


def test_counted_fields_are_checked_and_added_up() -> None:
    items = [item(quantity=2, unit_price={"amount": 5, "currency": "EUR"}), item(quantity=1, unit_price={"amount": 7, "currency": "USD"})]
    assert count_items(items, "batch b-1") == (3, {"EUR": 10, "USD": 7})
    with pytest.raises(ItemValidationError, match=re.escape("batch b-1 item 1: sku: String should match pattern")):
        count_items([items[0], {**items[1], "sku": "two words"}], "batch b-1")
    with pytest.raises(BatchSumError, match="MAX_ORDER_TOTAL"):  # two lines at the line bound pass the order's
        count_items([item(quantity=10**9, unit_price={"amount": 10**9, "currency": "EUR"})] * 2, "batch b-1")
