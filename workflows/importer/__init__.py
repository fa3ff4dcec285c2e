"""The batch importer: files of millions of items into one order (``bulkorder import``).

Modules, one idea each: :mod:`.sources` cuts an input into raw batches, :mod:`.identity`
names them, :mod:`.stage` parses, validates and encodes them in worker processes,
:mod:`.pipeline` uploads and sends them in order, :mod:`.preflight` checks the order and
finds what a resumed run can skip, :mod:`.rejects` and :mod:`.progress` report, and
:mod:`.importer` ties them together as :func:`import_file`.
"""

from workflows.importer.errors import ImportIncompleteError, ImportInputError, ImportRefusedError
from workflows.importer.importer import DEFAULT_BATCH_SIZE, ImportOptions, ImportSummary, import_file
from workflows.importer.sources import CSV, FORMATS, JSON, NDJSON

__all__ = [
    "CSV",
    "DEFAULT_BATCH_SIZE",
    "FORMATS",
    "ImportIncompleteError",
    "ImportInputError",
    "ImportOptions",
    "ImportRefusedError",
    "ImportSummary",
    "JSON",
    "NDJSON",
    "import_file",
]
