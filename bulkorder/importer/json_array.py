"""The elements of one top-level JSON array, read incrementally (the importer's ``json`` format).

The main process cuts a JSON array into batches of elements without parsing the items
(the encoding processes do that): a window of text slides over the file, each element's
end is found with ``json.JSONDecoder.raw_decode``, and an element nested too deeply for
the parser is cut out without recursion (:func:`_value_end`) and refused when parsed.
Every element is bounded by ``max_element`` characters (see
:mod:`bulkorder.importer.line_bounds`).
"""

from __future__ import annotations

import codecs
import json
import re
from typing import BinaryIO, Iterator

from bulkorder.importer.errors import ImportInputError
from bulkorder.importer.line_bounds import DEFAULT_MAX_LINE_BYTES, READ_SIZE, too_long

_SPACE = re.compile(r"[ \t\r\n]*")


class JsonArrayReader:
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
        block = self._file.read(READ_SIZE)
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
                raise too_long(self._name, self._line, "the JSON array element", self._max_element)
            if end == len(self._text) and not self._eof:
                # A number at the window's end may go on in the next block ("12" of "123").
                if self._fill():
                    continue
            return end

    def _fill_within_limit(self) -> bool:
        if len(self._text) - self._pos > self._max_element:
            raise too_long(self._name, self._line, "the JSON array element", self._max_element)
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
