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
    "EncoderPool": "bulkorder.importer.encoders",
    "ImportIncompleteError": "bulkorder.importer.errors",
    "ImportInputError": "bulkorder.importer.errors",
    "ImportRefusedError": "bulkorder.importer.errors",
    "DEFAULT_BATCH_SIZE": "bulkorder.importer.importer",
    "ImportOptions": "bulkorder.importer.importer",
    "ImportSummary": "bulkorder.importer.importer",
    "import_file": "bulkorder.importer.importer",
    "CSV": "bulkorder.importer.sources",
    "FORMATS": "bulkorder.importer.sources",
    "JSON": "bulkorder.importer.sources",
    "NDJSON": "bulkorder.importer.sources",
}

if TYPE_CHECKING:
    from bulkorder.importer.encoders import EncoderPool
    from bulkorder.importer.errors import ImportIncompleteError, ImportInputError, ImportRefusedError
    from bulkorder.importer.importer import DEFAULT_BATCH_SIZE, ImportOptions, ImportSummary, import_file
    from bulkorder.importer.sources import CSV, FORMATS, JSON, NDJSON


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bulkorder.importer' has no attribute {name!r}")
    return getattr(import_module(module), name)


__all__ = sorted(_EXPORTS)
