"""The importer's msgspec decoder never accepts what the domain's rules refuse.

``bulkorder.domain.items`` (pydantic) is the authority. The fast decoder may be stricter (the
importer then falls back to pydantic, which decides and names the problem) but must never
be more lenient, and what it accepts must pack to the same items.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import msgpack
import pytest

from bulkorder.domain.items import ItemValidationError, validate_item_dict
from bulkorder.domain.sample_items import generate_items
from bulkorder.importer import fast_items


def fast_accepts(item: Any) -> list[dict[str, Any]] | None:
    """The item as the fast path would store it, or None if it refuses it."""
    try:
        data = json.dumps([item], allow_nan=False).encode()
    except (TypeError, ValueError):
        return None
    decoded = fast_items.decode_records([data[1:-1]])
    packed = None if decoded is None else fast_items.pack(decoded)
    if packed is None:
        return None
    return msgpack.unpackb(packed.raw, raw=False)


def pydantic_accepts(item: Any) -> dict[str, Any] | None:
    try:
        return validate_item_dict(item)
    except ItemValidationError:
        return None


def stored_form(item: dict[str, Any]) -> dict[str, Any]:
    """An item without attributes and one with empty attributes are the same item."""
    return {k: v for k, v in item.items() if not (k == "attributes" and v == {})}


def test_valid_items_pack_to_the_same_items() -> None:
    items = list(generate_items(3_000))
    decoded = fast_items.decode_json_array(json.dumps(items).encode())
    assert decoded is not None
    batch = fast_items.pack(decoded)
    assert msgpack.unpackb(batch.raw, raw=False) == items
    assert batch.item_count == 3_000
    assert batch.quantity == sum(i["quantity"] for i in items)
    totals: dict[str, int] = {}
    for i in items:
        price = i["unit_price"]
        totals[price["currency"]] = totals.get(price["currency"], 0) + i["quantity"] * price["amount"]
    assert batch.totals == totals


BASE = next(iter(generate_items(1)))


def changed(path: str, value: Any) -> dict[str, Any]:
    item = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    target = item
    for part in parents:
        target = target[part]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return item


DELETE = object()

REFUSED = [
    # Whole numbers beyond 64 bits: refused, never turned into approximate floats.
    ("attributes", {"big": 2**63}), ("attributes", {"small": -(2**63) - 1}), ("attributes", {"huge": 10**40}),
    ("sku", "SKU-1\n"), ("sku", ""), ("sku", "x" * 65), ("sku", "-lead"), ("sku", "a b"), ("sku", 12),
    ("quantity", 0), ("quantity", -1), ("quantity", 10**9 + 1), ("quantity", True), ("quantity", 2.0),
    ("quantity", "3"), ("quantity", None), ("quantity", DELETE),
    ("unit_price", None), ("unit_price", {"amount": 1}), ("unit_price", {"amount": 1, "currency": "EUR", "x": 1}),
    ("unit_price.amount", -1), ("unit_price.amount", 10**15 + 1), ("unit_price.amount", 1.5),
    ("unit_price.amount", False), ("unit_price.currency", "EUR\n"), ("unit_price.currency", "eur"),
    ("unit_price.currency", "EURO"), ("unit_price.currency", "E"),
    ("name", ""), ("name", "n" * 501), ("name", None), ("name", DELETE),
    ("attributes", None), ("attributes", []), ("attributes", {"": 1}), ("attributes", {"k" * 129: 1}),
    ("attributes", {"a": {"nested": 1}}), ("attributes", {"a": [1, 2]}), ("attributes", {"a": "t" * 4097}),
    ("attributes", {f"k{i}": i for i in range(501)}), ("extra", 1),
]


@pytest.mark.parametrize(("path", "value"), REFUSED, ids=[f"{p}={str(v)[:20]!r}" for p, v in REFUSED])
def test_what_the_domain_refuses_the_fast_path_refuses(path: str, value: Any) -> None:
    item = changed(path, value)
    assert pydantic_accepts(item) is None
    assert fast_accepts(item) is None


EDGE_ACCEPTED = [
    ("attributes", {}), ("attributes", DELETE), ("attributes", {"a": "t" * 4096, "b": 2**63 - 1, "c": -(2**63), "d": -0.0}),
    ("attributes", {f"k{i}": None for i in range(500)}), ("name", "ünïcødé ✓ " * 40), ("sku", "A" * 64),
    ("quantity", 10**9), ("unit_price.amount", 0), ("unit_price.amount", 10**15),
]


@pytest.mark.parametrize(("path", "value"), EDGE_ACCEPTED, ids=[f"{p}={str(v)[:20]!r}" for p, v in EDGE_ACCEPTED])
def test_edges_the_domain_accepts_come_out_equal(path: str, value: Any) -> None:
    item = changed(path, value)
    expected = pydantic_accepts(item)
    assert expected is not None
    fast = fast_accepts(item)
    assert fast is not None and stored_form(fast[0]) == stored_form(expected)


WEIRD = [
    0, -1, 1, 2**31, 2**63, 2**64 + 1, 10**40, 0.5, -1e300, 1e-320, True, False, None, "", " ", "\n", "A\n",
    "EUR", "eur", "ÄÖÜ", "x" * 70, "x" * 600, "t" * 5000, [], [1], {}, {"a": 1}, {"amount": 1, "currency": "EUR"},
]


def mutate(item: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    item = copy.deepcopy(item)
    for _ in range(rng.randint(1, 3)):
        action = rng.random()
        if action < 0.6:
            choice = rng.random()
            target = item if choice < 0.5 else item.get("unit_price") if choice < 0.75 else item.get("attributes")
            if isinstance(target, dict) and target:
                target[rng.choice(sorted(target))] = copy.deepcopy(rng.choice(WEIRD))
        elif action < 0.8:
            victim = rng.choice(["sku", "quantity", "unit_price", "name", "attributes"])
            item.pop(victim, None)
        else:
            item[rng.choice(["extra", "sku", "Quantity", "attributes"])] = copy.deepcopy(rng.choice(WEIRD))
    return item


def test_random_mutations_never_pass_the_fast_path_alone() -> None:
    rng = random.Random(20261128)
    accepted_both = refused_both = 0
    for index in range(4_000):
        item = mutate(BASE, rng)
        fast = fast_accepts(item)
        expected = pydantic_accepts(item)
        if fast is not None:
            assert expected is not None, f"case {index}: fast path accepted what the domain refuses: {item!r}"
            assert stored_form(fast[0]) == stored_form(expected), f"case {index}: {item!r}"
            accepted_both += 1
        elif expected is None:
            refused_both += 1
    # The mutations exercise both outcomes, not just one.
    assert accepted_both > 100 and refused_both > 1_000


# ---- what msgspec lets through on its own: duplicate keys, NaN, line totals, batch sums ----


def _record(**changes: Any) -> bytes:
    item = next(generate_items(1))
    item.update(changes)
    return json.dumps(item).encode()


@pytest.mark.parametrize(
    "duplicate",
    [
        ('"sku": "SKU-', '"sku": "X", "sku": "SKU-'),
        ('"quantity": ', '"quantity": 1, "quantity": '),
        ('"currency": ', '"amount": 5, "currency": '),
        ('"attributes": {', '"attributes": {"color": "x", '),
    ],
)
def test_a_duplicate_key_sends_the_batch_to_the_strict_path(duplicate: tuple[str, str]) -> None:
    good = _record()
    bad = good.replace(duplicate[0].encode(), duplicate[1].encode(), 1)
    assert bad != good and json.loads(bad) is not None  # json.loads would take it, last wins
    assert fast_items.decode_records([good, good]) is not None
    assert fast_items.decode_records([good, bad, good]) is None


def test_colons_inside_strings_are_no_false_alarm() -> None:
    records = [
        _record(name="Widget: blue, 12:30"),
        _record(attributes={"note": "a:b:c", "url": "https://example.com:8080/x"}),
        _record(attributes={}),  # an empty attributes object: one key more than counted
        _record(attributes={"key:with:colons": 1}),
    ]
    items = fast_items.decode_records(records)
    assert items is not None and items[0].name == "Widget: blue, 12:30"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_refused_by_convert(value: float) -> None:
    item = next(generate_items(1))
    item["attributes"] = {"ratio": value}
    assert fast_items.convert([item]) is None
    assert fast_items.decode_records([_record().replace(b'"attributes": {', b'"attributes": {"r": 1e999, ', 1)]) is None


def test_pack_refuses_line_totals_and_batch_sums_past_the_bounds() -> None:
    at_limit = _record(quantity=10**9, unit_price={"amount": 10**9, "currency": "EUR"})
    past = _record(quantity=10**9, unit_price={"amount": 10**9 + 1, "currency": "EUR"})
    one = fast_items.decode_records([at_limit])
    assert one is not None and fast_items.pack(one) is not None
    both = fast_items.decode_records([at_limit, at_limit])
    assert both is not None and fast_items.pack(both) is None  # the EUR total would be 2 x 10**18
    single = fast_items.decode_records([past])
    assert single is not None and fast_items.pack(single) is None
    assert pydantic_accepts(json.loads(past)) is None
