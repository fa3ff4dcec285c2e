"""One order line, validated once at the edge of the system.

The fields, their types and bounds are the item schema's (:mod:`bulkorder.domain.item_schema`,
re-exported here); this module builds from it the pydantic model ``Item`` users build and
read and its dict form :data:`ITEM_DICTS`, and holds their messages: pydantic's wording is
the one every decoder reports (the fast ones hand a refused item to it for the message).

Bulk paths (batch encoding, the importer) work on plain dicts that went through
:data:`ITEM_DICTS`: validating into dicts skips building a model object per item and is
what lets validation keep up with millions of items.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Iterable, Mapping, TypeAlias, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError
from typing_extensions import NotRequired, TypedDict

from bulkorder.domain import json_text
from bulkorder.domain.errors import BulkorderError
# The schema (fields, types, bounds) is bulkorder.domain.item_schema's; these names stay
# importable from here, where the rules have always been.
from bulkorder.domain.item_schema import (  # noqa: F401 - re-exported
    AMOUNT,
    ATTRIBUTE_INT_MAX,
    ATTRIBUTE_INT_MIN,
    ATTRIBUTE_KEY_MAX_LENGTH,
    ATTRIBUTE_TEXT_MAX_LENGTH,
    ATTRIBUTES,
    COUNTED_FIELDS,
    CURRENCY,
    CURRENCY_PATTERN,
    CURRENCY_REGEX,
    ITEM_FIELDS,
    MAX_ATTRIBUTES,
    MAX_QUANTITY,
    MAX_UNIT_AMOUNT,
    MONEY_FIELDS,
    NAME,
    NAME_MAX_LENGTH,
    OPTIONAL_FIELDS,
    QUANTITY,
    SKU,
    SKU_MAX_LENGTH,
    SKU_PATTERN,
    SKU_REGEX,
    AttributesRule,
    FieldRule,
    FieldShape,
)
from bulkorder.domain.limits import MAX_LINE_TOTAL, MAX_ORDER_QUANTITY, MAX_ORDER_TOTAL  # noqa: F401 - the rules, in one place


def pydantic_type(rule: FieldRule) -> Any:
    """The pydantic type that keeps ``rule``."""
    if rule.type is str:
        return Annotated[str, StringConstraints(min_length=rule.min_length, max_length=rule.max_length, pattern=rule.pattern)]
    return Annotated[int, Field(ge=rule.ge, le=rule.le)]


Sku = pydantic_type(SKU)
Currency = pydantic_type(CURRENCY)
Quantity = pydantic_type(QUANTITY)
Amount = pydantic_type(AMOUNT)
ItemName = pydantic_type(NAME)
AttributeKey = pydantic_type(ATTRIBUTES.key)


def _not_a_whole_number(value: object) -> object:
    # pydantic's float takes any int, even in strict mode: a whole number too big for 64
    # bits would silently become an approximate float. Refuse it (the int member reports it).
    if type(value) is int:
        raise PydanticCustomError("whole_number_out_of_range", "whole numbers must fit in 64 bits")
    # NaN and the infinities are no numbers JSON can carry (they would come back as null).
    if type(value) is float and not math.isfinite(value):
        raise PydanticCustomError("finite_number", "NaN and Infinity are refused: numbers must be finite")
    return value


AttributeValue: TypeAlias = Union[  # noqa: UP007 - built at run time from the rules
    pydantic_type(ATTRIBUTES.text),
    pydantic_type(ATTRIBUTES.whole),
    Annotated[float, BeforeValidator(_not_a_whole_number)],
    bool,
    None,
]
Attributes = Annotated[dict[AttributeKey, AttributeValue], Field(max_length=ATTRIBUTES.max_length)]  # type: ignore[valid-type]

_STRICT = ConfigDict(strict=True, extra="forbid", frozen=True)


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


def _pydantic_fields(fields: Mapping[str, FieldShape], nested: Any) -> dict[str, Any]:
    """``create_model`` / ``TypedDict`` field types for ``fields``; ``nested`` is the price's type."""
    types: dict[str, Any] = {}
    for name, shape in fields.items():
        if isinstance(shape, FieldRule):
            types[name] = pydantic_type(shape)
        elif isinstance(shape, AttributesRule):
            types[name] = Attributes
        else:
            types[name] = nested
    return types


class _StrictModel(BaseModel):
    model_config = _STRICT


class _ItemModel(_StrictModel):
    """What an item adds to its fields: the line total, bounded."""

    @model_validator(mode="after")
    def _line_total_in_bounds(self) -> Any:
        error = _line_total_error(self.quantity, self.unit_price.amount)  # type: ignore[attr-defined]
        if error is not None:
            raise error
        return self

    @property
    def line_total(self) -> int:
        return self.quantity * self.unit_price.amount  # type: ignore[attr-defined,no-any-return]


# The models users build and read, made from the field table (``ITEM_FIELDS``): a field
# added there is a field of ``Item``, of its dict form and of the fast decoders.
Money = create_model(
    "Money",
    __base__=_StrictModel,
    __module__=__name__,
    __doc__="A price in integer minor units (cents) of an ISO 4217 currency.",
    **{name: (kind, ...) for name, kind in _pydantic_fields(MONEY_FIELDS, None).items()},
)
Item = create_model(
    "Item",
    __base__=_ItemModel,
    __module__=__name__,
    __doc__="One order line: what is ordered, how many, at what unit price.",
    **{
        name: (kind, Field(default_factory=dict) if name in OPTIONAL_FIELDS else ...)
        for name, kind in _pydantic_fields(ITEM_FIELDS, Money).items()
    },
)

_DICT_CONFIG = ConfigDict(strict=True, extra="forbid")
#: The dict forms of :class:`Money` and :class:`Item` (``attributes`` optional, as on the model).
MoneyDict = TypedDict("MoneyDict", _pydantic_fields(MONEY_FIELDS, None))  # type: ignore[misc]
MoneyDict.__pydantic_config__ = _DICT_CONFIG  # type: ignore[attr-defined]
ItemDict = TypedDict(  # type: ignore[misc]
    "ItemDict",
    {
        name: NotRequired[kind] if name in OPTIONAL_FIELDS else kind
        for name, kind in _pydantic_fields(ITEM_FIELDS, MoneyDict).items()
    },
)
ItemDict.__pydantic_config__ = _DICT_CONFIG  # type: ignore[attr-defined]


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


def field_problem(item: object, fields: Mapping[str, FieldRule]) -> list[tuple[str, str]]:
    """``(field, message)`` for each of ``fields`` (dotted paths) that ``item`` breaks, in
    the model's words: how a fast check that refused an item says why, as pydantic would."""
    try:
        ITEM_DICT.validate_python(item)
    except ValidationError as exc:
        found = [
            (path, message)
            for path, message in ((_field_path(loc), message) for loc, message in _errors(exc))
            if path in fields or not path or any(name.startswith(path + ".") for name in fields)
        ]
    else:
        found = []
    if found:
        return found
    # The model accepts what a rule refused: a disagreement the tests keep from happening.
    return [(path, "breaks its rule") for path, rule in fields.items() if not rule.accepts(_at(item, path))]


def _at(item: object, path: str) -> object:
    value = item
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


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
