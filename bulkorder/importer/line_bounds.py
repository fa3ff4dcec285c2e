"""What every reader of an input file shares: the bound on a line, and its error.

Every read is bounded by ``max_line_bytes`` (:data:`DEFAULT_MAX_LINE_BYTES`, setting
``BULKORDER_MAX_LINE_BYTES``, ``bulkorder import --max-line-bytes``): see
:mod:`bulkorder.importer.sources`.
"""

from __future__ import annotations

from bulkorder.importer.errors import ImportInputError

#: Longest line, CSV row or JSON array element read (an item is about 500 bytes; one at
#: every bound of the domain, 500 attributes of 4,096 characters, is about 2 MiB: raise it
#: for such items).
DEFAULT_MAX_LINE_BYTES = 1 << 20
MAX_LINE_BYTES_SETTING = "BULKORDER_MAX_LINE_BYTES"
#: Bytes read from the file at a time.
READ_SIZE = 1 << 20


def too_long(name: str, line: int, what: str, limit: int) -> ImportInputError:
    """A line (row, element) longer than the bound: the import stops, naming file and line."""
    return ImportInputError(
        f"{name} line {line}: {what} is longer than {limit:,} bytes, the limit "
        f"(raise it with --max-line-bytes or {MAX_LINE_BYTES_SETTING} if the file is right)",
        file=name,
        line=line,
    )
