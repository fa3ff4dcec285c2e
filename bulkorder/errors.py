"""Which errors the CLI reports as one line, and with which exit code."""

from __future__ import annotations

from bulkorder.domain.errors import OrderError
from bulkorder.domain.identifiers import InvalidIdentifierError
from bulkorder.domain.items import ItemValidationError
from bulkorder.domain.refs import InvalidRefError
from bulkorder.storage.encryption.errors import EncryptionError
from bulkorder.storage.errors import StorageError
from bulkorder.workflows.errors import OrderRefusedError
from bulkorder.workflows.relay import RelayStoppedError
from bulkorder.importer.errors import ImportIncompleteError, ImportInputError, ImportRefusedError

from bulkorder.embedded import EmbeddedTemporalError
from bulkorder.extras import MissingExtraError
from bulkorder.server_errors import CodecServerError, OpsServerError
from bulkorder.item_files import ItemFileError
from bulkorder.runtime import NoTemporalError
from bulkorder.settings import SettingsError
from bulkorder.identity_secret import IdentitySecretError

# Analysts (docs/analysts.md): a version or instant the order never had is bad input; a
# database or read-model failure is a failure.
from bulkorder.analysis import BeforeCreationError, InvalidInstantError, ProjectionOrderError, VersionOutOfRangeError
from eventsourcing.persistence import PersistenceError

_ANALYSTS_BAD_INPUT = (VersionOutOfRangeError, BeforeCreationError, InvalidInstantError)
_ANALYSTS_FAILED = (PersistenceError, ProjectionOrderError)

BAD_INPUT = 2
FAILED = 1

_BAD_INPUT = (
    ItemValidationError, InvalidIdentifierError, InvalidRefError, ItemFileError, SettingsError, IdentitySecretError
) + _ANALYSTS_BAD_INPUT
_FAILED = (OrderError, OrderRefusedError, StorageError, NoTemporalError, EmbeddedTemporalError, ConnectionError) + _ANALYSTS_FAILED
_BAD_INPUT += (ImportInputError,)
_FAILED += (ImportRefusedError, ImportIncompleteError)
# gc, retention, erasure (docs/data_protection.md): bad input is refused before anything.
from bulkorder.data_lifecycle import DataLifecycleInputError  # noqa: E402

_BAD_INPUT += (DataLifecycleInputError,)
# The relay met an error no retry fixes (docs/consistency.md): it stops, naming it.
_FAILED += (RelayStoppedError,)
# An optional extra (tracing, analysis) is not installed: the message names it.
_FAILED += (MissingExtraError,)
# Encryption (docs/data_protection.md): a missing or wrong key, an altered ciphertext.
_FAILED += (EncryptionError,)


# The codec server cannot listen (address in use, no such interface), nor the worker's
# metrics port: their classes live apart from the servers (no aiohttp at start).
_FAILED += (CodecServerError, OpsServerError)


def exit_code_for(exc: BaseException) -> int | None:
    if isinstance(exc, OrderRefusedError):
        return FAILED  # a refusal is also its domain class (InvalidRefError): still exit 1
    if isinstance(exc, _BAD_INPUT):
        return BAD_INPUT
    if isinstance(exc, _FAILED):
        return FAILED
    if type(exc).__module__.startswith("temporalio") or "Connection refused" in str(exc):
        return FAILED
    return None


def message_for(exc: BaseException) -> str:
    text = str(exc)
    if "Connection refused" in text or "tcp connect error" in text:
        return f"cannot reach Temporal: {text}"
    return text
