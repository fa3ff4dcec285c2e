"""Errors the storage layer raises.

Callers decide what to do from the class alone: :class:`TransientStoreError` is worth
retrying (Temporal retries the activity), everything else is not. Each message names the
key and the store, so a failed activity in Temporal's UI says what to look at.

Errors that take several constructor arguments define ``__reduce__`` so they survive
pickling (process pools, multiprocessing) with their attributes intact.
"""

from __future__ import annotations

from typing import Any

from bulkorder.domain.errors import BulkorderError


class StorageError(BulkorderError):
    """Base class of the storage layer's errors."""


class BlobNotFoundError(StorageError, KeyError):
    """No blob under this key.

    A :class:`KeyError` too, so code written against mappings handles it naturally.
    """

    def __init__(self, key: str, location: str = "", *, context: str = "") -> None:
        self.key = key
        self.location = location
        self.context = context
        where = f" in {location}" if location else ""
        prefix = f"{context}: " if context else ""
        self.message = f"{prefix}blob {key!r} not found{where}"
        super().__init__(self.message)

    def __str__(self) -> str:
        # KeyError.__str__ would repr-quote the message.
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.key, self.location), {"context": self.context}))


class BlobIntegrityError(StorageError):
    """The bytes under a content-addressed key do not hash to that key.

    The blob was corrupted at rest or in transit, or someone overwrote it. Not transient:
    reading it again returns the same wrong bytes.
    """

    def __init__(
        self, key: str, expected: str, actual: str, location: str = "", *, context: str = ""
    ) -> None:
        self.key = key
        self.expected = expected
        self.actual = actual
        self.location = location
        self.context = context
        where = f" in {location}" if location else ""
        prefix = f"{context}: " if context else ""
        super().__init__(
            f"{prefix}blob {key!r}{where} is corrupt: its sha-256 is {actual}, expected {expected}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        args = (self.key, self.expected, self.actual, self.location)
        return (_rebuild, (type(self), args, {"context": self.context}))


class InvalidBlobKeyError(StorageError, ValueError):
    """A key that could escape the store or does not follow the key rules."""


class BatchFormatError(StorageError, ValueError):
    """Bytes that are not a well-formed batch, or a batch that contradicts its ref."""


class ForeignBatchError(BatchFormatError):
    """A batch sealed with another order's data key, read for this order: someone copied a
    ref from one order into another. Refused, never read as this order's items.

    A :class:`BatchFormatError`, so fulfillment rejects it as unreadable and the content
    proof of an unsealed ref refuses it."""


class BlobTooLargeError(BatchFormatError):
    """A blob larger than the size its reference promises, refused before its body is read
    (a bucket writer's oversized object must not be downloaded into memory).

    A :class:`BatchFormatError`, so a reader that rejects unreadable batches rejects this
    one too. ``size`` is the blob's length when the backend states it, else ``None``.
    """

    def __init__(
        self, key: str, size: int | None, limit: int, location: str = "", *, context: str = ""
    ) -> None:
        self.key = key
        self.size = size
        self.limit = limit
        self.location = location
        self.context = context
        where = f" in {location}" if location else ""
        prefix = f"{context}: " if context else ""
        stated = f"{size} bytes" if size is not None else f"more than {limit} bytes"
        super().__init__(
            f"{prefix}blob {key!r}{where} is {stated}, larger than the {limit} bytes its reference allows; "
            "refused without reading it"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        args = (self.key, self.size, self.limit, self.location)
        return (_rebuild, (type(self), args, {"context": self.context}))


class TransientStoreError(StorageError):
    """A failure of the backend that may pass: connection refused or reset, timeouts,
    5xx responses, throttling. Safe to retry: every store operation is idempotent."""


class ClaimCheckError(StorageError, ValueError):
    """A claim-check reference payload that cannot be honoured: malformed, pointing outside
    the payload keys, or naming stored bytes that do not decompress to what it promises.
    The message names the key (when there is one)."""


def _rebuild(cls: type[Exception], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Exception:
    return cls(*args, **kwargs)
