"""Reading an input file as a stream of raw batches, in the importer's main process.

The main process only cuts the input into batches and hashes them (for their IDs); the
parsing and validation of the items happens in the encoding processes (:mod:`.stage`).
It never holds more than one batch of the input in memory:

- **NDJSON**: a batch is ``batch_size`` lines as they are in the file (blank lines count
  as lines and hold no item);
- **CSV**: the header, then batches of ``batch_size`` lines, extended to the end of a
  quoted cell that spans lines;
- **JSON array**: read incrementally, element by element (:mod:`.json_array`: ``json.JSONDecoder.raw_decode``
  over a sliding window); a batch is ``batch_size`` elements.

Every read is bounded by ``max_line_bytes`` (:data:`DEFAULT_MAX_LINE_BYTES`, setting
``BULKORDER_MAX_LINE_BYTES``, ``bulkorder import --max-line-bytes``): a line, a CSV row
(with the lines a quoted cell spans) and a JSON array element longer than that stops the
import with the file, the line and the limit, whatever ``--skip-invalid`` says (the rest of
such a line cannot be read without holding it), so ``/dev/zero`` fails in a millisecond
instead of filling memory. Nesting is not this module's business: a deeply nested element
is cut out here without recursion and refused, as that element's problem, when parsed.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator, SupportsIndex

from bulkorder.importer.csv_columns import CsvColumns, HeaderError, parse_header
from bulkorder.importer.errors import ImportInputError
from bulkorder.importer.identity import BatchIdentity
from bulkorder.importer.json_array import JsonArrayReader
from bulkorder.importer.shared_buffer import reduce_out_of_band
from bulkorder.importer.line_bounds import DEFAULT_MAX_LINE_BYTES, MAX_LINE_BYTES_SETTING, READ_SIZE, too_long

__all__ = [
    "CSV", "DEFAULT_MAX_LINE_BYTES", "FORMATS", "JSON", "MAX_CSV_EXTRA_LINES", "MAX_LINE_BYTES_SETTING", "NDJSON",
    "ItemSource", "RawBatch", "detect_format",
]

NDJSON = "ndjson"
CSV = "csv"
JSON = "json"
FORMATS = (NDJSON, CSV, JSON)
_EXTENSIONS = {".ndjson": NDJSON, ".jsonl": NDJSON, ".csv": CSV}

#: A quoted CSV cell may span at most this many lines beyond a batch's end.
MAX_CSV_EXTRA_LINES = 10_000
_BOM = b"\xef\xbb\xbf"


@dataclass
class RawBatch:
    """One batch of input, not yet parsed. ``data`` holds NDJSON or CSV lines as they
    are in the file; a JSON array's batch holds its elements in ``records``."""

    position: int
    batch_id: str
    first_line: int
    last_line: int
    nbytes: int
    data: bytes = b""
    records: list[bytes] = field(default_factory=list)
    record_lines: list[int] = field(default_factory=list)

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        # To an encoding process, ``data`` goes out of band (bulkorder.importer.shared_buffer).
        return reduce_out_of_band(self, protocol)


def detect_format(path: Path, head: bytes) -> str:
    """The format from the file name, else from its first character."""
    by_name = _EXTENSIONS.get(path.suffix.lower())
    if by_name:
        return by_name
    first = head.lstrip(_BOM).lstrip()[:1]
    if first == b"[":
        return JSON
    if first == b"{":
        return NDJSON
    if path.suffix.lower() == ".json":
        raise ImportInputError(
            f"{path}: a .json file must hold a JSON array of items (or one item per line)", file=str(path)
        )
    raise ImportInputError(
        f"{path}: cannot tell the format from the name or the first character; pass --format ndjson, csv or json",
        file=str(path),
    )


