"""Reading an input file as a stream of raw batches, in the importer's main process.

The main process only cuts the input into batches and hashes them (for their IDs); the
parsing and validation of the items happens in the encoding processes (:mod:`.stage`).
It never holds more than one batch of the input in memory:

- **NDJSON**: a batch is ``batch_size`` lines as they are in the file (blank lines count
  as lines and hold no item);
- **CSV**: the header, then batches of ``batch_size`` lines, extended to the end of a
  quoted cell that spans lines;
- **JSON array**: read incrementally, element by element (``json.JSONDecoder.raw_decode``
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

import codecs
import csv
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

from bulkorder.importer.csv_columns import CsvColumns, HeaderError, parse_header
from bulkorder.importer.errors import ImportInputError
from bulkorder.importer.identity import BatchIdentity

NDJSON = "ndjson"
CSV = "csv"
JSON = "json"
FORMATS = (NDJSON, CSV, JSON)
_EXTENSIONS = {".ndjson": NDJSON, ".jsonl": NDJSON, ".csv": CSV}

#: A quoted CSV cell may span at most this many lines beyond a batch's end.
MAX_CSV_EXTRA_LINES = 10_000
#: Longest line, CSV row or JSON array element read (an item is about 500 bytes; one at
#: every bound of the domain, 500 attributes of 4,096 characters, is about 2 MiB: raise it
#: for such items).
DEFAULT_MAX_LINE_BYTES = 1 << 20
MAX_LINE_BYTES_SETTING = "BULKORDER_MAX_LINE_BYTES"
_READ_SIZE = 1 << 20
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


def _too_long(name: str, line: int, what: str, limit: int) -> ImportInputError:
    return ImportInputError(
        f"{name} line {line}: {what} is longer than {limit:,} bytes, the limit "
        f"(raise it with --max-line-bytes or {MAX_LINE_BYTES_SETTING} if the file is right)",
        file=name,
        line=line,
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
            self._file: BinaryIO = open(self.path, "rb", buffering=_READ_SIZE)  # noqa: SIM115 - closed in close()
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
            raise _too_long(self.name, number, what, self.max_line_bytes)
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
                raise _too_long(self.name, self._lines_read + len(lines), "the line", self.max_line_bytes)
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
                raise _too_long(self.name, row_line, "the CSV row (a quoted cell spanning lines)", self.max_line_bytes)
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
        reader = _JsonArrayReader(self._file, self.name, self.max_line_bytes)
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


_SPACE = re.compile(r"[ \t\r\n]*")


class _JsonArrayReader:
    """The elements of one top-level JSON array, read incrementally from a binary file.

    Keeps a window of text: what is consumed is dropped, and a window that must grow past
    ``max_element`` characters to hold one element means that element is too long.
    """

    def __init__(self, file: BinaryIO, name: str, max_element: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._file = file
        self._name = name
        self._max_element = max_element
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        # Only the element's end is wanted here (the stage parses it): integers are kept as
        # text, so one of 5,000 digits is no ValueError (Python converts at most 4,300).
        self._json = json.JSONDecoder(parse_int=str)
        self._text = ""
        self._pos = 0
        self._line = 1  # line number at self._pos
        self._eof = False
        self.bytes_read = 0
        self.finished = False
        self._started = False

    def _fill(self) -> bool:
        """Read more input into the window; ``False`` at the end of the file."""
        if self._eof:
            return False
        block = self._file.read(_READ_SIZE)
        self.bytes_read += len(block)
        try:
            text = self._decoder.decode(block, final=not block)
        except UnicodeDecodeError:
            raise self._error("not UTF-8 text (at or after this line)") from None
        if not block:
            # Positions in the window stay valid: error messages still count lines right.
            self._eof = True
            return False
        self._text = self._text[self._pos :] + text
        self._pos = 0
        return True

    def _advance(self, end: int) -> None:
        self._line += self._text.count("\n", self._pos, end)
        self._pos = end

    def _skip_space(self) -> str:
        """The next non-space character ('' at the end of input)."""
        while True:
            self._advance(_SPACE.match(self._text, self._pos).end())  # type: ignore[union-attr]
            if self._pos < len(self._text):
                return self._text[self._pos]
            if not self._fill():
                return ""

    def _error(self, message: str, line: int | None = None) -> ImportInputError:
        line = line or self._line
        return ImportInputError(f"{self._name} line {line}: {message}", file=self._name, line=line)

    def elements(self) -> Iterator[tuple[bytes, int]]:
        """``(element as UTF-8, line where it starts)`` until this batch is full or the
        array ends (then :attr:`finished`)."""
        if not self._started:
            if self._skip_space() != "[":
                raise self._error("not a JSON array (it does not start with '[')")
            self._advance(self._pos + 1)
            self._started = True
            if self._skip_space() == "]":
                raise self._error("the JSON array is empty: there are no items to import")
        while not self.finished:
            char = self._skip_space()
            if char == "":
                raise self._error("the JSON array is not closed (missing ']' at the end of the file)")
            start_line = self._line
            end = self._decode_element()
            text = self._text[self._pos : end]
            self._advance(end)
            char = self._skip_space()
            if char == ",":
                self._advance(self._pos + 1)
                if self._skip_space() == "]":
                    raise self._error("a ',' is followed by ']' (trailing comma)")
            elif char == "]":
                self._advance(self._pos + 1)
                if self._skip_space() != "":
                    raise self._error("data after the end of the JSON array")
                self.finished = True
            elif char == "":
                raise self._error("the JSON array is not closed (missing ']' at the end of the file)")
            else:
                raise self._error(f"expected ',' or ']' after an element, found {char!r}")
            yield text.encode("utf-8"), start_line

    def _decode_element(self) -> int:
        while True:
            try:
                _, end = self._json.raw_decode(self._text, self._pos)
            except RecursionError:
                # Nested too deeply for the parser: find the element's end without
                # recursing; parsing it later refuses it, as this element's problem.
                end = _value_end(self._text, self._pos)
                if end is None:
                    if self._fill_within_limit():
                        continue
                    raise self._error("not valid JSON: an element nested too deeply is not closed") from None
            except json.JSONDecodeError as exc:
                # Incomplete, or malformed? Read more unless at the end or past the limit.
                if self._fill_within_limit():
                    continue
                line = self._line + self._text.count("\n", self._pos, exc.pos)
                raise self._error(f"not valid JSON: {exc.msg}", line=line) from None
            if end - self._pos > self._max_element:
                raise _too_long(self._name, self._line, "the JSON array element", self._max_element)
            if end == len(self._text) and not self._eof:
                # A number at the window's end may go on in the next block ("12" of "123").
                if self._fill():
                    continue
            return end

    def _fill_within_limit(self) -> bool:
        if len(self._text) - self._pos > self._max_element:
            raise _too_long(self._name, self._line, "the JSON array element", self._max_element)
        return self._fill()


_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _value_end(text: str, start: int) -> int | None:
    """Where the array or object starting at ``text[start]`` ends (iteratively), or
    ``None`` if it does not end within ``text``."""
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text, start):
        token = match.group()
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
            if depth == 0:
                return match.end()
        if depth <= 0:
            return None  # a string or a closing bracket first: not an array or object
    return None
