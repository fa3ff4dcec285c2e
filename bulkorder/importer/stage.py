"""Parse, validate and encode one batch: the CPU-heavy stage, run in worker processes.

Takes the raw bytes of a batch (never parsed objects: bytes cross the process boundary
cheaply) and returns the encoded batch ready to upload, or the rejected lines. Nothing
here does I/O, so a batch can be retried or thrown away freely.

The fast path parses the whole batch as one JSON array with msgspec's JSON decoder
(measured here 1.6x faster than pydantic-core's parser) and validates the list at once with
:data:`bulkorder.domain.items.ITEM_DICTS` (together about 1.7x faster than ``validate_json``). Only
when that fails does it go line by line, with pydantic-core's parser, to name the exact
line and field of each problem.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import Any, Iterator, SupportsIndex

from pydantic import ValidationError

from bulkorder.domain import json_text
from bulkorder.domain.counters import BatchSums, first_sum_crossing
from bulkorder.domain.items import ITEM_DICTS, ItemValidationError, validate_item_dict
from bulkorder.domain.refs import BatchRef
from bulkorder.importer import fast_items
from bulkorder.importer.csv_columns import CellError, CsvColumns, row_to_item
from bulkorder.importer.shared_buffer import reduce_out_of_band
from bulkorder.importer.sources import CSV, NDJSON, RawBatch
from bulkorder.storage.batches import encode_batch_items, encode_packed_batch
from bulkorder.storage.encryption.envelope import DataKey

#: A rejected record is kept whole up to this many characters (then cut, and marked so).
MAX_RECORD_SHOWN = 64 * 1024


@dataclass(frozen=True)
class Problem:
    """Why one line was refused: where, which field ('' for the whole line), and why."""

    line: int
    field: str
    reason: str
    record: str = ""

    def describe(self, source: str) -> str:
        where = f"{source} line {self.line}"
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


@dataclass(frozen=True)
class StageTask:
    source: str
    format: str
    batch: RawBatch
    columns: CsvColumns | None
    #: With ``skip_invalid`` every problem is collected; without, the first one stops.
    skip_invalid: bool
    level: int
    #: The order's data key: batches are sealed with it here, in the encoding process.
    data_key: DataKey | None = None


@dataclass
class StageResult:
    position: int
    batch_id: str
    first_line: int
    last_line: int
    nbytes: int
    ref: BatchRef | None = None
    data: bytes = b""
    problems: list[Problem] = field(default_factory=list)

    @property
    def item_count(self) -> int:
        return self.ref.item_count if self.ref is not None else 0

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        # Back to the importer, the encoded blob goes out of band (bulkorder.importer.shared_buffer).
        return reduce_out_of_band(self, protocol)


def warm_up(_: object = None) -> bool:
    """Run once per process at start, so the first real batch pays no import cost."""
    ITEM_DICTS.validate_python([])
    return True


def stage_batch(task: StageTask) -> StageResult:
    """Parse, validate and encode ``task.batch``."""
    batch = task.batch
    result = StageResult(
        position=batch.position,
        batch_id=batch.batch_id,
        first_line=batch.first_line,
        last_line=batch.last_line,
        nbytes=batch.nbytes,
    )
    if task.format == CSV:
        assert task.columns is not None
        items, result.problems = _csv_items(batch, task.columns, task.skip_invalid)
    else:
        # NDJSON's fast path takes the lines as they are; their line numbers (a tuple per
        # line) are only made if some line fails it and each problem must be named.
        records = None if task.format == NDJSON else list(zip(batch.record_lines, batch.records))
        fast = _fast_json(ndjson_lines(batch.data) if records is None else [record for _, record in records])
        if fast is not None:
            result.ref, result.data = encode_packed_batch(
                fast.raw, fast.item_count, fast.quantity, fast.totals, batch.batch_id, task.level, task.data_key
            )
            return result
        if records is None:
            records = _ndjson_records(batch)
        items, result.problems = _json_items(records, task.skip_invalid)
    if result.problems and not task.skip_invalid:
        return result
    if items:
        result.ref, result.data = encode_batch_items(items, batch.batch_id, task.level, task.data_key)
    return result


# ---- NDJSON and JSON array elements ---------------------------------------------------


def _fast_json(records: list[bytes]) -> fast_items.FastBatch | None:
    """The batch validated and packed by msgspec when every record is one valid item,
    else ``None`` (then the pydantic path decides and names each problem).

    The records joined with commas make one JSON array; a record holding two values
    ("{...},{...}") would make the count differ from the number of records, so that
    falls to the line-by-line path too.
    """
    items = fast_items.decode_records(records)
    return None if items is None else fast_items.pack(items)


def ndjson_lines(data: bytes) -> list[bytes]:
    """The records of an NDJSON batch's bytes: its lines, but blank ones (as :func:`_ndjson_records`)."""
    return [line for line in data.split(b"\n") if line and not line.isspace()]


