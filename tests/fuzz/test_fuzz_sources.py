"""Fuzzing the importer's sources and stage: random and mutated NDJSON, CSV and JSON
arrays, read and parsed as ``bulkorder import`` does (``ItemSource`` then ``stage_batch``).

Whatever the bytes, only the documented outcomes come out: an :class:`ImportInputError`
naming the file (and the line, unless the whole file is the problem), or per-line
problems whose lines lie inside their batch. Never another exception (``RecursionError``,
``UnicodeDecodeError``, ``OverflowError``...), and never more than the line limit read
at once (it is set small here so the fuzzer meets it).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from bulkorder.domain.sample_items import generate_items
from bulkorder.importer.errors import ImportInputError
from bulkorder.importer.sources import ItemSource
from bulkorder.importer.stage import StageTask, stage_batch

MAX_LINE = 4_096
_WHOLE_FILE = ("the file is empty", "no rows", "cannot tell the format", "must hold a JSON array", "unknown format")

_ITEMS = [json.dumps(item) for item in generate_items(20, seed=5)]
_CSV_HEADER = "sku,quantity,unit_price_amount,unit_price_currency,name,attr.note:json,attr.w:int,attr.r:float"
_CSV_ROWS = ['A-1,2,100,EUR,"a, b",1,5,0.5', "B,1,0,USD,b,null,,", 'C,3,7,EUR,"multi\nline",  "x" ,1,1e5']
_NASTY = [
    "NaN", "Infinity", "-Infinity", "1e999", "[" * 5_000, "]" * 50, '{"a":' * 3_000, '"', "\\", "\x00", "\ufeff",
    '"sku": "X", "sku": "Y"', ",", "\r", "\n", "\u2028", "{}", "[]", "null", '"attributes": {"k": [1]}',
    "9" * 5_000, "-0", "1" * 40, "=cmd", "\xff",
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, lines: list[str], header: str = "") -> bytes:
    chosen = draw(st.lists(st.sampled_from(lines), min_size=0, max_size=12))
    text = (header + "\n" if header else "") + "\n".join(chosen)
    data = bytearray(text.encode())
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 3))
        at = draw(st.integers(0, len(data))) if data else 0
        if kind == 0:
            data[at:at] = draw(st.sampled_from(_NASTY)).encode("utf-8", "surrogatepass")
        elif kind == 1:
            data[at:at] = draw(st.binary(max_size=20))
        elif kind == 2 and data:
            del data[at : at + draw(st.integers(1, 40))]
        else:
            data[at:at] = b"x" * draw(st.sampled_from([10, MAX_LINE - 50, MAX_LINE + 10]))
    return bytes(data)


def _import(data: bytes, suffix: str, format: str | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(data)
        for skip_invalid in (False, True):
            try:
                with ItemSource(path, format=format, order_id="fuzz-1", batch_size=4, max_line_bytes=MAX_LINE) as source:
                    for batch in source.batches():
                        assert batch.nbytes <= 4 * (MAX_LINE + 1) + 10_000 * (MAX_LINE + 1)
                        result = stage_batch(
                            StageTask(str(path), source.format, batch, source.columns, skip_invalid, 1)
                        )
                        for problem in result.problems:
                            assert batch.first_line <= problem.line <= max(batch.last_line, batch.first_line)
                            assert problem.reason
                        if result.problems and not skip_invalid:
                            break
            except ImportInputError as exc:
                assert exc.file == str(path) or str(exc).startswith("unknown format"), exc
                assert exc.line is not None or any(phrase in str(exc) for phrase in _WHOLE_FILE), exc


@given(mutated(_ITEMS))
def test_fuzz_ndjson(data: bytes) -> None:
    _import(data, ".ndjson", None)


@given(mutated(_CSV_ROWS, _CSV_HEADER))
def test_fuzz_csv(data: bytes) -> None:
    _import(data, ".csv", None)


@given(mutated([item + "," for item in _ITEMS] + ["[", "]"]).map(lambda body: b"[" + body + b"]"))
def test_fuzz_json_array(data: bytes) -> None:
    _import(data, ".json", "json")


@given(st.binary(max_size=2_000), st.sampled_from([("ndjson", ".ndjson"), ("csv", ".csv"), ("json", ".json"), (None, "")]))
def test_fuzz_random_bytes(data: bytes, format_and_suffix: tuple[str | None, str]) -> None:
    _import(data, format_and_suffix[1], format_and_suffix[0])
