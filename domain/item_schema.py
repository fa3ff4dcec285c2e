"""The item schema: every field of an order line, its type and its bounds, in one table.

:data:`ITEM_FIELDS` names the fields in stored order (the order of an encoded item's map),
each with its :class:`FieldRule`. Every reader and checker of items is built from it: the
pydantic model and its dict form (:mod:`bulkorder.domain.items`, the authority on
messages), the importer's and the item stream's msgspec structs
(``bulkorder.storage.item_structs``) and the counted-field check of items read back
(:mod:`bulkorder.domain.counters`). Adding a field or changing a bound starts, and ends, here.

Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, TypeAlias

# The bounds, as values: the field rules below are made of these.
MAX_ATTRIBUTES = 500
MAX_QUANTITY = 1_000_000_000
MAX_UNIT_AMOUNT = 10**15
# Patterns match the whole value: pydantic-core's (Rust) regex reads ``$`` as the end of
# the text. Python's ``re`` does not (``$`` also matches before a final newline), so Python
# code checks with fullmatch (FieldRule.accepts, SKU_REGEX), and msgspec's patterns end in ``\Z``.
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


@dataclass(frozen=True)
class FieldRule:
    """One field of an item: its type and bounds."""

    type: type  # int or str
    ge: int | None = None
    le: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    #: Matches the whole value (``^...$``, as pydantic-core reads it).
    pattern: str | None = None

    def __post_init__(self) -> None:
        # Python's ``$`` also matches before a final newline: checks here use fullmatch.
        regex = re.compile(self.pattern[1:-1]) if self.pattern is not None else None
        object.__setattr__(self, "_regex", regex)

    def accepts(self, value: object) -> bool:
        """Whether ``value`` keeps this rule (strictly: ``True`` is no whole number)."""
        if type(value) is not self.type:
            return False
        if self.type is int:
            return (self.ge is None or value >= self.ge) and (self.le is None or value <= self.le)  # type: ignore[operator]
        text: str = value  # type: ignore[assignment]
        if (self.min_length is not None and len(text) < self.min_length) or (
            self.max_length is not None and len(text) > self.max_length
        ):
            return False
        regex: re.Pattern[str] | None = self._regex  # type: ignore[attr-defined]
        return regex is None or regex.fullmatch(text) is not None


@dataclass(frozen=True)
class AttributesRule:
    """The free-form ``attributes`` map: bounded keys, and values that are bounded text, a
    64-bit whole number, a finite number, a boolean or null."""

    key: FieldRule
    text: FieldRule
    whole: FieldRule
    max_length: int


SKU = FieldRule(str, min_length=1, max_length=SKU_MAX_LENGTH, pattern=SKU_PATTERN)
QUANTITY = FieldRule(int, ge=1, le=MAX_QUANTITY)
AMOUNT = FieldRule(int, ge=0, le=MAX_UNIT_AMOUNT)
CURRENCY = FieldRule(str, pattern=CURRENCY_PATTERN)
NAME = FieldRule(str, min_length=1, max_length=NAME_MAX_LENGTH)
ATTRIBUTES = AttributesRule(
    key=FieldRule(str, min_length=1, max_length=ATTRIBUTE_KEY_MAX_LENGTH),
    text=FieldRule(str, max_length=ATTRIBUTE_TEXT_MAX_LENGTH),
    whole=FieldRule(int, ge=ATTRIBUTE_INT_MIN, le=ATTRIBUTE_INT_MAX),
    max_length=MAX_ATTRIBUTES,
)

FieldShape: TypeAlias = "FieldRule | AttributesRule | Mapping[str, FieldRule]"
#: The price's fields, in stored order.
MONEY_FIELDS: Mapping[str, FieldRule] = MappingProxyType({"amount": AMOUNT, "currency": CURRENCY})
#: The item's fields in stored order (the order of an encoded item's map): a rule, the
#: attributes map, or the nested price. Adding a field to items starts here.
ITEM_FIELDS: Mapping[str, FieldShape] = MappingProxyType(
    {"sku": SKU, "quantity": QUANTITY, "unit_price": MONEY_FIELDS, "name": NAME, "attributes": ATTRIBUTES}
)
#: Fields an item may leave out (stored items omit an empty ``attributes``).
OPTIONAL_FIELDS = frozenset({"attributes"})
#: Where each rule applies, by dotted path: the fields that money and the report count on.
COUNTED_FIELDS: Mapping[str, FieldRule] = MappingProxyType(
    {"sku": SKU, "quantity": QUANTITY, "unit_price.amount": AMOUNT, "unit_price.currency": CURRENCY}
)