def _ndjson_records(batch: RawBatch) -> list[tuple[int, bytes]]:
    records = []
    for offset, line in enumerate(batch.data.split(b"\n")):
        if line and not line.isspace():
            records.append((batch.first_line + offset, line))
    return records


def _json_items(records: list[tuple[int, bytes]], skip_invalid: bool) -> tuple[list[dict[str, Any]], list[Problem]]:
    # Strictly, one record at a time (bulkorder.domain.json_text): duplicate keys, NaN and deep
    # nesting are each a line's problem here.
    return _one_by_one(_parse_each(records), skip_invalid)


def _parse_each(records: list[tuple[int, bytes]]) -> Iterator[tuple[int, bytes, object, Problem | None]]:
    for line, record in records:
        try:
            value = json_text.loads(record)
        except json_text.JsonTextError as exc:
            yield line, record, None, Problem(line, "", str(exc), _shown(record))
            continue
        if not isinstance(value, dict):
            kind = "an array" if isinstance(value, list) else f"a JSON {type(value).__name__}"
            yield line, record, None, Problem(line, "", f"expected a JSON object (an item), got {kind}", _shown(record))
            continue
        yield line, record, value, None


def _one_by_one(
    parsed: Iterator[tuple[int, bytes | str, object, Problem | None]], skip_invalid: bool
) -> tuple[list[dict[str, Any]], list[Problem]]:
    items: list[dict[str, Any]] = []
    problems: list[Problem] = []
    sums = BatchSums()
    for line, record, value, problem in parsed:
        if problem is None:
            try:
                item = validate_item_dict(value)
            except ItemValidationError as exc:
                problem = _item_problem(line, exc, record)
            else:
                crossed = sums.add(item)  # the item at which the batch's sums pass the bounds
                if crossed is None:
                    items.append(item)
                    continue
                problem = Problem(line, crossed[0], crossed[1], _shown(record))
        problems.append(problem)
        if not skip_invalid:
            break
    return items, problems


def _item_problem(line: int, exc: ItemValidationError, record: bytes | str) -> Problem:
    fields: list[str] = []
    reasons: list[str] = []
    for _, fld, message in exc.problems:
        if fld not in fields:
            fields.append(fld)
        if message not in reasons:
            reasons.append(message)
    return Problem(line, "; ".join(f for f in fields if f), "; ".join(reasons), _shown(record))


def _shown(record: bytes | str) -> str:
    text = record.decode("utf-8", errors="replace") if isinstance(record, bytes) else record
    text = text.rstrip("\r\n")
    return text if len(text) <= MAX_RECORD_SHOWN else text[:MAX_RECORD_SHOWN] + " [cut]"


# ---- CSV ------------------------------------------------------------------------------


def _csv_items(batch: RawBatch, columns: CsvColumns, skip_invalid: bool) -> tuple[list[dict[str, Any]], list[Problem]]:
    try:
        text, check_utf8 = batch.data.decode("utf-8"), False
    except UnicodeDecodeError:
        # Keep going: the bad bytes become lone surrogates, and only their rows are refused.
        text, check_utf8 = batch.data.decode("utf-8", errors="surrogateescape"), True
    converted: list[tuple[int, str, object, Problem | None]] = []
    clean = True
    for line, raw, row, problem in _csv_rows(text, batch.first_line):
        if problem is None and check_utf8 and not _is_utf8(raw):
            problem = Problem(line, "", "not UTF-8 text", _shown(raw.encode("utf-8", "surrogateescape")))
        if problem is None:
            try:
                converted.append((line, raw, row_to_item(row, columns), None))
                continue
            except CellError as exc:
                problem = Problem(line, exc.field, str(exc), _shown(raw))
        clean = False
        converted.append((line, raw, None, problem))
        if not skip_invalid:
            break
    if clean:
        try:
            items = ITEM_DICTS.validate_python([item for _, _, item, _ in converted])
            if first_sum_crossing(items) is None:
                return items, []  # type: ignore[return-value]
        except ValidationError:
            pass
    return _one_by_one(iter(converted), skip_invalid)


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _csv_rows(text: str, first_line: int) -> Iterator[tuple[int, str, list[str], Problem | None]]:
    # Lines end at "\n" only, as the main process counted them (str.splitlines would also
    # split at form feeds and other separators, and the line numbers would drift).
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    reader = csv.reader(iter(lines), strict=True)
    consumed = 0
    while True:
        start = consumed
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            consumed = max(reader.line_num, start + 1)
            raw = "".join(lines[start:consumed])
            yield first_line + start, raw, [], Problem(first_line + start, "", f"not valid CSV: {exc}", _shown(raw))
            continue
        consumed = reader.line_num
        if not row:
            continue  # a blank line
        yield first_line + start, "".join(lines[start:consumed]), row, None
