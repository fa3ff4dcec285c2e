"""How an activity's failure is told apart: deterministic, transient, or unexpected.

Temporal retries an activity's exception unless it is told not to, by default forever.
That is right for a store that is briefly down and wrong for anything else: an item that
cannot be encoded, a counter that overflows, a corrupt blob or a bug fails the same way
on every attempt, and an order behind it would sit in "submitted" for good. So every
activity sorts its exceptions here:

- **deterministic** (the domain's and storage's own verdicts on data, and the
  programming errors a bug raises): not retried. A non-retryable ``ApplicationError``
  typed by the exception's class, which the workflow turns into a recorded outcome
  (``BatchRejected`` or ``FulfillmentFailed``).
- **transient** (a store, database or server unreachable, a timeout): retried with
  backoff by the activity's retry policy; every attempt's failure shows in Temporal's
  pending-activity information (``bulkorder show``, ``bulkorder stuck``).
- **unexpected** (anything else): retried ``UNEXPECTED_ATTEMPTS`` times, in case it was
  a passing condition nobody foresaw, then not retried (type ``UnexpectedError``).
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, PersistenceError
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from bulkorder.domain.errors import OrderError
from bulkorder.domain.items import ItemValidationError
from bulkorder.domain.refs import InvalidRefError
from bulkorder.storage.errors import StorageError, TransientStoreError
from bulkorder.workflows.fulfillment import FulfillmentMismatch

logger = logging.getLogger(__name__)

#: Attempts an unexpected exception gets before it counts as deterministic.
UNEXPECTED_ATTEMPTS = 3
UNEXPECTED_ERROR = "UnexpectedError"

#: What retrying cannot fix: verdicts on the data, and what a bug raises.
DETERMINISTIC: tuple[type[BaseException], ...] = (
    FulfillmentMismatch,
    OrderError,
    InvalidRefError,
    ItemValidationError,
    StorageError,  # not found, integrity, format, claim check (TransientStoreError is listed first below)
    PersistenceError,  # data, integrity, programming errors of the event store (transient ones first below)
    OverflowError,
    ArithmeticError,
    TypeError,
    ValueError,
    KeyError,
    IndexError,
    AttributeError,
    AssertionError,
    NotImplementedError,
    RecursionError,
    UnicodeError,
)

#: Worth retrying: something out there is briefly unreachable or slow.
TRANSIENT: tuple[type[BaseException], ...] = (
    TransientStoreError,
    InterfaceError,
    OperationalError,
    sqlite3.OperationalError,
    ConnectionError,
    TimeoutError,
    OSError,
)


def _botocore_transient() -> tuple[type[BaseException], ...]:
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return ()
    return (BotoConnectionError, HTTPClientError)


TRANSIENT = TRANSIENT + _botocore_transient()


def classify(exc: BaseException) -> str:
    """``"transient"``, ``"deterministic"`` or ``"unexpected"``."""
    if isinstance(exc, ApplicationError):
        return "deterministic" if exc.non_retryable else "transient"
    if isinstance(exc, TRANSIENT):
        return "transient"
    if isinstance(exc, DETERMINISTIC):
        return "deterministic"
    return "unexpected"


def _attempt() -> int:
    try:
        return activity.info().attempt
    except RuntimeError:  # called outside an activity (tests call the methods directly)
        return 1


class classified_failures:
    """Context manager around an activity's body: raises what it raises, sorted.

    A deterministic exception becomes a non-retryable ``ApplicationError`` typed by its
    class name; a transient one goes on to Temporal's retry policy as it is; an
    unexpected one is retried ``UNEXPECTED_ATTEMPTS`` times, then becomes non-retryable.
    """

    def __init__(self, step: str) -> None:
        self.step = step

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, CancelledError):
            return False  # success, or cancellation and the like: Temporal's business
        kind = classify(exc)
        if kind == "transient":
            logger.warning("%s: transient failure, will retry: %s: %s", self.step, type(exc).__name__, exc)
            return False
        if isinstance(exc, ApplicationError):
            return False
        message = f"{type(exc).__name__}: {exc}" if kind == "unexpected" else str(exc)
        if kind == "unexpected":
            attempt = _attempt()
            if attempt < UNEXPECTED_ATTEMPTS:
                logger.exception("%s: unexpected failure (attempt %d of %d)", self.step, attempt, UNEXPECTED_ATTEMPTS)
                raise ApplicationError(message[:2000], type=UNEXPECTED_ERROR) from exc
            logger.exception("%s: unexpected failure on attempt %d: not retried again", self.step, attempt)
            raise ApplicationError(message[:2000], type=UNEXPECTED_ERROR, non_retryable=True) from exc
        raise ApplicationError(message[:2000], type=type(exc).__name__, non_retryable=True) from exc
