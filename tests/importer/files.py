"""Input files of generated items, in each format the importer reads, with what they hold."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from bulkorder.domain.sample_items import generate_items
from bulkorder.importer.csv_columns import item_to_row, parse_header

#: The CSV header for bulkorder.domain.sample_items' items: every attribute with its type.
SAMPLE_CSV_HEADER = [
    "sku", "quantity", "unit_price_amount", "unit_price_currency", "name",
    "attr.color", "attr.size", "attr.material", "attr.brand", "attr.category",
    "attr.weight_g:int", "attr.length_mm:int", "attr.width_mm:int", "attr.height_mm:int",
    "attr.ean", "attr.hs_code", "attr.origin_country", "attr.warehouse", "attr.lot",
    "attr.line_number:int", "attr.fragile:bool", "attr.hazmat:bool", "attr.discount_pct:float",
    "attr.gift_wrap:bool", "attr.note:json",
]  # fmt: skip


@dataclass
class Expected:
    """What a file holds: the counters an order importing it must end with."""

    items: int = 0
    quantity: int = 0
    totals: dict[str, int] = field(default_factory=dict)

    def add(self, item: dict[str, Any]) -> None:
        self.items += 1
        self.quantity += item["quantity"]
        currency = item["unit_price"]["currency"]
        self.totals[currency] = self.totals.get(currency, 0) + item["quantity"] * item["unit_price"]["amount"]


def _items(count: int, start: int, expected: Expected) -> Iterable[dict[str, Any]]:
    for item in generate_items(count, start=start):
        expected.add(item)
        yield item


def write_ndjson(path: Path, count: int, *, start: int = 0) -> Expected:
    expected = Expected()
    with open(path, "w", encoding="utf-8") as out:
        for item in _items(count, start, expected):
            out.write(json.dumps(item, separators=(",", ":")) + "\n")
    return expected


def write_csv(path: Path, count: int, *, start: int = 0) -> Expected:
    expected = Expected()
    columns = parse_header(SAMPLE_CSV_HEADER)
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(SAMPLE_CSV_HEADER)
        for item in _items(count, start, expected):
            writer.writerow(item_to_row(item, columns))
    return expected


def write_json_array(path: Path, count: int, *, start: int = 0, indent: int | None = None) -> Expected:
    """A JSON array, written one element at a time (pretty-printed with ``indent``)."""
    expected = Expected()
    with open(path, "w", encoding="utf-8") as out:
        out.write("[\n")
        for index, item in enumerate(_items(count, start, expected)):
            out.write((",\n" if index else "") + json.dumps(item, indent=indent))
        out.write("\n]\n")
    return expected
