"""Errors the importer raises. Each message names the file, the line and the field, and
says what was imported before the problem, so the user knows how to go on."""

from __future__ import annotations

from bulkorder.domain.errors import BulkorderError


class ImportInputError(BulkorderError, ValueError):
    """The input cannot be imported as it is: an empty file, a wrong format, a malformed
    line or an invalid item. ``line`` and ``field`` say where, when known."""

    def __init__(self, message: str, *, file: str = "", line: int | None = None, field: str = "") -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.field = field

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (str(self), self.file, self.line, self.field))


class ImportRefusedError(BulkorderError, RuntimeError):
    """The order cannot take this import: it does not exist (and ``--create`` was not
    given), it is closed, it belongs to another customer, or Temporal refused the refs."""


class ImportIncompleteError(BulkorderError, RuntimeError):
    """Temporal accepted the batches but the event store did not record all of them in
    time (is a worker running on the task queue?). Running the import again is safe."""


def _rebuild(message: str, file: str, line: int | None, field: str) -> ImportInputError:
    return ImportInputError(message, file=file, line=line, field=field)
