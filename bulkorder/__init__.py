"""bulkorder: orders too big for a workflow engine.

The public facade: every entry point the docs name is imported from here. A service opens
a runtime from the environment and uses its :class:`~bulkorder.workflows.client.OrderClient`::

    from bulkorder import Settings, open_runtime

    async with open_runtime(Settings.from_env()) as runtime:
        orders = runtime.order_client()
        await orders.create("acme", "PO-1001")           # customer, the customer's reference
        await orders.add_items("acme/PO-1001", items)   # validated, stored, added by reference
        await orders.submit("acme/PO-1001")             # every call names the order so
        summary = await orders.wait_closed("acme/PO-1001")

Errors are one family under :class:`BulkorderError`; a refusal from the workflow
(:class:`OrderRefusedError`, with ``.type``) is also the domain's class for its reason, so
``except OrderClosedError`` catches a closed order from ``OrderClient`` and from
``OrderOutbox`` alike (docs/getting_started.md, "Errors").

``import bulkorder`` is cheap: each name below loads its module on first use (PEP 562), so
a service that only wants ``Settings`` or an error class does not pay for Temporal's
client, boto3 or the event store.
"""

from __future__ import annotations

from bulkorder.lazy_exports import lazy_exports
from typing import TYPE_CHECKING

#: Each public name, and the module that defines it (loaded when the name is first used).
_EXPORTS: dict[str, str] = {
    # Running it: settings, the runtime, the workflow-first client.
    "Settings": "bulkorder.settings",
    "Runtime": "bulkorder.runtime",
    "open_runtime": "bulkorder.runtime",
    "data_converter": "bulkorder.runtime",
    "OrderClient": "bulkorder.workflows.client",
    "OrderLimits": "bulkorder.workflows.messages",
    "OrderProgress": "bulkorder.workflows.pending",
    "PendingStep": "bulkorder.workflows.pending",
    # DB-first: the outbox and the orders application it records in.
    "OrderOutbox": "bulkorder.workflows.outbox",
    "Orders": "bulkorder.domain.application",
    # Items and references.
    "Item": "bulkorder.domain.items",
    "Money": "bulkorder.domain.items",
    "BatchRef": "bulkorder.domain.refs",
    "ReportRef": "bulkorder.domain.refs",
    "OrderStatus": "bulkorder.domain.summary",
    "OrderSummary": "bulkorder.domain.summary",
    # Stores.
    "BatchStore": "bulkorder.storage.batches",
    "FolderBlobStore": "bulkorder.storage.folder_store",
    "BlobStoreConfig": "bulkorder.storage.config",
    "EventStoreConfig": "bulkorder.storage.config",
    # Encryption at rest (docs/data_protection.md).
    "DataKeys": "bulkorder.storage.encryption.data_keys",
    "EncryptionSettings": "bulkorder.encryption",
    # Importing files.
    "import_file": "bulkorder.importer.importer",
    "ImportOptions": "bulkorder.importer.importer",
    "ImportSummary": "bulkorder.importer.importer",
    "PlainLines": "bulkorder.importer.progress",
    # Order identity: customer/reference, and the keyed hash Temporal sees.
    "OrderName": "bulkorder.domain.identity",
    "OrderIdentity": "bulkorder.domain.identity",
    # Retention, erasure, garbage collection (docs/data_protection.md).
    "collect_garbage": "bulkorder.data_lifecycle",
    "purge_closed_orders": "bulkorder.data_lifecycle",
    "erase_order": "bulkorder.data_lifecycle",
    # Analysts.
    "Analyst": "bulkorder.analysis",
    "parse_instant": "bulkorder.analysis.history",
    "item_schema": "bulkorder.analysis.arrow_items",
    "event_schema": "bulkorder.analysis.arrow_items",
    # Operating a worker: metrics, readiness, tracing.
    "Readiness": "bulkorder.health",
    "OpsServer": "bulkorder.ops_server",
    "MeteredBlobStore": "bulkorder.metrics",
    "TracingSettings": "bulkorder.tracing",
    # Errors: one family under BulkorderError.
    "BulkorderError": "bulkorder.domain.errors",
    "OrderError": "bulkorder.domain.errors",
    "OrderNotFoundError": "bulkorder.domain.errors",
    "OrderConflictError": "bulkorder.domain.errors",
    "OrderAlreadyExistsError": "bulkorder.domain.errors",
    "OrderCreateConflictError": "bulkorder.domain.errors",
    "OrderIdentityError": "bulkorder.domain.errors",
    "OrderClosedError": "bulkorder.domain.errors",
    "EmptyOrderError": "bulkorder.domain.errors",
    "OrderLimitError": "bulkorder.domain.errors",
    "FulfillmentFailedError": "bulkorder.domain.errors",
    "OrderErasedError": "bulkorder.domain.errors",
    "ItemsPurgedError": "bulkorder.domain.errors",
    "GcError": "bulkorder.storage.gc",
    "OrderRefusedError": "bulkorder.workflows.errors",
    "InvalidIdentifierError": "bulkorder.domain.identifiers",
    "ItemValidationError": "bulkorder.domain.items",
    "InvalidRefError": "bulkorder.domain.refs",
    "SettingsError": "bulkorder.settings",
    "NoTemporalError": "bulkorder.runtime",
    "StorageError": "bulkorder.storage.errors",
    "BlobNotFoundError": "bulkorder.storage.errors",
    "BlobIntegrityError": "bulkorder.storage.errors",
    "BatchFormatError": "bulkorder.storage.errors",
    "ClaimCheckError": "bulkorder.storage.errors",
    "TransientStoreError": "bulkorder.storage.errors",
    "EncryptionError": "bulkorder.storage.encryption.errors",
    "KeyNotFoundError": "bulkorder.storage.encryption.errors",
    "DataKeyNotFoundError": "bulkorder.storage.encryption.errors",
    "DataKeyDestroyedError": "bulkorder.storage.encryption.errors",
    "DecryptionError": "bulkorder.storage.encryption.errors",
    "ImportInputError": "bulkorder.importer.errors",
    "ImportRefusedError": "bulkorder.importer.errors",
    "ImportIncompleteError": "bulkorder.importer.errors",
    "VersionOutOfRangeError": "bulkorder.analysis.history",
    "BeforeCreationError": "bulkorder.analysis.history",
    "InvalidInstantError": "bulkorder.analysis.history",
    "MissingExtraError": "bulkorder.extras",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)


