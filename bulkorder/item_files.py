"""Reading items from a user's file for ``create --items`` and ``add``.

Accepts NDJSON (one item per line) or one JSON array. Everything is validated before
anything is stored, and every error names the file, the line (or array index) and the
field. Files of millions of items go through ``bulkorder import`` instead, which streams.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from domain.items import items_from_json_lines, validate_item_dict


class ItemFileError(ValueError):
    """The file cannot be read as items (missing, empty, not JSON)."""


def read_item_file(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ItemFileError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ItemFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ItemFileError(f"{path}: cannot read: {exc.strerror}") from None
    if not text.strip():
        raise ItemFileError(f"{path}: the file is empty; expected NDJSON or a JSON array of items")
    if text.lstrip().startswith("["):
        return _read_json_array(path, text)
    return _read_ndjson(path, text)


def _read_json_array(path: Path, text: str) -> list[dict[str, Any]]:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ItemFileError(f"{path} line {exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(raw, list) or not raw:
        raise ItemFileError(f"{path}: expected a non-empty JSON array of items")
    return [validate_item_dict(item, f"{path} item {index}") for index, item in enumerate(raw)]


def _read_ndjson(path: Path, text: str) -> list[dict[str, Any]]:
    return items_from_json_lines(text.splitlines(), str(path))
