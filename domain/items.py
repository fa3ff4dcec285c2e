"""One order line, validated once at the edge of the system.

``Item`` is the pydantic model users build and read. Bulk paths (batch encoding, the
importer) work on plain dicts that went through :data:`ITEM_DICTS`, the same rules
compiled for lists of dicts: validating into dicts skips building a model object per item
and is what lets validation keep up with millions of items.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Iterable, Mapping, TypeAlias

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError
from typing_extensions import NotRequired, TypedDict

from domain.errors import BulkorderError
from domain.limits import MAX_LINE_TOTAL, MAX_ORDER_QUANTITY, MAX_ORDER_TOTAL  # noqa: F401 - the rules, in one place

# The rules, as values: the pydantic types below and the importer's fast decoder
# (workflows.importer.fast_items) are both built from these.
MAX_ATTRIBUTES = 500
MAX_QUANTITY = 1_000_000_000
MAX_UNIT_AMOUNT = 10**15
SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"
SKU_MAX_LENGTH = 64
CURRENCY_PATTERN = r"^[A-Z]{3}$"
NAME_MAX_LENGTH = 500
ATTRIBUTE_KEY_MAX_LENGTH = 128
ATTRIBUTE_TEXT_MAX_LENGTH = 4096
#: Whole-number attributes are 64-bit: what batches (msgpack) and most consumers can hold.
ATTRIBUTE_INT_MIN = -(2**63)
ATTRIBUTE_INT_MAX = 2**63 - 1

Sku = Annotated[str, StringConstraints(min_length=1, max_length=SKU_MAX_LENGTH, pattern=SKU_PATTERN)]
Currency = Annotated[str, StringConstraints(pattern=CURRENCY_PATTERN)]
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY)]
Amount = Annotated[int, Field(ge=0, le=MAX_UNIT_AMOUNT)]
ItemName = Annotated[str, StringConstraints(min_length=1, max_length=NAME_MAX_LENGTH)]
AttributeKey = Annotated[str, StringConstraints(min_length=1, max_length=ATTRIBUTE_KEY_MAX_LENGTH)]


def _not_a_whole_number(value: object) -> object:
    # pydantic's float takes any int, even in strict mode: a whole number too big for 64
    # bits would silently become an approximate float. Refuse it (the int member reports it).
    if type(value) is int:
        raise PydanticCustomError("whole_number_out_of_range", "whole numbers must fit in 64 bits")
    return value


AttributeValue: TypeAlias = (
    Annotated[str, StringConstraints(max_length=ATTRIBUTE_TEXT_MAX_LENGTH)]
    | Annotated[int, Field(ge=ATTRIBUTE_INT_MIN, le=ATTRIBUTE_INT_MAX)]
    | Annotated[float, BeforeValidator(_not_a_whole_number)]
    | bool
    | None
)
Attributes = Annotated[dict[AttributeKey, AttributeValue], Field(max_length=MAX_ATTRIBUTES)]

_STRICT = ConfigDict(strict=True, extra="forbid", frozen=True)


class Money(BaseModel):
    """A price in integer minor units (cents) of an ISO 4217 currency."""

    model_config = _STRICT
    amount: Amount
    currency: Currency


class Item(BaseModel):
    """One order line: what is ordered, how many, at what unit price."""

    model_config = _STRICT
    sku: Sku
    quantity: Quantity
    unit_price: Money
    name: ItemName
    attributes: Attributes = Field(default_factory=dict)

    @property
    def line_total(self) -> int:
        return self.quantity * self.unit_price.amount


class MoneyDict(TypedDict):
    __pydantic_config__ = ConfigDict(strict=True, extra="forbid")  # type: ignore[misc]
    amount: Amount
    currency: Currency


class ItemDict(TypedDict):
    """The dict form of :class:`Item` (``attributes`` optional, as on the model)."""

    __pydantic_config__ = ConfigDict(strict=True, extra="forbid")  # type: ignore[misc]
    sku: Sku
    quantity: Quantity
    unit_price: MoneyDict
    name: ItemName
    attributes: NotRequired[Attributes]

ITEM_DICT: TypeAdapter[ItemDict] = TypeAdapter(ItemDict)
ITEM_DICTS: TypeAdapter[list[ItemDict]] = TypeAdapter(list[ItemDict])


class ItemValidationError(BulkorderError, ValueError):
    """One or more items are invalid. ``problems`` lists ``(where, field, message)``."""

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = problems
        shown = "; ".join(f"{where}: {fld}: {msg}" if fld else f"{where}: {msg}" for where, fld, msg in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"invalid item{'s' if len(problems) > 1 else ''}: {shown}{more}")


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _message(err: Any) -> str:
    msg: str = err["msg"]
    if err["type"] not in ("missing", "extra_forbidden") and "input" in err:
        shown = repr(err["input"])
        msg += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    return msg


# pydantic reports a failed union once per member, tagged ("attributes.note.str", ...).
# The user wrote "attributes.note": report it once, with the message of the member the
# value's type was meant for, or one message naming every allowed type.
_UNION_MEMBERS: dict[str, type] = {
    "str": str,
    "constrained-str": str,
    "int": int,
    "constrained-int": int,
    "float": float,
    "function-before[_not_a_whole_number(), float]": float,
    "bool": bool,
    "none": type(None),
}
_ATTRIBUTE_TYPES = "a string, a whole number, a number, a boolean or null"


def _errors(exc: ValidationError, loc_start: int = 0) -> list[tuple[tuple[Any, ...], str]]:
    """(location, message) per problem, union members folded into their field."""
    out: list[tuple[tuple[Any, ...], str]] = []
    unions: dict[tuple[Any, ...], list[Any]] = {}
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        if len(loc) > loc_start + 1 and loc[-1] in _UNION_MEMBERS:
            if loc[:-1] not in unions:
                unions[loc[:-1]] = []
                out.append((loc[:-1], ""))  # placeholder keeps the order
            unions[loc[:-1]].append(err)
        else:
            out.append((loc, _message(err)))
    return [(loc, message or _union_message(unions[loc])) for loc, message in out]


def _union_message(errors: list[Any]) -> str:
    value = errors[0].get("input")
    for err in errors:
        member = _UNION_MEMBERS[err["loc"][-1]]
        if type(value) is member:
            return _message(err)
    shown = repr(value)
    return f"Input should be {_ATTRIBUTE_TYPES} (got {shown if len(shown) <= 60 else shown[:57] + '...'})"


def _problems(exc: ValidationError, where: str) -> list[tuple[str, str, str]]:
    return [(where, _field_path(loc), message) for loc, message in _errors(exc)]


def validate_item_dict(item: object, where: str = "item") -> dict[str, Any]:
    """Validate one item given as a mapping; return it as a plain dict.

    Raises :class:`ItemValidationError` naming ``where`` (e.g. ``items.ndjson line 12``)
    and the field.
    """
    try:
        value = ITEM_DICT.validate_python(item)
    except ValidationError as exc:
        raise ItemValidationError(_problems(exc, where)) from None
    return value  # type: ignore[return-value]


def validate_item_dicts(items: Iterable[object], where: str = "item") -> list[dict[str, Any]]:
    """Validate many items at once (the fast path); errors name ``where[index]``."""
    items = items if isinstance(items, list) else list(items)
    try:
        values: list[dict[str, Any]] = ITEM_DICTS.validate_python(items)  # type: ignore[assignment]
    except ValidationError as exc:
        problems = [(f"{where}[{loc[0]}]", _field_path(loc[1:]), message) for loc, message in _errors(exc, 1)]
        raise ItemValidationError(problems) from None
    return values


def check_batch_sums(quantity: int, totals: Mapping[str, int], where: str = "batch") -> None:
    """Refuse (:class:`ItemValidationError` naming ``where``) a batch whose quantity or a
    per-currency total passes the order bounds: no order could hold it."""
    if quantity > MAX_ORDER_QUANTITY:
        raise ItemValidationError([(where, "quantity", f"the items' quantities add up to {quantity}, above the limit of {MAX_ORDER_QUANTITY}")])
    for currency, total in totals.items():
        if total > MAX_ORDER_TOTAL:
            raise ItemValidationError(
                [(where, "unit_price", f"the {currency} line totals add up to {total} minor units, above the limit of {MAX_ORDER_TOTAL}")]
            )


def item_from_dict(item: Mapping[str, Any]) -> Item:
    return Item.model_validate(item)


def item_to_dict(item: Item) -> dict[str, Any]:
    return item.model_dump()


def line_total(item: Mapping[str, Any]) -> int:
    return int(item["quantity"]) * int(item["unit_price"]["amount"])


def items_from_json_lines(lines: Iterable[str], source: str = "input", *, max_problems: int = 20) -> list[dict[str, Any]]:
    """Parse and validate NDJSON lines (small inputs: the CLI's ``--items`` and ``add``).

    Reports up to ``max_problems`` bad lines at once, each with its line number."""
    out = []
    problems: list[tuple[str, str, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source} line {number}"
        try:
            out.append(validate_item_dict(json.loads(line), where))
        except json.JSONDecodeError as exc:
            problems.append((where, "", f"not valid JSON: {exc.msg} at column {exc.colno}"))
        except ItemValidationError as exc:
            problems.extend(exc.problems)
        if len(problems) >= max_problems:
            break
    if problems:
        raise ItemValidationError(problems)
    return out
