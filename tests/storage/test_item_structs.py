"""One item schema: every decoder built from it agrees on one table of good and bad items.

The decoders: the pydantic model's dict form (the authority and the wording), the
importer's msgspec structs (``FastItem``, with the line-total and sum checks of ``pack``),
the stored-shape structs of the item stream (``StoredItem``) and the counted-field check of
items read back (``count_items``). Same items accepted, same items refused, and where a
decoder says why, the same words.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
import msgspec
import pytest

from bulkorder.domain.counters import count_items
from bulkorder.domain.items import (
    COUNTED_FIELDS,
    ITEM_FIELDS,
    ItemDict,
    Item,
    ItemValidationError,
    MAX_QUANTITY,
    MAX_UNIT_AMOUNT,
    validate_item_dict,
)
from bulkorder.domain.limits import MAX_LINE_TOTAL
from bulkorder.importer import fast_items
from bulkorder.storage.batch_codec import decode_stored_items, encode_batch, frame_batch
from bulkorder.storage.item_structs import KEYS_PER_ITEM, FastItem, StoredItem

GOOD: dict[str, Any] = {"sku": "SKU-1", "quantity": 3, "unit_price": {"amount": 250, "currency": "EUR"}, "name": "Widget"}


def price(**changes: Any) -> dict[str, Any]:
    return {**GOOD["unit_price"], **changes}


#: (what it is, the item, the counted field the model names first or None when it is
#: good; "" for a problem with a field that is not counted).
TABLE: list[tuple[str, dict[str, Any], str | None]] = [
    ("plain", GOOD, None),
    ("with attributes", {**GOOD, "attributes": {"colour": "red", "size": 4, "weight": 1.5, "gift": True, "note": None}}, None),
    ("quantity at its bound", {**GOOD, "quantity": MAX_QUANTITY, "unit_price": price(amount=1)}, None),
    ("amount at its bound", {**GOOD, "quantity": 1, "unit_price": price(amount=MAX_UNIT_AMOUNT)}, None),
    ("free item", {**GOOD, "unit_price": price(amount=0)}, None),
    ("longest SKU", {**GOOD, "sku": "A" * 64}, None),
    ("quantity 0", {**GOOD, "quantity": 0}, "quantity"),
    ("quantity past its bound", {**GOOD, "quantity": MAX_QUANTITY + 1}, "quantity"),
    ("quantity true", {**GOOD, "quantity": True}, "quantity"),
    ("quantity as text", {**GOOD, "quantity": "3"}, "quantity"),
    ("quantity a float", {**GOOD, "quantity": 3.0}, "quantity"),
    ("negative amount", {**GOOD, "unit_price": price(amount=-1)}, "unit_price.amount"),
    ("amount past its bound", {**GOOD, "unit_price": price(amount=MAX_UNIT_AMOUNT + 1)}, "unit_price.amount"),
    ("lower-case currency", {**GOOD, "unit_price": price(currency="eur")}, "unit_price.currency"),
    ("currency with a newline", {**GOOD, "unit_price": price(currency="EUR\n")}, "unit_price.currency"),
    ("empty SKU", {**GOOD, "sku": ""}, "sku"),
    ("SKU too long", {**GOOD, "sku": "A" * 65}, "sku"),
    ("SKU with a space", {**GOOD, "sku": "A B"}, "sku"),
    ("SKU with a newline", {**GOOD, "sku": "A\n"}, "sku"),
    ("no quantity", {k: v for k, v in GOOD.items() if k != "quantity"}, "quantity"),
    ("no price", {k: v for k, v in GOOD.items() if k != "unit_price"}, "unit_price"),
    ("line total past its bound", {**GOOD, "quantity": MAX_QUANTITY, "unit_price": price(amount=MAX_UNIT_AMOUNT)}, "quantity"),
    ("empty name", {**GOOD, "name": ""}, ""),
    ("no name", {k: v for k, v in GOOD.items() if k != "name"}, ""),
    ("a field more", {**GOOD, "colour": "red"}, ""),
    ("attribute too long", {**GOOD, "attributes": {"note": "x" * 4097}}, ""),
    ("attribute past 64 bits", {**GOOD, "attributes": {"big": 2**63}}, ""),
    ("attribute a list", {**GOOD, "attributes": {"tags": ["a"]}}, ""),
]
CASES = [pytest.param(item, field, id=name) for name, item, field in TABLE]


def model_problems(item: dict[str, Any]) -> list[tuple[str, str]] | None:
    """The authority: ``None`` if the model accepts the item, else (field, message) pairs."""
    try:
        validate_item_dict(item, "item")
    except ItemValidationError as exc:
        return [(field, message) for _, field, message in exc.problems]
    return None


def fast_accepts(item: dict[str, Any]) -> bool:
    record = json.dumps(item).encode()
    decoded = fast_items.decode_records([record])
    return decoded is not None and fast_items.pack(decoded) is not None


@pytest.mark.parametrize(("item", "field"), CASES)
def test_the_model_and_the_importers_structs_accept_and_refuse_the_same_items(item: dict[str, Any], field: str | None) -> None:
    problems = model_problems(item)
    assert (problems is None) == (field is None)
    if field:
        assert problems is not None and problems[0][0] == field
    assert fast_accepts(item) == (problems is None)
    # The CSV path converts values already parsed: the same verdict.
    converted = fast_items.convert([item])
    assert (converted is not None and fast_items.pack(converted) is not None) == (problems is None)


@pytest.mark.parametrize(("item", "field"), CASES)
def test_the_counted_field_check_refuses_what_the_model_refuses_in_its_words(item: dict[str, Any], field: str | None) -> None:
    problems = model_problems(item)
    # The model's problems with counted fields (or the parent they sit in, when it is missing).
    counted = [
        (fld, msg) for fld, msg in problems or []
        if fld in COUNTED_FIELDS or any(name.startswith(fld + ".") for name in COUNTED_FIELDS)
    ]
    if not counted:  # good, or bad only in fields money does not depend on
        assert count_items([item], "batch b1") == (item["quantity"], {item["unit_price"]["currency"]: item["quantity"] * item["unit_price"]["amount"]})
        return
    with pytest.raises(ItemValidationError) as raised:
        count_items([GOOD, item], "batch b1")
    assert [(where, fld, msg) for where, fld, msg in raised.value.problems] == [
        ("batch b1 item 1", fld, msg) for fld, msg in counted
    ]


@pytest.mark.parametrize(("item", "field"), [case for case in CASES if case.values[1] is None])
def test_stored_structs_read_back_every_good_item_as_stored(item: dict[str, Any], field: None) -> None:
    stored = validate_item_dict(item)
    data = encode_batch([stored, stored])
    structs = decode_stored_items(data, item_count=2)
    assert structs is not None
    assert msgspec.json.decode(msgspec.json.encode(structs)) == [stored, stored]


def test_a_batch_of_another_shape_is_not_read_as_stored_items() -> None:
    assert decode_stored_items(encode_batch([{**GOOD, "colour": "red"}])) is None
    assert decode_stored_items(encode_batch([{k: v for k, v in GOOD.items() if k != "name"}])) is None


def test_every_decoder_has_the_tables_fields_in_its_order() -> None:
    names = list(ITEM_FIELDS)
    assert list(Item.model_fields) == names
    assert list(ItemDict.__annotations__) == names
    assert [f.name for f in msgspec.structs.fields(FastItem)] == names
    assert [f.name for f in msgspec.structs.fields(StoredItem)] == names
    assert KEYS_PER_ITEM == 6  # sku, quantity, unit_price, amount, currency, name


def test_a_fast_struct_packs_to_the_stored_items_bytes() -> None:
    item = {**GOOD, "attributes": {"colour": "red"}}
    decoded = fast_items.decode_records([json.dumps(item).encode()])
    assert decoded is not None
    packed = fast_items.pack(decoded)
    assert packed is not None and packed.raw == msgpack.packb([validate_item_dict(item)], use_bin_type=True)


def test_the_line_bound_is_the_domains() -> None:
    assert MAX_QUANTITY * MAX_UNIT_AMOUNT > MAX_LINE_TOTAL  # so the line-total case above is reachable


def test_attributes_nested_past_the_stack_are_a_bad_batch_not_a_crash() -> None:
    """A hostile body of ~200 KB whose attributes nest 200,000 arrays deep: msgspec runs out
    of stack (RecursionError); the reader answers as for any other bad body."""
    marker = "NESTED-HERE"
    raw = msgpack.packb([{**GOOD, "attributes": {"a": marker}}], use_bin_type=True)
    packed_marker = msgpack.packb(marker, use_bin_type=True)
    raw = raw.replace(packed_marker, b"\x91" * 200_000 + b"\xc0")
    data = frame_batch(raw, 1)
    assert decode_stored_items(data, item_count=1) is None
