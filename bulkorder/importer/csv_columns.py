"""How a CSV row becomes an item.

The header names the columns, in any order::

    sku,quantity,unit_price_amount,unit_price_currency,name,attr.color,attr.weight_g:int

``sku``, ``quantity``, ``unit_price_amount``, ``unit_price_currency`` and ``name`` are
required. Every other column is an attribute, ``attr.<key>`` with an optional type:
``:str`` (the default), ``:int``, ``:float``, ``:bool`` (``true``/``false``) or ``:json``
(any JSON scalar, ``null`` included; parsed strictly by :mod:`bulkorder.domain.json_text`: no
``NaN``/``Infinity``, no duplicate keys, bounded nesting). An empty attribute cell means "no such attribute";
to store an empty string use ``:json`` and ``""``. Unknown columns are an error, not
silently dropped.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

from bulkorder.domain import json_text

REQUIRED_COLUMNS = ("sku", "quantity", "unit_price_amount", "unit_price_currency", "name")
ATTRIBUTE_PREFIX = "attr."
ATTRIBUTE_TYPES = ("str", "int", "float", "bool", "json")
_WHOLE_NUMBER = re.compile(r"-?[0-9]+")


class CellError(ValueError):
    """One cell cannot be converted; ``field`` is the item field it was meant for."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class HeaderError(ValueError):
    pass


@dataclass(frozen=True)
class CsvColumns:
    """The meaning of each column, from the header (picklable: sent to encoding processes)."""

    names: tuple[str, ...]
    #: Index of each required column.
    required: tuple[int, ...]
    #: (index, attribute key, type) of each attribute column.
    attributes: tuple[tuple[int, str, str], ...]


def parse_header(cells: list[str]) -> CsvColumns:
    """The columns of a CSV header; :class:`HeaderError` names what is wrong."""
    names = tuple(cell.strip() for cell in cells)
    seen: dict[str, int] = {}
    attributes: list[tuple[int, str, str]] = []
    unknown: list[str] = []
    for index, name in enumerate(names):
        if name in seen:
            raise HeaderError(f"column {name!r} appears twice (columns {seen[name] + 1} and {index + 1})")
        seen[name] = index
        if name in REQUIRED_COLUMNS:
            continue
        if name.startswith(ATTRIBUTE_PREFIX):
            key, _, kind = name[len(ATTRIBUTE_PREFIX) :].partition(":")
            kind = kind or "str"
            if not key:
                raise HeaderError(f"column {name!r} has no attribute key (write attr.<key>)")
            if kind not in ATTRIBUTE_TYPES:
                raise HeaderError(f"column {name!r}: unknown type {kind!r} (one of {', '.join(ATTRIBUTE_TYPES)})")
            if any(existing == key for _, existing, _ in attributes):
                raise HeaderError(f"attribute {key!r} has two columns")
            attributes.append((index, key, kind))
            continue
        unknown.append(name)
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:5])
        raise HeaderError(
            f"unknown column{'s' if len(unknown) > 1 else ''} {shown}: expected "
            f"{', '.join(REQUIRED_COLUMNS)} and attr.<key>[:type] columns"
        )
    missing = [name for name in REQUIRED_COLUMNS if name not in seen]
    if missing:
        raise HeaderError(f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    return CsvColumns(
        names=names, required=tuple(seen[name] for name in REQUIRED_COLUMNS), attributes=tuple(attributes)
    )


def _whole_number(cell: str, field: str) -> int:
    text = cell.strip()
    if len(text) > 40:  # far past any bound; int() of thousands of digits is slow, then refused
        raise CellError(field, f"not a whole number of at most 40 digits: {cell[:40]!r}...")
    if not _WHOLE_NUMBER.fullmatch(text):
        raise CellError(field, f"not a whole number: {cell[:40]!r}")
    return int(text)


def _float(cell: str, field: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise CellError(field, f"not a number: {cell[:40]!r}") from None
    if not math.isfinite(value):
        raise CellError(field, f"not a finite number: {cell[:40]!r}")
    return value


def _bool(cell: str, field: str) -> bool:
    text = cell.strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise CellError(field, f"not true or false: {cell[:40]!r}")


def _json(cell: str, field: str) -> Any:
    try:
        return json_text.loads(cell)
    except json_text.JsonTextError as exc:
        raise CellError(field, f"not a JSON value ({exc})") from None


_CONVERTERS: dict[str, Callable[[str, str], Any]] = {
    "int": _whole_number,
    "float": _float,
    "bool": _bool,
    "json": _json,
}


def row_to_item(row: list[str], columns: CsvColumns) -> dict[str, Any]:
    """The item of one CSV row, not yet validated (the domain rules do that next)."""
    if len(row) != len(columns.names):
        raise CellError("", f"expected {len(columns.names)} cells (as in the header), got {len(row)}")
    sku, quantity, amount, currency, name = (row[index] for index in columns.required)
    item: dict[str, Any] = {
        "sku": sku,
        "quantity": _whole_number(quantity, "quantity"),
        "unit_price": {"amount": _whole_number(amount, "unit_price.amount"), "currency": currency},
        "name": name,
    }
    if columns.attributes:
        attributes: dict[str, Any] = {}
        for index, key, kind in columns.attributes:
            cell = row[index]
            if cell == "":
                continue
            attributes[key] = cell if kind == "str" else _CONVERTERS[kind](cell, f"attributes.{key}")
        item["attributes"] = attributes
    return item


def item_to_row(item: dict[str, Any], columns: CsvColumns) -> list[str]:
    """The CSV cells of an item (for tests, benchmarks and exports): the inverse of
    :func:`row_to_item` for values the column types can hold."""
    by_name = {
        "sku": item["sku"],
        "quantity": str(item["quantity"]),
        "unit_price_amount": str(item["unit_price"]["amount"]),
        "unit_price_currency": item["unit_price"]["currency"],
        "name": item["name"],
    }
    attributes = item.get("attributes", {})
    cells = []
    for name in columns.names:
        if name in by_name:
            cells.append(by_name[name])
            continue
        key, _, kind = name[len(ATTRIBUTE_PREFIX) :].partition(":")
        if key not in attributes:
            cells.append("")
        elif kind == "json":
            cells.append(json.dumps(attributes[key]))
        elif kind == "bool":
            cells.append("true" if attributes[key] else "false")
        else:
            cells.append(str(attributes[key]))
    return cells
