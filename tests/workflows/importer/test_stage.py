"""Parsing, validating and encoding one batch: the fast path, and exact errors when it fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from domain.sample_items import generate_items
from storage.batch_codec import decode_batch
from tests.workflows.importer.files import SAMPLE_CSV_HEADER, write_csv
from workflows.importer.sources import ItemSource
from workflows.importer.stage import StageResult, StageTask, stage_batch


def stage_file(path: Path, *, skip_invalid: bool = False, format: str | None = None) -> StageResult:
    with ItemSource(path, format=format, order_id="o-1", batch_size=10_000) as source:
        (batch,) = list(source.batches())
        task = StageTask(
            source=source.name,
            format=source.format,
            batch=batch,
            columns=source.columns,
            skip_invalid=skip_invalid,
            key_prefix="batches",
            level=3,
        )
    return stage_batch(task)


def ndjson(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def item_line(index: int = 0, **changes: Any) -> str:
    item = next(generate_items(1, start=index))
    item.update(changes)
    return json.dumps(item)


def test_valid_lines_become_one_encoded_batch_with_its_counters(tmp_path: Path) -> None:
    items = list(generate_items(50))
    path = ndjson(tmp_path / "items.ndjson", [json.dumps(item) for item in items])
    result = stage_file(path)
    assert result.problems == [] and result.ref is not None
    assert (result.ref.item_count, result.ref.quantity) == (50, sum(item["quantity"] for item in items))
    assert decode_batch(result.data) == items
    assert result.ref.batch_id == result.batch_id


def test_an_invalid_item_names_its_line_and_field(tmp_path: Path) -> None:
    lines = [item_line(i) for i in range(5)]
    lines[3] = item_line(3, unit_price={"amount": 100, "currency": "euro"})
    result = stage_file(ndjson(tmp_path / "items.ndjson", lines))
    assert result.ref is None
    (problem,) = result.problems
    assert (problem.line, problem.field) == (4, "unit_price.currency")
    assert "String should match pattern" in problem.reason and "'euro'" in problem.reason
    assert problem.describe("items.ndjson").startswith("items.ndjson line 4: unit_price.currency: ")


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ('{"sku": "A", "quantity": 1,', "", "not valid JSON"),
        ("[1, 2]", "", "expected a JSON object (an item), got an array"),
        ('{"sku": "A", "quantity": NaN, "unit_price": {"amount": 1, "currency": "EUR"}, "name": "a"}', "", "not valid JSON"),
        ('{"sku": "A", "quantity": 1.5, "unit_price": {"amount": 1, "currency": "EUR"}, "name": "a"}', "quantity", "valid integer"),
        ('{"sku": "A", "quantity": 1, "unit_price": {"amount": 1, "currency": "EUR"}}', "name", "Field required"),
        ('{"sku": "A", "quantity": 1, "unit_price": {"amount": 1, "currency": "EUR"}, "name": "a", "x": 1}', "x", "Extra inputs"),
    ],
)
def test_each_kind_of_bad_line(tmp_path: Path, line: str, field: str, reason: str) -> None:
    result = stage_file(ndjson(tmp_path / "items.ndjson", [item_line(0), line, item_line(1)]))
    (problem,) = result.problems
    assert (problem.line, problem.field) == (2, field)
    assert reason in problem.reason


def test_two_values_on_one_line_are_not_two_items(tmp_path: Path) -> None:
    result = stage_file(ndjson(tmp_path / "items.ndjson", [item_line(0), item_line(1) + "," + item_line(2)]))
    (problem,) = result.problems
    assert problem.line == 2 and "not valid JSON" in problem.reason


def test_blank_lines_hold_no_item_and_keep_line_numbers(tmp_path: Path) -> None:
    path = ndjson(tmp_path / "items.ndjson", [item_line(0), "", "   ", item_line(1), item_line(2, quantity=0)])
    result = stage_file(path)
    assert result.problems[0].line == 5 and result.problems[0].field == "quantity"


def test_skip_invalid_keeps_the_valid_items_and_lists_every_problem(tmp_path: Path) -> None:
    lines = [item_line(i) for i in range(6)]
    lines[1] = "not json"
    lines[4] = item_line(4, sku="")
    result = stage_file(ndjson(tmp_path / "items.ndjson", lines), skip_invalid=True)
    assert [(p.line, p.field) for p in result.problems] == [(2, ""), (5, "sku")]
    assert result.problems[0].record == "not json"
    assert result.ref is not None and result.ref.item_count == 4


def test_csv_rows_become_typed_items(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    write_csv(path, 20)
    result = stage_file(path)
    assert result.problems == [] and result.ref is not None
    assert decode_batch(result.data) == [
        {**item, "attributes": {k: v for k, v in item["attributes"].items()}} for item in generate_items(20)
    ]


@pytest.mark.parametrize(
    ("cells", "field", "reason"),
    [
        ({"quantity": "two"}, "quantity", "not a whole number: 'two'"),
        ({"quantity": "0"}, "quantity", "greater than or equal to 1"),
        ({"unit_price_amount": "1.50"}, "unit_price.amount", "not a whole number"),
        ({"attr.weight_g:int": "heavy"}, "attributes.weight_g", "not a whole number"),
        ({"attr.fragile:bool": "yes"}, "attributes.fragile", "not true or false"),
        ({"attr.discount_pct:float": "nan"}, "attributes.discount_pct", "not a finite number"),
        ({"attr.note:json": "{oops"}, "attributes.note", "not a JSON value"),
        ({"attr.note:json": "[1]"}, "attributes.note", "Input should be"),
    ],
)
def test_each_kind_of_bad_csv_cell(tmp_path: Path, cells: dict[str, str], field: str, reason: str) -> None:
    path = tmp_path / "items.csv"
    write_csv(path, 3)
    lines = path.read_text().splitlines(keepends=True)
    row = lines[2].rstrip("\r\n").split(",")
    for column, value in cells.items():
        row[SAMPLE_CSV_HEADER.index(column)] = value
    lines[2] = ",".join(row) + "\r\n"
    path.write_text("".join(lines))
    (problem,) = stage_file(path).problems
    assert (problem.line, problem.field) == (3, field)
    assert reason in problem.reason


def test_csv_structure_problems(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    header = "sku,quantity,unit_price_amount,unit_price_currency,name\n"
    path.write_bytes((header + "A,1,1,EUR,a\nB,1,1,EUR\nC,1,1,EUR,\"multi\nline\"\n").encode() + b"D,1,1,EUR,\xff\n")
    result = stage_file(path, skip_invalid=True)
    assert [(p.line, p.reason) for p in result.problems] == [
        (3, "expected 5 cells (as in the header), got 4"),
        (6, "not UTF-8 text"),
    ]
    assert result.ref is not None and result.ref.item_count == 2
