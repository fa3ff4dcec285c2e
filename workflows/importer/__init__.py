"""The batch importer: files of millions of items into one order (``bulkorder import``).

Modules, one idea each: :mod:`.sources` cuts an input into raw batches, :mod:`.identity`
names them, :mod:`.stage` parses, validates and encodes them in the processes of
:mod:`.encoders`, :mod:`.pipeline` uploads and sends them in order, :mod:`.preflight`
checks the order and finds what a resumed run can skip, :mod:`.rejects` and
:mod:`.progress` report, and :mod:`.importer` ties them together as :func:`import_file`.

The names below are loaded on first use: the encoding processes import this package to
reach :mod:`.stage`, and should not pay for Temporal's client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ImportIncompleteError": "bulkorder.workflows.importer.errors",
    "ImportInputError": "bulkorder.workflows.importer.errors",
    "ImportRefusedError": "bulkorder.workflows.importer.errors",
    "DEFAULT_BATCH_SIZE": "bulkorder.workflows.importer.importer",
    "ImportOptions": "bulkorder.workflows.importer.importer",
    "ImportSummary": "bulkorder.workflows.importer.importer",
    "import_file": "bulkorder.workflows.importer.importer",
    "CSV": "bulkorder.workflows.importer.sources",
    "FORMATS": "bulkorder.workflows.importer.sources",
    "JSON": "bulkorder.workflows.importer.sources",
    "NDJSON": "bulkorder.workflows.importer.sources",
}

if TYPE_CHECKING:
    from bulkorder.workflows.importer.errors import ImportIncompleteError, ImportInputError, ImportRefusedError
    from bulkorder.workflows.importer.importer import DEFAULT_BATCH_SIZE, ImportOptions, ImportSummary, import_file
    from bulkorder.workflows.importer.sources import CSV, FORMATS, JSON, NDJSON


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bulkorder.workflows.importer' has no attribute {name!r}")
    return getattr(import_module(module), name)


__all__ = sorted(_EXPORTS)