if TYPE_CHECKING:  # what type checkers and editors see; at run time, __getattr__ above
    from bulkorder.analysis import Analyst
    from bulkorder.analysis.arrow_items import event_schema, item_schema
    from bulkorder.extras import MissingExtraError
    from bulkorder.health import Readiness
    from bulkorder.metrics import MeteredBlobStore
    from bulkorder.ops_server import OpsServer
    from bulkorder.tracing import TracingSettings
    from bulkorder.data_lifecycle import collect_garbage, erase_order, purge_closed_orders
    from bulkorder.storage.gc import GcError
    from bulkorder.runtime import NoTemporalError, Runtime, data_converter, open_runtime
    from bulkorder.settings import Settings, SettingsError
    from bulkorder.domain.application import Orders
    from bulkorder.domain.errors import (
        BulkorderError,
        EmptyOrderError,
        FulfillmentFailedError,
        ItemsPurgedError,
        OrderAlreadyExistsError,
        OrderClosedError,
        OrderConflictError,
        OrderCreateConflictError,
        OrderErasedError,
        OrderError,
        OrderIdentityError,
        OrderLimitError,
        OrderNotFoundError,
    )
    from bulkorder.analysis.history import BeforeCreationError, InvalidInstantError, VersionOutOfRangeError, parse_instant
    from bulkorder.domain.identifiers import InvalidIdentifierError
    from bulkorder.domain.identity import OrderIdentity, OrderName
    from bulkorder.domain.items import Item, ItemValidationError, Money
    from bulkorder.domain.refs import BatchRef, InvalidRefError, ReportRef
    from bulkorder.domain.summary import OrderStatus, OrderSummary
    from bulkorder.storage.batches import BatchStore
    from bulkorder.storage.config import BlobStoreConfig, EventStoreConfig
    from bulkorder.storage.errors import (
        BatchFormatError,
        BlobIntegrityError,
        BlobNotFoundError,
        ClaimCheckError,
        StorageError,
        TransientStoreError,
    )
    from bulkorder.storage.folder_store import FolderBlobStore
    from bulkorder.encryption import EncryptionSettings
    from bulkorder.storage.encryption.data_keys import DataKeys
    from bulkorder.storage.encryption.errors import (
        DataKeyDestroyedError,
        DataKeyNotFoundError,
        DecryptionError,
        EncryptionError,
        KeyNotFoundError,
    )
    from bulkorder.workflows.client import OrderClient
    from bulkorder.workflows.errors import OrderRefusedError
    from bulkorder.importer.errors import ImportIncompleteError, ImportInputError, ImportRefusedError
    from bulkorder.importer.importer import ImportOptions, ImportSummary, import_file
    from bulkorder.importer.progress import PlainLines
    from bulkorder.workflows.messages import OrderLimits
    from bulkorder.workflows.outbox import OrderOutbox
    from bulkorder.workflows.pending import OrderProgress, PendingStep
