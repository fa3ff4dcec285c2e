"""Parsing, validating and encoding one batch: the fast path, and exact errors when it fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bulkorder.domain.sample_items import generate_items
from bulkorder.storage.batch_codec import decode_batch
from tests.importer.files import SAMPLE_CSV_HEADER, write_csv
from bulkorder.importer.sources import ItemSource
from bulkorder.importer.stage import StageResult, StageTask, stage_batch


def stage_file(path: Path, *, skip_invalid: bool = False, format: str | None = None) -> StageResult:
    with ItemSource(path, format=format, order_id="o-1", batch_size=10_000) as source:
        (batch,) = list(source.batches())
        task = StageTask(
            source=source.name,
            format=source.format,
            batch=batch,
            columns=source.columns,
            skip_invalid=skip_invalid,
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


# ---- hostile lines: deep nesting, NaN, duplicate keys, sums past the bounds -------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("[" * 10_000 + "]" * 10_000, "not valid JSON: nested 10,000 levels deep; at most 32"),
        ('{"a":' * 10_000 + "1" + "}" * 10_000, "not valid JSON: nested 10,000 levels deep"),
        (item_line(5, attributes={"r": 1}).replace('"r": 1', '"r": NaN'), "NaN is not a number JSON allows"),
        (item_line(5, attributes={"r": 1}).replace('"r": 1', '"r": -Infinity'), "-Infinity is not a number"),
        (item_line(5, attributes={"r": 1}).replace('"r": 1', '"r": 1e999'), "too large for a 64-bit float"),
        (item_line(5).replace('"quantity"', '"quantity": 3, "quantity"'), "the key 'quantity' appears twice"),
    ],
)
@pytest.mark.parametrize("skip_invalid", [False, True])
def test_hostile_lines_are_each_their_lines_problem(tmp_path: Path, line: str, reason: str, skip_invalid: bool) -> None:
    result = stage_file(ndjson(tmp_path / "items.ndjson", [item_line(0), line, item_line(1)]), skip_invalid=skip_invalid)
    (problem,) = result.problems
    assert problem.line == 2 and reason in problem.reason
    if skip_invalid:
        assert result.ref is not None and result.ref.item_count == 2


def test_hostile_json_array_elements_are_their_elements_problem(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    path.write_text("[" + item_line(0) + ",\n" + "[" * 10_000 + "]" * 10_000 + ",\n" + item_line(1) + "]")
    result = stage_file(path, skip_invalid=True)
    (problem,) = result.problems
    assert problem.line == 2 and "nested 10,000 levels deep" in problem.reason
    assert result.ref is not None and result.ref.item_count == 2


def test_the_item_at_which_the_batch_passes_the_order_total_is_named(tmp_path: Path) -> None:
    big = {"quantity": 10**9, "unit_price": {"amount": 10**9, "currency": "JPY"}}  # line total 10**18
    lines = [item_line(0), item_line(1, **big), item_line(2), item_line(3, **big), item_line(4, **big)]
    result = stage_file(ndjson(tmp_path / "items.ndjson", lines))
    (problem,) = result.problems
    assert (problem.line, problem.field) == (4, "unit_price.amount") and result.ref is None
    assert "the batch's JPY total would reach" in problem.reason and "MAX_ORDER_TOTAL" in problem.reason
    skipped = stage_file(ndjson(tmp_path / "items.ndjson", lines), skip_invalid=True)
    assert [p.line for p in skipped.problems] == [4, 5]
    assert skipped.ref is not None and skipped.ref.item_count == 3


def test_a_line_total_past_the_limit_is_refused_on_the_fast_and_csv_paths(tmp_path: Path) -> None:
    bad = item_line(1, quantity=10**9, unit_price={"amount": 10**15, "currency": "EUR"})
    (problem,) = stage_file(ndjson(tmp_path / "items.ndjson", [item_line(0), bad])).problems
    assert (problem.line, problem.field) == (2, "quantity") and "exceeds the limit MAX_LINE_TOTAL" in problem.reason
    path = tmp_path / "items.csv"
    path.write_text("sku,quantity,unit_price_amount,unit_price_currency,name,attr.x:json\nA,1,1,EUR,a,1\n"
                    "B,1000000000,1000000000000000,EUR,b,2\nC,1,1,EUR,c,NaN\n")
    problems = stage_file(path, skip_invalid=True).problems
    assert [(p.line, p.field) for p in problems] == [(3, "quantity"), (4, "attributes.x")]
    assert "NaN is not a number JSON allows" in problems[1].reason
