"""Item validation: strict, with messages that name the place and the field."""

from __future__ import annotations

from typing import Any

import pytest

from domain.items import Item, ItemValidationError, items_from_json_lines, validate_item_dict, validate_item_dicts
from domain.sample_items import generate_items


def item(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sku": "SKU-1",
        "quantity": 2,
        "unit_price": {"amount": 1299, "currency": "EUR"},
        "name": "Widget",
        "attributes": {"color": "red", "weight_g": 120, "fragile": False, "ratio": 0.5, "note": None},
    }
    base.update(changes)
    return base


def test_valid_item_round_trips_through_model_and_dict() -> None:
    model = Item.model_validate(item())
    assert model.line_total == 2598
    assert validate_item_dict(model.model_dump()) == item()


def test_generated_sample_items_are_valid() -> None:
    items = list(generate_items(2_000))
    assert validate_item_dicts(items) == items
    assert all(20 <= len(i["attributes"]) <= 25 for i in items)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"sku": ""}, "sku", "at least 1 character"),
        ({"sku": "bad sku!"}, "sku", "should match pattern"),
        ({"quantity": 0}, "quantity", "greater than or equal to 1"),
        ({"quantity": "3"}, "quantity", "valid integer"),
        ({"quantity": 2.5}, "quantity", "valid integer"),
        ({"unit_price": {"amount": -1, "currency": "EUR"}}, "unit_price.amount", "greater than or equal to 0"),
        ({"unit_price": {"amount": 1, "currency": "eur"}}, "unit_price.currency", "should match pattern"),
        ({"unit_price": {"amount": 1}}, "unit_price.currency", "Field required"),
        ({"name": ""}, "name", "at least 1 character"),
        ({"attributes": {"nested": {"a": 1}}}, "attributes.nested", "a string, a whole number, a number, a boolean or null"),
        ({"attributes": {"long": "t" * 4097}}, "attributes.long", "at most 4096 characters"),
        # Too big for 64 bits: refused, not silently turned into an approximate float.
        ({"attributes": {"big": 2**63}}, "attributes.big", "less than or equal to 9223372036854775807"),
        ({"attributes": {"small": -(2**63) - 1}}, "attributes.small", "greater than or equal to -9223372036854775808"),
        ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
    ],
)
def test_invalid_item_names_the_field(changes: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ItemValidationError) as raised:
        validate_item_dict(item(**changes), "orders.ndjson line 7")
    problems = raised.value.problems
    # One problem per field the user wrote (a union's members are folded into it).
    assert [(where, fld) for where, fld, _ in problems] == [("orders.ndjson line 7", field)], problems
    assert message in problems[0][2]
    assert "orders.ndjson line 7" in str(raised.value)


def test_missing_fields_are_each_named() -> None:
    with pytest.raises(ItemValidationError) as raised:
        validate_item_dict({"sku": "A"}, "item 3")
    assert {fld for _, fld, _ in raised.value.problems} == {"quantity", "unit_price", "name"}


def test_too_many_attributes_is_refused() -> None:
    with pytest.raises(ItemValidationError, match="attributes"):
        validate_item_dict(item(attributes={f"k{i}": i for i in range(501)}))


def test_bulk_validation_names_the_index_of_each_bad_item() -> None:
    items = [item(), item(quantity=-1), item(), item(sku="")]
    with pytest.raises(ItemValidationError) as raised:
        validate_item_dicts(items, "batch 4 item")
    assert [(where, fld) for where, fld, _ in raised.value.problems] == [
        ("batch 4 item[1]", "quantity"),
        ("batch 4 item[3]", "sku"),
    ]


def test_json_lines_name_the_line_of_bad_json() -> None:
    with pytest.raises(ItemValidationError, match=r"in.ndjson line 2: not valid JSON"):
        items_from_json_lines(['{"sku": "A", "quantity": 1, "unit_price": {"amount": 1, "currency": "EUR"}, "name": "a"}', "{oops"], "in.ndjson")
