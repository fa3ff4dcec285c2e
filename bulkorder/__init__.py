"""bulkorder: orders too big for a workflow engine.

The public facade: every entry point the docs name is imported from here. A service opens
a runtime from the environment and uses its :class:`~workflows.client.OrderClient`::

    from bulkorder import Settings, open_runtime

    async with open_runtime(Settings.from_env()) as runtime:
        orders = runtime.order_client()
        await orders.create("order-1", "acme")
        await orders.add_items("order-1", items)     # validated, stored, added by reference
        await orders.submit("order-1")
        summary = await orders.wait_closed("order-1")

Errors are one family under :class:`BulkorderError`; a refusal from the workflow
(:class:`OrderRefusedError`, with ``.type``) is also the domain's class for its reason, so
``except OrderClosedError`` catches a closed order from ``OrderClient`` and from
``OrderOutbox`` alike (docs/getting_started.md, "Errors").

``import bulkorder`` is cheap: each name below loads its module on first use (PEP 562), so
a service that only wants ``Settings`` or an error class does not pay for Temporal's
client, boto3 or the event store.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

#: Each public name, and the module that defines it (loaded when the name is first used).
_EXPORTS: dict[str, str] = {
    # Running it: settings, the runtime, the workflow-first client.
    "Settings": "bulkorder.settings",
    "Runtime": "bulkorder.runtime",
    "open_runtime": "bulkorder.runtime",
    "data_converter": "bulkorder.runtime",
    "OrderClient": "workflows.client",
    "OrderLimits": "workflows.messages",
    "OrderProgress": "workflows.pending",
    "PendingStep": "workflows.pending",
    # DB-first: the outbox and the orders application it records in.
    "OrderOutbox": "workflows.outbox",
    "Orders": "domain.application",
    # Items and references.
    "Item": "domain.items",
    "Money": "domain.items",
    "BatchRef": "domain.refs",
    "ReportRef": "domain.refs",
    "OrderStatus": "domain.summary",
    "OrderSummary": "domain.summary",
    # Stores.
    "BatchStore": "storage.batches",
    "FolderBlobStore": "storage.folder_store",
    "BlobStoreConfig": "storage.config",
    "EventStoreConfig": "storage.config",
    # Importing files.
    "import_file": "workflows.importer.importer",
    "ImportOptions": "workflows.importer.importer",
    "ImportSummary": "workflows.importer.importer",
    "PlainLines": "workflows.importer.progress",
    # Analysts.
    "Analyst": "bulkorder.analysis",
    "parse_instant": "domain.history",
    # Errors: one family under BulkorderError.
    "BulkorderError": "domain.errors",
    "OrderError": "domain.errors",
    "OrderNotFoundError": "domain.errors",
    "OrderConflictError": "domain.errors",
    "OrderAlreadyExistsError": "domain.errors",
    "OrderClosedError": "domain.errors",
    "EmptyOrderError": "domain.errors",
    "OrderLimitError": "domain.errors",
    "FulfillmentFailedError": "domain.errors",
    "OrderRefusedError": "workflows.errors",
    "InvalidIdentifierError": "domain.identifiers",
    "ItemValidationError": "domain.items",
    "InvalidRefError": "domain.refs",
    "SettingsError": "bulkorder.settings",
    "NoTemporalError": "bulkorder.runtime",
    "StorageError": "storage.errors",
    "BlobNotFoundError": "storage.errors",
    "BlobIntegrityError": "storage.errors",
    "BatchFormatError": "storage.errors",
    "ClaimCheckError": "storage.errors",
    "TransientStoreError": "storage.errors",
    "ImportInputError": "workflows.importer.errors",
    "ImportRefusedError": "workflows.importer.errors",
    "ImportIncompleteError": "workflows.importer.errors",
    "VersionOutOfRangeError": "domain.history",
    "BeforeCreationError": "domain.history",
    "InvalidInstantError": "domain.history",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and editors see; at run time, __getattr__ above
    from bulkorder.analysis import Analyst
    from bulkorder.runtime import NoTemporalError, Runtime, data_converter, open_runtime
    from bulkorder.settings import Settings, SettingsError
    from domain.application import Orders
    from domain.errors import (
        BulkorderError,
        EmptyOrderError,
        FulfillmentFailedError,
        OrderAlreadyExistsError,
        OrderClosedError,
        OrderConflictError,
        OrderError,
        OrderLimitError,
        OrderNotFoundError,
    )
    from domain.history import BeforeCreationError, InvalidInstantError, VersionOutOfRangeError, parse_instant
    from domain.identifiers import InvalidIdentifierError
    from domain.items import Item, ItemValidationError, Money
    from domain.refs import BatchRef, InvalidRefError, ReportRef
    from domain.summary import OrderStatus, OrderSummary
    from storage.batches import BatchStore
    from storage.config import BlobStoreConfig, EventStoreConfig
    from storage.errors import (
        BatchFormatError,
        BlobIntegrityError,
        BlobNotFoundError,
        ClaimCheckError,
        StorageError,
        TransientStoreError,
    )
    from storage.folder_store import FolderBlobStore
    from workflows.client import OrderClient
    from workflows.errors import OrderRefusedError
    from workflows.importer.errors import ImportIncompleteError, ImportInputError, ImportRefusedError
    from workflows.importer.importer import ImportOptions, ImportSummary, import_file
    from workflows.importer.progress import PlainLines
    from workflows.messages import OrderLimits
    from workflows.outbox import OrderOutbox
    from workflows.pending import OrderProgress, PendingStep