class ItemSource:
    """An open input: its format, size, CSV columns, and :meth:`batches`."""

    def __init__(
        self,
        path: str | Path,
        *,
        format: str | None,
        order_id: str,
        batch_size: int,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        if batch_size < 1:
            raise ImportInputError(f"the batch size must be at least 1, got {batch_size}")
        if max_line_bytes < 1:
            raise ImportInputError(f"the maximum line length must be at least 1 byte, got {max_line_bytes}")
        self.max_line_bytes = max_line_bytes
        self.path = Path(path)
        self.name = str(path)
        self.order_id = order_id
        self.batch_size = batch_size
        try:
            self._file: BinaryIO = open(self.path, "rb", buffering=READ_SIZE)  # noqa: SIM115 - closed in close()
        except FileNotFoundError:
            raise ImportInputError(f"{self.name}: no such file", file=self.name) from None
        except IsADirectoryError:
            raise ImportInputError(f"{self.name}: is a directory, not a file", file=self.name) from None
        except OSError as exc:
            raise ImportInputError(f"{self.name}: cannot read: {exc.strerror}", file=self.name) from None
        try:
            self._open(format)
        except BaseException:
            self.close()
            raise

    def _open(self, format: str | None) -> None:
        stat = os.fstat(self._file.fileno())
        # A pipe or a device has no size: progress then shows no ETA.
        self.total_bytes: int | None = stat.st_size if os.path.isfile(self.path) else None
        head = self._file.peek(64 * 1024)[: 64 * 1024]  # type: ignore[attr-defined]
        if head.startswith(_BOM):
            self._file.read(len(_BOM))
        if format is not None and format not in FORMATS:
            raise ImportInputError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
        if not head.strip(b" \t\r\n" + _BOM):
            raise ImportInputError(f"{self.name}: the file is empty: there are no items to import", file=self.name)
        self.format = format or detect_format(self.path, head)
        self.bytes_read = len(_BOM) if head.startswith(_BOM) else 0
        self.columns: CsvColumns | None = None
        self._header = b""
        self._lines_read = 0
        #: Lines before the first item (the CSV header).
        self.header_lines = 0
        if self.format == CSV:
            self._read_csv_header()
        elif self.format == JSON and not head.lstrip(_BOM).lstrip().startswith(b"["):
            raise ImportInputError(
                f"{self.name} line 1: not a JSON array (it does not start with '['); "
                "for one item per line use --format ndjson",
                file=self.name,
                line=1,
            )

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ItemSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- batches -----------------------------------------------------------------------

    def batches(self) -> Iterator[RawBatch]:
        """Raw batches in input order, each with its ID (see :mod:`.identity`)."""
        identity = BatchIdentity(
            order_id=self.order_id, format=self.format, batch_size=self.batch_size, header=self._header
        )
        if self.format == JSON:
            yield from self._json_batches(identity)
        else:
            yield from self._line_batches(identity)

    def _readline(self, number: int, what: str = "the line") -> bytes:
        """The next line (``b""`` at the end), refused past :attr:`max_line_bytes`."""
        line = self._file.readline(self.max_line_bytes + 1)
        if len(line) > self.max_line_bytes and not line.endswith(b"\n"):
            raise too_long(self.name, number, what, self.max_line_bytes)
        return line

    def _read_lines(self, count: int) -> list[bytes]:
        # The hot loop of the main process: one bounded readline per line, checked after.
        readline, size = self._file.readline, self.max_line_bytes + 1
        lines = []
        append = lines.append
        for _ in range(count):
            line = readline(size)
            if not line:
                break
            append(line)
            if len(line) == size and not line.endswith(b"\n"):
                raise too_long(self.name, self._lines_read + len(lines), "the line", self.max_line_bytes)
        return lines

    def _line_batches(self, identity: BatchIdentity) -> Iterator[RawBatch]:
        position = 0
        while True:
            lines = self._read_lines(self.batch_size)
            if not lines:
                return
            data = b"".join(lines)
            if self.format == CSV and data.count(b'"') % 2:
                data = self._finish_quoted_cell(data, lines)
            first_line = self._lines_read + 1
            self._lines_read += len(lines)
            self.bytes_read += len(data)
            yield RawBatch(
                position=position,
                batch_id=identity.next_id(data),
                first_line=first_line,
                last_line=self._lines_read,
                nbytes=len(data),
                data=data,
            )
            position += 1

    def _finish_quoted_cell(self, data: bytes, lines: list[bytes]) -> bytes:
        # An odd number of quotes: the batch ends inside a quoted cell. Read on to the
        # line that closes it (bounded: a stray quote must not pull in the whole file).
        parts = [data]
        quotes = data.count(b'"')
        # The row the quoted cell belongs to starts at the last line with an odd count before it.
        row_bytes = 0
        row_line = self._lines_read + len(lines)
        for line in reversed(lines):
            row_bytes += len(line)
            if line.count(b'"') % 2:
                break
            row_line -= 1
        for _ in range(MAX_CSV_EXTRA_LINES):
            line = self._readline(self._lines_read + len(lines) + 1, "the CSV row")
            if not line:
                break
            row_bytes += len(line)
            if row_bytes > self.max_line_bytes:
                raise too_long(self.name, row_line, "the CSV row (a quoted cell spanning lines)", self.max_line_bytes)
            parts.append(line)
            lines.append(line)
            quotes += line.count(b'"')
            if quotes % 2 == 0:
                break
        return b"".join(parts)

    def _read_csv_header(self) -> None:
        header_lines = [self._readline(1, "the CSV header")]
        while b"".join(header_lines).count(b'"') % 2 and len(header_lines) < 100:
            more = self._readline(len(header_lines) + 1, "the CSV header")
            if not more:
                break
            header_lines.append(more)
        raw = b"".join(header_lines)
        self._lines_read = self.header_lines = len(header_lines)
        self.bytes_read += len(raw)
        self._header = raw
        where = f"{self.name} line 1"
        try:
            cells = next(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
        except UnicodeDecodeError as exc:
            raise ImportInputError(f"{where}: not UTF-8 text (byte {exc.start})", file=self.name, line=1) from None
        except (csv.Error, StopIteration) as exc:
            raise ImportInputError(f"{where}: not a CSV header ({exc})", file=self.name, line=1) from None
        try:
            self.columns = parse_header(cells)
        except HeaderError as exc:
            raise ImportInputError(
                f"{where}: not a valid CSV header: {exc} (is this file CSV? pass --format)", file=self.name, line=1
            ) from None
        if not self._file.peek(1):  # type: ignore[attr-defined]
            raise ImportInputError(
                f"{self.name}: the file has a header but no rows: there are no items to import", file=self.name
            )

    def _json_batches(self, identity: BatchIdentity) -> Iterator[RawBatch]:
        reader = JsonArrayReader(self._file, self.name, self.max_line_bytes)
        position = 0
        while True:
            records: list[bytes] = []
            record_lines: list[int] = []
            for text, line in reader.elements():
                records.append(text)
                record_lines.append(line)
                if len(records) == self.batch_size:
                    break
            if not records:
                return
            nbytes = sum(len(record) for record in records)
            self.bytes_read = reader.bytes_read
            yield RawBatch(
                position=position,
                batch_id=identity.next_id(*records),
                first_line=record_lines[0],
                last_line=record_lines[-1],
                nbytes=nbytes,
                records=records,
                record_lines=record_lines,
            )
            position += 1
            if reader.finished:
                return
