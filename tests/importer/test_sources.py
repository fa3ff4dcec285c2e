"""Cutting inputs into raw batches: formats, line numbers, IDs, and malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.importer.files import write_csv, write_json_array, write_ndjson
from bulkorder.importer.errors import ImportInputError
from bulkorder.importer.identity import parse_import_id
from bulkorder.importer.sources import ItemSource


def batches(path: Path, batch_size: int = 3, *, format: str | None = None, order_id: str = "o-1") -> list:
    with ItemSource(path, format=format, order_id=order_id, batch_size=batch_size) as source:
        return list(source.batches())


def error_of(path: Path, *, format: str | None = None, batch_size: int = 3) -> str:
    with pytest.raises(ImportInputError) as caught:
        batches(path, batch_size, format=format)
    return str(caught.value)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("items.ndjson", "{}\n", "ndjson"),
        ("items.jsonl", "{}\n", "ndjson"),
        ("items.csv", "sku,quantity,unit_price_amount,unit_price_currency,name\nA,1,1,EUR,a\n", "csv"),
        ("items.json", "[{}]", "json"),
        ("items.json", "{}\n{}\n", "ndjson"),
        ("items.txt", "  [{}]", "json"),
        ("items", '{"sku": 1}\n', "ndjson"),
    ],
)
def test_format_from_name_then_first_character(tmp_path: Path, name: str, content: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with ItemSource(path, format=None, order_id="o-1", batch_size=10) as source:
        assert source.format == expected


def test_unknown_format_empty_file_and_missing_file_are_named(tmp_path: Path) -> None:
    unknown = tmp_path / "items.txt"
    unknown.write_text("sku;quantity\n")
    assert "cannot tell the format" in error_of(unknown) and "--format" in error_of(unknown)
    empty = tmp_path / "empty.ndjson"
    empty.write_text("\n  \n")
    assert error_of(empty) == f"{empty}: the file is empty: there are no items to import"
    assert error_of(tmp_path / "nope.ndjson") == f"{tmp_path / 'nope.ndjson'}: no such file"
    header_only = tmp_path / "header.csv"
    header_only.write_text("sku,quantity,unit_price_amount,unit_price_currency,name\n")
    assert "has a header but no rows" in error_of(header_only)


def test_ndjson_batches_are_runs_of_lines_with_their_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "items.ndjson"
    write_ndjson(path, 7)
    found = batches(path, 3)
    assert [(b.first_line, b.last_line) for b in found] == [(1, 3), (4, 6), (7, 7)]
    assert b"".join(b.data for b in found) == path.read_bytes()
    assert [parse_import_id(b.batch_id) for b in found] == [(3, 0), (3, 1), (3, 2)]


def test_batch_ids_follow_the_content_up_to_each_batch(tmp_path: Path) -> None:
    path = tmp_path / "items.ndjson"
    write_ndjson(path, 9)
    original = [b.batch_id for b in batches(path)]
    assert original == [b.batch_id for b in batches(path)]  # the same input, the same IDs
    assert len(set(original)) == 3
    assert [b.batch_id for b in batches(path, order_id="o-2")] != original  # another order

    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines) + lines[0])  # appended to: old batches keep their IDs
    assert [b.batch_id for b in batches(path)][:3] == original

    lines[4] = lines[4].replace('"quantity":', '"quantity": ')  # line 5 edited (batch 2 of 3)
    path.write_text("".join(lines))
    edited = [b.batch_id for b in batches(path)]
    assert edited[0] == original[0] and edited[1:] != original[1:]


def test_csv_header_is_checked_before_any_row(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("sku,quantity,unit_price_amount,unit_price_currency,name,colour\nA,1,1,EUR,a,red\n")
    assert "line 1: not a valid CSV header: unknown column 'colour'" in error_of(path)
    path.write_text("sku,quantity,unit_price_amount,name\nA,1,1,a\n")
    assert "missing column unit_price_currency" in error_of(path)
    path.write_text("sku,quantity,unit_price_amount,unit_price_currency,name,attr.w:decimal\nA,1,1,EUR,a,1\n")
    assert "unknown type 'decimal'" in error_of(path)
    ndjson = tmp_path / "items.ndjson"
    write_ndjson(ndjson, 2)
    assert "is this file CSV?" in error_of(ndjson, format="csv")


def test_csv_batches_never_split_a_quoted_cell(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    header = "sku,quantity,unit_price_amount,unit_price_currency,name\n"
    rows = ['A,1,1,EUR,"one\nname"\n', "B,1,1,EUR,b\n", 'C,1,1,EUR,"c ""quoted"""\n', "D,1,1,EUR,d\n"]
    path.write_text(header + "".join(rows))
    found = batches(path, 1)
    # Line 2 opens a quoted cell that line 3 closes: the first batch takes both lines.
    assert [(b.first_line, b.last_line) for b in found] == [(2, 3), (4, 4), (5, 5), (6, 6)]


def test_json_array_elements_are_streamed_with_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    expected = write_json_array(path, 5, indent=2)
    found = batches(path, 2)
    assert sum(len(b.records) for b in found) == expected.items == 5
    elements = [json.loads(record) for b in found for record in b.records]
    assert [e["attributes"]["line_number"] for e in elements] == [0, 1, 2, 3, 4]
    starts = [line for b in found for line in b.record_lines]
    text_lines = path.read_text().splitlines()
    assert all(text_lines[line - 1].strip() == "{" for line in starts)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"a": 1}', "line 1: not a JSON array"),
        ("[\n]", "line 2: the JSON array is empty"),
        ('[\n{"a": 1},\n{"a": 2}', "line 3: the JSON array is not closed"),
        ('[\n{"a": 1},\n]', "line 3: a ',' is followed by ']' (trailing comma)"),
        ('[\n{"a": 1}\n{"a": 2}]', "line 3: expected ',' or ']' after an element"),
        ('[\n{"a": 1},\n{"a": tru}\n]', "line 3: not valid JSON: Expecting value"),
        ('[{"a": 1}]\n[', "line 2: data after the end of the JSON array"),
    ],
)
def test_malformed_json_arrays_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "items.json"
    path.write_text(content)
    assert message in error_of(path, format="json")


