"""The blob store interface and the key rules every implementation shares.

Blobs are immutable: a key is written once and never changes, which is what makes every
operation idempotent (an activity retried after a crash puts the same bytes again, and
that is a no-op). Most keys are content-addressed: their last path segment is the sha-256
of the bytes.

Readers never trust the backend: every read of a batch, a report or a payload passes the
sha-256 and the size its *reference* carries (``get(key, sha256=..., max_size=...)``), so
the bytes are proven against the reference whatever the key looks like, and an object
larger than the reference allows is refused before its body is read. The key's own hash
(an exact ``.../<sha-256>`` last segment) is checked too, as an extra.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Iterable, Iterator, Protocol, runtime_checkable

from bulkorder.domain.refs import InvalidRefError, check_key
from bulkorder.storage.errors import BlobIntegrityError, BlobTooLargeError, InvalidBlobKeyError

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@runtime_checkable
class BlobStore(Protocol):
    """Where batches and other large payloads live (a local folder, or S3).

    Implementations must be safe to use from many threads at once, and writes must be
    atomic: a reader sees a whole blob or no blob, never part of one.
    """

    @property
    def location(self) -> str:
        """Where the blobs are, for messages: ``folder /x/y``, ``s3://bucket/prefix``."""
        ...

    def put(self, key: str, data: bytes) -> bool:
        """Store ``data`` under ``key``; ``False`` (and no write) if the key exists."""
        ...

    def get(self, key: str, *, sha256: str | None = None, max_size: int | None = None) -> bytes:
        """The bytes under ``key``.

        ``sha256``: the hash the caller's reference carries; the bytes must hash to it.
        ``max_size``: the most bytes the reference allows; a larger blob is refused
        without reading its body (at most ``max_size + 1`` bytes are ever read).

        Raises :class:`~bulkorder.storage.errors.BlobNotFoundError` if absent,
        :class:`~bulkorder.storage.errors.BlobIntegrityError` if the bytes do not hash to
        ``sha256`` (or to the key, for a content-addressed key), and
        :class:`~bulkorder.storage.errors.BlobTooLargeError` if the blob is over ``max_size``.
        """
        ...

    def exists(self, key: str) -> bool:
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; no error if it is absent (deleting twice is fine)."""
        ...

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """Every key that starts with ``prefix`` (a plain string prefix), in no set order."""
        ...

    def size(self, key: str) -> int:
        """Length in bytes of the blob under ``key`` (BlobNotFoundError if absent)."""
        ...


@dataclass(frozen=True)
class BlobInfo:
    """One listed blob: its key, size, and when it was last written (seconds since the
    epoch, by the store's own clock: the filesystem's, or S3's ``LastModified``)."""

    key: str
    size: int
    modified: float


@runtime_checkable
class CollectableBlobStore(BlobStore, Protocol):
    """A blob store garbage collection can sweep: listing with sizes and times, and
    deleting many keys at once (both stores here are)."""

    def iter_blob_infos(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Every blob whose key starts with ``prefix``, with its size and time, streamed."""
        ...

    def delete_many(self, keys: Iterable[str]) -> int:
        """Delete ``keys`` (absent ones are fine); returns how many requests it took."""
        ...


def sha256_hex(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def content_key(sha256: str, prefix: str = "batches") -> str:
    """The key of content with this sha-256: ``{prefix}/{sha[:2]}/{sha}``.

    The two-character fan-out keeps folder stores from putting millions of files in one
    directory, and spreads S3 keys over partitions.
    """
    if not _SHA256_HEX.match(sha256):
        raise InvalidBlobKeyError(f"{sha256!r} is not a sha-256 (64 lower-case hex digits)")
    return validate_key(f"{prefix}/{sha256[:2]}/{sha256}" if prefix else f"{sha256[:2]}/{sha256}")


def validate_key(key: object) -> str:
    """Return ``key`` if it is a valid blob key, else raise :class:`InvalidBlobKeyError`.

    The rules (``bulkorder.domain.refs.check_key``) rule out traversal by construction: lower-case
    segments of ``a-z 0-9 . _ -`` that start with a letter or digit, no ``..``, no leading
    or trailing ``/``, at most 512 characters.
    """
    try:
        return check_key(key, where="blob key")
    except InvalidRefError as exc:
        raise InvalidBlobKeyError(str(exc)) from None


def expected_sha256(key: str) -> str | None:
    """The sha-256 a content-addressed key promises (its last segment), else ``None``."""
    last = key.rsplit("/", 1)[-1]
    return last if _SHA256_HEX.match(last) else None


def verify(key: str, data: bytes, location: str = "", *, sha256: str | None = None) -> None:
    """Raise :class:`BlobIntegrityError` unless ``data`` hashes to ``sha256`` (the hash a
    reference carries, when given) and, for a content-addressed key, to the key's hash."""
    expected = [digest for digest in (sha256, expected_sha256(key)) if digest is not None]
    if not expected:
        return
    actual = sha256_hex(data)
    for digest in expected:
        if actual != digest:
            raise BlobIntegrityError(key, digest, actual, location)


def check_max_size(max_size: int | None, key: str) -> None:
    """Refuse a ``max_size`` that is not a size in bytes (a caller's bug, not the blob's)."""
    if max_size is not None and (type(max_size) is not int or max_size < 0):
        raise ValueError(f"max_size for blob {key!r} must be a size in bytes, not {max_size!r}")


def refuse_if_larger(key: str, size: int | None, max_size: int | None, location: str = "") -> None:
    """Raise :class:`BlobTooLargeError` if a blob of ``size`` bytes (``None``: unknown)
    is over ``max_size``; stores call this before reading a body."""
    if max_size is not None and size is not None and size > max_size:
        raise BlobTooLargeError(key, size, max_size, location)


def refuse_if_read_past(key: str, data: bytes, max_size: int | None, location: str = "") -> None:
    """Raise :class:`BlobTooLargeError` if a read bounded at ``max_size + 1`` bytes got
    them all: the blob is larger than its stated size said (or it stated none)."""
    if max_size is not None and len(data) > max_size:
        raise BlobTooLargeError(key, None, max_size, location)
