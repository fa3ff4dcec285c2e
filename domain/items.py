"""One order line, validated once at the edge of the system.

``Item`` is the pydantic model users build and read. Bulk paths (batch encoding, the
importer) work on plain dicts that went through :data:`ITEM_DICTS`, the same rules
compiled for lists of dicts: validating into dicts skips building a model object per item
and is what lets validation keep up with millions of items.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Iterable, Mapping, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError
from typing_extensions import NotRequired, TypedDict

from bulkorder.domain import json_text
from bulkorder.domain.errors import BulkorderError
from bulkorder.domain.limits import MAX_LINE_TOTAL, MAX_ORDER_QUANTITY, MAX_ORDER_TOTAL  # noqa: F401 - the rules, in one place

# The rules, as values: the pydantic types below and the importer's fast decoder
# (bulkorder.importer.fast_items) are both built from these.
MAX_ATTRIBUTES = 500
MAX_QUANTITY = 1_000_000_000
MAX_UNIT_AMOUNT = 10**15
# Patterns match the whole value: pydantic-core's (Rust) regex reads ``$`` as the end of
# the text. Python's ``re`` does not (``$`` also matches before a final newline), so Python
# code checks with SKU_REGEX/CURRENCY_REGEX.fullmatch, and the fast decoder ends them in ``\Z``.
SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"
SKU_MAX_LENGTH = 64
CURRENCY_PATTERN = r"^[A-Z]{3}$"
SKU_REGEX = re.compile(SKU_PATTERN[1:-1])
CURRENCY_REGEX = re.compile(CURRENCY_PATTERN[1:-1])
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
    # NaN and the infinities are no numbers JSON can carry (they would come back as null).
    if type(value) is float and not math.isfinite(value):
        raise PydanticCustomError("finite_number", "NaN and Infinity are refused: numbers must be finite")
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


def line_total_problem(quantity: int, amount: int) -> str | None:
    """Why an item of this quantity and unit amount cannot be stored, or ``None``."""
    total = quantity * amount
    if total > MAX_LINE_TOTAL:
        return (
            f"the line total quantity x unit_price.amount = {total:,} exceeds the limit "
            f"MAX_LINE_TOTAL = {MAX_LINE_TOTAL:,}"
        )
    return None


def _line_total_error(quantity: int, amount: int) -> PydanticCustomError | None:
    problem = line_total_problem(quantity, amount)
    return PydanticCustomError("line_total_too_large", problem) if problem else None


class Item(BaseModel):
    """One order line: what is ordered, how many, at what unit price."""

    model_config = _STRICT
    sku: Sku
    quantity: Quantity
    unit_price: Money
    name: ItemName
    attributes: Attributes = Field(default_factory=dict)

    @model_validator(mode="after")
    def _line_total_in_bounds(self) -> Item:
        error = _line_total_error(self.quantity, self.unit_price.amount)
        if error is not None:
            raise error
        return self

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


def _check_line_total(item: ItemDict) -> ItemDict:
    error = _line_total_error(item["quantity"], item["unit_price"]["amount"])
    if error is not None:
        raise error
    return item


#: An :class:`ItemDict` whose line total is within :data:`MAX_LINE_TOTAL`.
CheckedItemDict = Annotated[ItemDict, AfterValidator(_check_line_total)]
ITEM_DICT: TypeAdapter[ItemDict] = TypeAdapter(CheckedItemDict)
ITEM_DICTS: TypeAdapter[list[ItemDict]] = TypeAdapter(list[CheckedItemDict])


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
        if err["type"] == "line_total_too_large":
            out.append((loc + ("quantity",), err["msg"]))
            continue
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
            out.append(validate_item_dict(json_text.loads(line), where))
        except json_text.JsonTextError as exc:
            problems.append((where, "", str(exc)))
        except ItemValidationError as exc:
            problems.extend(exc.problems)
        if len(problems) >= max_problems:
            break
    if problems:
        raise ItemValidationError(problems)
    return out


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