def test_large_json_array_crosses_read_blocks(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    expected = write_json_array(path, 6_000)  # ~3 MB: several 1 MiB reads
    found = batches(path, 1_000)
    assert sum(len(b.records) for b in found) == expected.items
    assert found[-1].record_lines[-1] == 6_001


def test_csv_sample_file_round_trips_every_line(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    write_csv(path, 10)
    found = batches(path, 4)
    assert [(b.first_line, b.last_line) for b in found] == [(2, 5), (6, 9), (10, 11)]


# ---- bounded reads: lines, CSV rows, JSON elements; nesting cut without recursion ------


def _limited(path: Path, limit: int, *, format: str | None = None, batch_size: int = 3) -> list:
    with ItemSource(path, format=format, order_id="o-1", batch_size=batch_size, max_line_bytes=limit) as source:
        return list(source.batches())


def _limit_error(path: Path, limit: int, *, format: str | None = None) -> ImportInputError:
    with pytest.raises(ImportInputError) as caught:
        _limited(path, limit, format=format)
    return caught.value


def test_a_line_past_the_limit_names_file_line_and_limit(tmp_path: Path) -> None:
    path = tmp_path / "items.ndjson"
    path.write_bytes(b'{"a": 1}\n' * 4 + b"{" + b" " * 2_000 + b"}\n" + b'{"a": 1}\n')
    error = _limit_error(path, 1_000)
    assert (error.file, error.line) == (str(path), 5)
    assert str(error).startswith(f"{path} line 5: the line is longer than 1,000 bytes, the limit")
    assert "--max-line-bytes" in str(error) and "BULKORDER_MAX_LINE_BYTES" in str(error)
    assert sum(len(batch.data) for batch in _limited(path, 3_000)) == path.stat().st_size
    exact = tmp_path / "exact.ndjson"
    exact.write_bytes(b"x" * 1_000 + b"\n")  # exactly the limit, its newline not counted
    assert _limited(exact, 1_000)[0].data == b"x" * 1_000 + b"\n"


def test_dev_zero_fails_at_the_first_limit_not_at_the_end_of_memory() -> None:
    error = _limit_error(Path("/dev/zero"), 1 << 20, format="ndjson")
    assert error.line == 1 and "longer than 1,048,576 bytes" in str(error)


def test_a_csv_header_row_or_quoted_cell_past_the_limit_is_refused(tmp_path: Path) -> None:
    header = "sku,quantity,unit_price_amount,unit_price_currency,name\n"
    long_header = tmp_path / "header.csv"
    long_header.write_text(header.rstrip("\n") + ",attr.x" * 300 + "\n")
    assert "the CSV header is longer than 1,000 bytes" in str(_limit_error(long_header, 1_000))
    long_row = tmp_path / "row.csv"
    long_row.write_text(header + "A,1,1,EUR,a\n" + "B,1,1,EUR," + "b" * 2_000 + "\n")
    assert _limit_error(long_row, 1_000).line == 3
    spanning = tmp_path / "spanning.csv"
    spanning.write_text(header + "A,1,1,EUR,a\n" * 2 + 'B,1,1,EUR,"' + "long line\n" * 300 + '"\n')
    error = _limit_error(spanning, 1_000)
    assert error.line == 4 and "the CSV row (a quoted cell spanning lines) is longer than 1,000 bytes" in str(error)
    assert len(_limited(spanning, 10_000, batch_size=3)) == 1


def test_a_json_array_element_past_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    path.write_text('[{"a": 1},\n{"a": 1},\n{"a": "' + "x" * 5_000 + '"}]')
    error = _limit_error(path, 1_000)
    assert error.line == 3 and "the JSON array element is longer than 1,000 bytes" in str(error)
    unclosed = tmp_path / "unclosed.json"
    unclosed.write_text('[{"a": "' + "x" * 5_000)
    assert "longer than 1,000 bytes" in str(_limit_error(unclosed, 1_000))


def test_a_deeply_nested_json_array_element_is_cut_out_for_the_parser_to_refuse(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    deep = "[" * 10_000 + "]" * 10_000
    path.write_text('[{"a": 1},\n' + deep + ',\n{"a": "[[["},\n{"b": 2}]')
    (batch,) = _limited(path, 1 << 20, batch_size=10)
    assert batch.records == [b'{"a": 1}', deep.encode(), b'{"a": "[[["}', b'{"b": 2}']
    assert batch.record_lines == [1, 2, 3, 4]
    objects = tmp_path / "objects.json"
    objects.write_text('[' + '{"a":' * 10_000 + "1" + "}" * 10_000 + "]")
    (batch,) = _limited(objects, 1 << 20)
    assert len(batch.records) == 1 and len(batch.records[0]) == 60_001


def test_an_element_of_thousands_of_digits_is_cut_out_not_a_crash(tmp_path: Path) -> None:
    # Found by tests/fuzz/test_fuzz_sources.py: int() refuses more than 4,300 digits.
    path = tmp_path / "items.json"
    path.write_text("[" + "9" * 5_000 + ', {"a": ' + "1" * 5_000 + "}]")
    (batch,) = batches(path, 10)
    assert [len(record) for record in batch.records] == [5_000, 5_007]
