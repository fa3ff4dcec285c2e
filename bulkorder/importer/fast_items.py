"""The importer's fast path: the domain's item rules compiled for msgspec.

Validating millions of items is the importer's main cost. pydantic (``bulkorder.domain.items``)
stays the authority on what an item is and on every error message; this module states the
same rules for msgspec, which parses JSON, checks the rules and packs msgpack in C without
building a dict per item — measured here about twice as fast as parsing then validating
with pydantic.

One direction matters: whatever this decoder accepts, ``bulkorder.domain.items`` must accept too
(tests/importer/test_fast_items.py checks it on crafted and random inputs). When
this decoder refuses a batch, the importer falls back to the pydantic path, which either
accepts it (msgspec is stricter on some edge, e.g. floats beyond double range) or names the
line and field that is wrong. Patterns end in ``\\Z``: msgspec matches with ``re.search``,
where ``$`` would also accept a trailing newline that pydantic refuses.

What msgspec does not check by itself is checked here, cheaply, and any doubt sends the
batch to the pydantic path: floats are bounded to finite values (NaN and Infinity fail
``ge``/``le``); the line total (quantity x unit amount) and the batch's running sums are
checked in :func:`pack`; and duplicate keys, which msgspec resolves last-wins, are found
by counting: every key of an item's JSON is followed by one ``:``, so a record whose
count of ``:`` bytes equals the keys decoded holds no duplicate. Only a record with more
``:`` (a colon inside a string, or a duplicate) is parsed again, strictly
(:mod:`bulkorder.domain.json_text`), to tell which.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

import msgspec

from bulkorder.domain import items as rules
from bulkorder.domain import json_text


def _anchored(pattern: str) -> str:
    assert pattern.endswith("$")
    return pattern[:-1] + r"\Z"


Sku = Annotated[
    str, msgspec.Meta(min_length=1, max_length=rules.SKU_MAX_LENGTH, pattern=_anchored(rules.SKU_PATTERN))
]
Currency = Annotated[str, msgspec.Meta(pattern=_anchored(rules.CURRENCY_PATTERN))]
Quantity = Annotated[int, msgspec.Meta(ge=1, le=rules.MAX_QUANTITY)]
Amount = Annotated[int, msgspec.Meta(ge=0, le=rules.MAX_UNIT_AMOUNT)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=rules.NAME_MAX_LENGTH)]
AttributeKey = Annotated[str, msgspec.Meta(min_length=1, max_length=rules.ATTRIBUTE_KEY_MAX_LENGTH)]
AttributeText = Annotated[str, msgspec.Meta(max_length=rules.ATTRIBUTE_TEXT_MAX_LENGTH)]
AttributeInt = Annotated[int, msgspec.Meta(ge=rules.ATTRIBUTE_INT_MIN, le=rules.ATTRIBUTE_INT_MAX)]
_FLOAT_MAX = 1.7976931348623157e308
#: Finite floats only: NaN and the infinities fail these bounds.
AttributeFloat = Annotated[float, msgspec.Meta(ge=-_FLOAT_MAX, le=_FLOAT_MAX)]
Attributes = Annotated[
    dict[AttributeKey, Union[AttributeText, AttributeInt, AttributeFloat, bool, None]],
    msgspec.Meta(max_length=rules.MAX_ATTRIBUTES),
]


class FastMoney(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    amount: Amount
    currency: Currency


class FastItem(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """An item as msgspec decodes it; packs to the same msgpack map as the item dict
    (``attributes`` left out when empty, as an item without attributes is stored)."""

    sku: Sku
    quantity: Quantity
    unit_price: FastMoney
    name: Name
    attributes: Attributes = {}


_json_items = msgspec.json.Decoder(list[FastItem])
_msgpack = msgspec.msgpack.Encoder()


class FastBatch(msgspec.Struct, gc=False):
    """A validated batch, packed: what ``BatchStore.encode_packed`` takes."""

    raw: bytes
    item_count: int
    quantity: int
    totals: dict[str, int]


def decode_json_array(data: bytes) -> list[FastItem] | None:
    """The items of a JSON array, or ``None`` if any of them breaks a rule (or the JSON
    is malformed): then the caller takes the pydantic path, which says what and where.
    Duplicate keys are not detected here: see :func:`decode_records`."""
    try:
        return _json_items.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def _keys(item: FastItem) -> int:
    # sku, quantity, unit_price (amount, currency), name; attributes and its keys if any.
    # An empty "attributes": {} is one key more than counted: a false alarm, checked below.
    attributes = item.attributes
    return 6 + len(attributes) + 1 if attributes else 6


def decode_records(records: list[bytes]) -> list[FastItem] | None:
    """The items of ``records`` (one JSON object each), or ``None`` if any record is not
    exactly one valid item, duplicate keys included."""
    if not records:
        return None
    data = b"[" + b",".join(records) + b"]"
    items = decode_json_array(data)
    # A record holding two values ("{...},{...}") would make the counts differ.
    if items is None or len(items) != len(records):
        return None
    if data.count(b":") == sum(map(_keys, items)):  # one pass in C: about 2% of the decode
        return items
    for record, item in zip(records, items):
        if record.count(b":") != _keys(item):
            try:
                json_text.loads(record)
            except json_text.JsonTextError:
                return None
    return items


def convert(values: list[Any]) -> list[FastItem] | None:
    """Like :func:`decode_json_array` for values already parsed (CSV rows as dicts)."""
    try:
        return msgspec.convert(values, list[FastItem], strict=True)
    except msgspec.ValidationError:
        return None


def pack(items: list[FastItem]) -> FastBatch | None:
    """The batch packed with its counters, or ``None`` if an item's line total or the
    batch's running sums pass the domain's bounds (the pydantic path then names the item)."""
    quantity = 0
    totals: dict[str, int] = {}
    line_max = rules.MAX_LINE_TOTAL
    for item in items:
        price = item.unit_price
        quantity += item.quantity
        line = item.quantity * price.amount
        if line > line_max:
            return None
        totals[price.currency] = totals.get(price.currency, 0) + line
    if quantity > rules.MAX_ORDER_QUANTITY or any(total > rules.MAX_ORDER_TOTAL for total in totals.values()):
        return None
    return FastBatch(raw=_msgpack.encode(items), item_count=len(items), quantity=quantity, totals=totals)
