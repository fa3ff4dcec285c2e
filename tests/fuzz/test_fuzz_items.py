"""Fuzzing item validation at and around every bound: the domain's rules
(``validate_item_dict(s)``, pydantic) and the importer's fast decoder (msgspec, with the
line-total and batch-sum checks of ``fast_items.pack``) accept and refuse the same items.

The fast path may only ever be stricter where documented (then the importer asks
pydantic); on these generated items they must agree exactly, and what both accept must
be the same item.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from bulkorder.domain import items as rules
from bulkorder.domain.counters import first_sum_crossing
from bulkorder.domain.items import ItemValidationError, validate_item_dict, validate_item_dicts
from bulkorder.importer import fast_items


def _near(*bounds: int) -> st.SearchStrategy[int]:
    return st.one_of(
        st.sampled_from([value + delta for value in bounds for delta in (-1, 0, 1)]),
        st.integers(min(bounds) - 2, max(bounds) + 2),
    )


quantities = _near(0, 1, 10**3, 10**9, rules.MAX_QUANTITY)
amounts = _near(0, 10**3, 10**9, 10**15, rules.MAX_UNIT_AMOUNT)
texts = st.one_of(
    st.sampled_from(["A", "SKU-1", "a.b/c_d-e", "A\n", "\nA", "-A", "=A", "A" * 64, "A" * 65, "", " A", "é"]),
    st.text(max_size=70),
)
currencies = st.sampled_from(["EUR", "USD", "JPY", "eur", "EURO", "EU", "EUR\n", ""])
attribute_values = st.one_of(
    st.none(),
    st.booleans(),
    _near(rules.ATTRIBUTE_INT_MIN, rules.ATTRIBUTE_INT_MAX, 0),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["x" * rules.ATTRIBUTE_TEXT_MAX_LENGTH, "x" * (rules.ATTRIBUTE_TEXT_MAX_LENGTH + 1)]),
)


@st.composite
def items(draw: st.DrawFn) -> dict[str, Any]:
    item: dict[str, Any] = {
        "sku": draw(texts),
        "quantity": draw(quantities),
        "unit_price": {"amount": draw(amounts), "currency": draw(currencies)},
        "name": draw(st.one_of(texts, st.just("n" * rules.NAME_MAX_LENGTH), st.just("n" * (rules.NAME_MAX_LENGTH + 1)))),
    }
    if draw(st.booleans()):
        item["attributes"] = draw(st.dictionaries(st.text(min_size=0, max_size=8), attribute_values, max_size=4))
    return item


def _pydantic(batch: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    try:
        accepted = [validate_item_dict(item) for item in batch]
    except ItemValidationError:
        return None
    return None if first_sum_crossing(accepted) is not None else accepted


def _fast(batch: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    records = [json.dumps(item).encode() for item in batch]  # NaN and Infinity as JSON's tokens
    decoded = fast_items.decode_records(records)
    packed = None if decoded is None else fast_items.pack(decoded)
    return None if packed is None else msgpack.unpackb(packed.raw, raw=False)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


@given(st.lists(items(), min_size=1, max_size=4))
def test_fuzz_items_pydantic_and_the_fast_decoder_agree(batch: list[dict[str, Any]]) -> None:
    by_rules, by_fast = _pydantic(batch), _fast(batch)
    assert (by_rules is None) == (by_fast is None), (batch, by_rules, by_fast)
    if by_rules is not None and by_fast is not None:
        for expected, got in zip(by_rules, by_fast):
            expected = {key: value for key, value in expected.items() if key != "attributes" or value}
            assert expected == got
    try:
        validate_item_dicts(batch)
        many_ok = True
    except ItemValidationError:
        many_ok = False
    assert many_ok == all(_pydantic([item]) is not None for item in batch)


@given(st.lists(st.tuples(_near(10**9), _near(10**9, 10**15)), min_size=1, max_size=40))
def test_fuzz_batch_sums_stop_at_the_bounds(pairs: list[tuple[int, int]]) -> None:
    batch = [
        {"sku": "S", "quantity": q, "unit_price": {"amount": a, "currency": "EUR"}, "name": "n"}
        for q, a in pairs
        if 1 <= q <= rules.MAX_QUANTITY and 0 <= a <= rules.MAX_UNIT_AMOUNT and q * a <= rules.MAX_LINE_TOTAL
    ]
    if not batch:
        return
    crossing = first_sum_crossing(batch)
    total = sum(item["quantity"] * item["unit_price"]["amount"] for item in batch)
    quantity = sum(item["quantity"] for item in batch)
    assert (crossing is None) == (total <= rules.MAX_ORDER_TOTAL and quantity <= rules.MAX_ORDER_QUANTITY)
    assert (_fast(batch) is None) == (crossing is not None)
