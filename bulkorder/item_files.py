"""Reading items from a user's file for ``create --items`` and ``add``.

Accepts NDJSON (one item per line) or one JSON array. Everything is validated before
anything is stored, and every error names the file, the line (or array index) and the
field. Files of millions of items go through ``bulkorder import`` instead, which streams.

Reads are bounded: a line longer than ``max_line_bytes`` (the importer's limit,
``BULKORDER_MAX_LINE_BYTES``) or a file larger than :data:`MAX_ITEM_FILE_BYTES` is
refused before it is held whole, and JSON is parsed strictly (:mod:`bulkorder.domain.json_text`:
no ``NaN``/``Infinity``, no duplicate keys, bounded nesting).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from bulkorder.domain import json_text
from bulkorder.domain.counters import first_sum_crossing
from bulkorder.domain.items import items_from_json_lines, validate_item_dict
from bulkorder.importer.sources import DEFAULT_MAX_LINE_BYTES

#: Largest file ``create --items`` and ``add`` read (they hold it whole; ``import`` streams).
MAX_ITEM_FILE_BYTES = 64 * 1024 * 1024


class ItemFileError(ValueError):
    """The file cannot be read as items (missing, empty, not JSON, too large)."""


def read_item_file(path: str | Path, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> list[dict[str, Any]]:
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.peek(4096)[:4096]  # type: ignore[attr-defined]
            if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
                return _read_json_array(path, _read_all(path, handle))
            return _read_ndjson(path, handle, max_line_bytes)
    except FileNotFoundError:
        raise ItemFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ItemFileError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise ItemFileError(f"{path}: cannot read: {exc.strerror}") from None


def _too_large(path: Path) -> ItemFileError:
    return ItemFileError(
        f"{path}: larger than {MAX_ITEM_FILE_BYTES:,} bytes: use `bulkorder import`, which streams files of any size"
    )


def _decode(path: Path, data: bytes, offset: int = 0) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ItemFileError(f"{path}: not UTF-8 text (byte {offset + exc.start})") from None


def _read_all(path: Path, handle: IO[bytes]) -> str:
    data = handle.read(MAX_ITEM_FILE_BYTES + 1)
    if len(data) > MAX_ITEM_FILE_BYTES:
        raise _too_large(path)
    return _decode(path, data).lstrip("\ufeff")


def _read_json_array(path: Path, text: str) -> list[dict[str, Any]]:
    try:
        raw = json_text.loads(text)
    except json_text.JsonTextError as exc:
        raise ItemFileError(f"{path}: {exc}") from None
    if not isinstance(raw, list) or not raw:
        raise ItemFileError(f"{path}: expected a non-empty JSON array of items")
    items = [validate_item_dict(item, f"{path} item {index}") for index, item in enumerate(raw)]
    crossing = first_sum_crossing(items)
    if crossing is not None:
        index, field, reason = crossing
        raise ItemFileError(f"{path} item {index}: {field}: {reason}")
    return items


def _read_ndjson(path: Path, handle: IO[bytes], max_line_bytes: int) -> list[dict[str, Any]]:
    lines: list[str] = []
    total = 0
    while True:
        line = handle.readline(max_line_bytes + 1)
        if not line:
            break
        if len(line) > max_line_bytes and not line.endswith(b"\n"):
            raise ItemFileError(
                f"{path} line {len(lines) + 1}: the line is longer than {max_line_bytes:,} bytes, the limit "
                "(BULKORDER_MAX_LINE_BYTES)"
            )
        total += len(line)
        if total > MAX_ITEM_FILE_BYTES:
            raise _too_large(path)
        lines.append(_decode(path, line, total - len(line)))
    if lines:
        lines[0] = lines[0].lstrip("\ufeff")
    if not any(line.strip() for line in lines):
        raise ItemFileError(f"{path}: the file is empty; expected NDJSON or a JSON array of items")
    items = items_from_json_lines(lines, str(path))
    crossing = first_sum_crossing(items)
    if crossing is not None:
        index, field, reason = crossing
        numbers = [number for number, line in enumerate(lines, start=1) if line.strip()]
        raise ItemFileError(f"{path} line {numbers[index]}: {field}: {reason}")
    return items
