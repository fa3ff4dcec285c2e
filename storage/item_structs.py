"""The domain's item schema as msgspec structs: the fast decoders, derived, not restated.

msgspec decodes JSON or msgpack straight into structs in C, checking types and bounds on
the way, without a dict per item: what lets the importer validate and the item stream
re-encode millions of items. Both struct families here are generated from
:data:`bulkorder.domain.items.ITEM_FIELDS` (field names, order, which are optional) and
its :class:`~bulkorder.domain.items.FieldRule`s (types and bounds), so a field or a bound
changed there changes here too:

- :data:`FastItem` (with :data:`FastMoney`): every rule checked, for items coming in (the
  importer). What it accepts pydantic accepts; what it refuses goes to pydantic for the
  message (``bulkorder.importer.fast_items``; tests/storage/test_item_structs.py holds the
  decoders to one table of good and bad items).
- :data:`StoredItem` (with :data:`StoredMoney`): the stored shape, values taken as they
  are, for items going out (``bulkorder.storage.batch_codec.decode_stored_items``).

Struct fields keep the table's order and leave an empty optional field out
(``omit_defaults``), so a struct packs to the same msgpack map as the validated item dict.
"""

from __future__ import annotations

from typing import Annotated, Any, Mapping, Union

import msgspec

from bulkorder.domain.items import ITEM_FIELDS, MONEY_FIELDS, OPTIONAL_FIELDS, AttributesRule, FieldRule, FieldShape

__all__ = ["FastItem", "FastMoney", "StoredItem", "StoredMoney", "KEYS_PER_ITEM"]

#: The largest finite float: NaN and the infinities fail bounds of +-this.
_FLOAT_MAX = 1.7976931348623157e308


def _anchored(pattern: str) -> str:
    # msgspec matches with re.search, where "$" would also accept a trailing newline.
    if not (pattern.startswith("^") and pattern.endswith("$")):
        raise ValueError(f"a field pattern must match the whole value (^...$): {pattern!r}")
    return pattern[:-1] + r"\Z"


def checked_type(rule: FieldRule) -> Any:
    """The msgspec type that keeps ``rule``."""
    meta = msgspec.Meta(
        ge=rule.ge,
        le=rule.le,
        min_length=rule.min_length,
        max_length=rule.max_length,
        pattern=_anchored(rule.pattern) if rule.pattern is not None else None,
    )
    return Annotated[rule.type, meta]


def _checked_attributes(rule: AttributesRule) -> Any:
    finite = Annotated[float, msgspec.Meta(ge=-_FLOAT_MAX, le=_FLOAT_MAX)]
    values = Union[checked_type(rule.text), checked_type(rule.whole), finite, bool, None]  # noqa: UP007
    return Annotated[dict[checked_type(rule.key), values], msgspec.Meta(max_length=rule.max_length)]  # type: ignore[misc]


def _struct(
    name: str, fields: Mapping[str, FieldShape], nested: Any, *, checked: bool, gc: bool
) -> type[msgspec.Struct]:
    definitions: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for field, shape in fields.items():
        if isinstance(shape, FieldRule):
            kind: Any = checked_type(shape) if checked else Any
        elif isinstance(shape, AttributesRule):
            # Stored attributes keep their bound on size (a hostile blob's map stops there).
            kind = _checked_attributes(shape) if checked else Annotated[dict[str, Any], msgspec.Meta(max_length=shape.max_length)]
        else:
            kind = nested
        if field in OPTIONAL_FIELDS:
            definitions.append((field, kind, {}))  # the only optional field is a map
        else:
            definitions.append((field, kind))
    return msgspec.defstruct(
        name, definitions, module=__name__, forbid_unknown_fields=True, omit_defaults=True, gc=gc
    )


# gc=False where a struct holds no container that could close a cycle: fewer objects for
# the cyclic GC to track, which is measurable at millions of items.
FastMoney = _struct("FastMoney", MONEY_FIELDS, None, checked=True, gc=False)
FastItem = _struct("FastItem", ITEM_FIELDS, FastMoney, checked=True, gc=True)
StoredMoney = _struct("StoredMoney", MONEY_FIELDS, None, checked=False, gc=False)
StoredItem = _struct("StoredItem", ITEM_FIELDS, StoredMoney, checked=False, gc=False)


def _required_keys(fields: Mapping[str, FieldShape]) -> int:
    count = 0
    for field, shape in fields.items():
        if field in OPTIONAL_FIELDS:
            continue
        count += 1
        if not isinstance(shape, (FieldRule, AttributesRule)):
            count += _required_keys(shape)
    return count


#: Keys of an item with no optional field, nested ones included (sku, quantity, unit_price,
#: amount, currency, name): what the importer counts to find duplicate keys.
KEYS_PER_ITEM = _required_keys(ITEM_FIELDS)
