"""JSON text from outside, parsed strictly: what Python's ``json`` module lets through and
an item must never hold.

``json.loads`` accepts the non-standard tokens ``NaN``, ``Infinity`` and ``-Infinity``,
turns ``1e999`` into ``inf``, keeps the last of two equal keys, and recurses once per
nesting level (10,000 levels of ``[[[[`` end in a ``RecursionError``). :func:`loads`
refuses each of them with a :class:`JsonTextError` (a ``ValueError``) that says what is
wrong: non-finite numbers, duplicate keys, and nesting deeper than :data:`MAX_DEPTH`
(an item needs three levels: the item, its price or attributes, nothing below). The
depth is checked before parsing, by counting brackets outside strings, so no input can
make the parser recurse deeply.

Pure standard library: the domain, the CLI's item files and the importer's slow path
share it (the importer's fast path, msgspec, is checked to agree in its tests).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: Deepest nesting of arrays and objects accepted in one JSON value.
MAX_DEPTH = 32

# A JSON string (escapes included), matched without backtracking.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class JsonTextError(ValueError):
    """The text is not JSON an item can come from; the message (``not valid JSON: ...``)
    says why."""


def nesting_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in ``text``, brackets inside strings left out.

    Linear, no recursion. Unbalanced text gives a depth too (the parser then says what is
    malformed)."""
    if text.count("[") + text.count("{") <= 1:
        return text.count("[") + text.count("{")
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    return deepest


def check_depth(text: str, max_depth: int = MAX_DEPTH) -> None:
    """Refuse ``text`` nested deeper than ``max_depth`` (cheap when it cannot be)."""
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth = nesting_depth(text)
    if depth > max_depth:
        raise JsonTextError(f"nested {depth:,} levels deep; at most {max_depth} are allowed")


def _refuse_constant(name: str) -> Any:
    raise JsonTextError(f"{name} is not a number JSON allows (NaN and Infinity are refused)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise JsonTextError(f"the number {shown} is too large for a 64-bit float")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                shown = repr(key) if len(key) <= 60 else repr(key[:57] + "...")
                raise JsonTextError(f"the key {shown} appears twice in one object")
            seen.add(key)
    return value


_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_keys, parse_constant=_refuse_constant, parse_float=_finite_float
)


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """``text`` as a Python value: standard JSON only, finite numbers, unique keys,
    at most ``max_depth`` levels deep. Raises :class:`JsonTextError`."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonTextError(f"not UTF-8 text (byte {exc.start})") from None
    try:
        check_depth(text, max_depth)
        return _DECODER.decode(text)
    except JsonTextError as exc:
        raise JsonTextError(f"not valid JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise JsonTextError(f"not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})") from None
    except RecursionError:  # not reached after check_depth; kept so no input ever escapes as one
        raise JsonTextError(f"not valid JSON: nested too deeply; at most {max_depth} levels are allowed") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise JsonTextError(f"not valid JSON: {exc}") from None
