"""The blob store interface and the key rules every implementation shares.

Blobs are immutable: a key is written once and never changes, which is what makes every
operation idempotent (an activity retried after a crash puts the same bytes again, and
that is a no-op). Most keys are content-addressed: their last path segment is the sha-256
of the bytes, so a reader can check what it got without trusting the backend.
"""

from __future__ import annotations

import hashlib
import re
from typing import Iterator, Protocol, runtime_checkable

from domain.refs import InvalidRefError, check_key
from storage.errors import BlobIntegrityError, InvalidBlobKeyError

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

    def get(self, key: str) -> bytes:
        """The bytes under ``key``.

        Raises :class:`~storage.errors.BlobNotFoundError` if absent, and
        :class:`~storage.errors.BlobIntegrityError` if the key is content-addressed and
        the bytes do not hash to it.
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

    The rules (``domain.refs.check_key``) rule out traversal by construction: lower-case
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


def verify(key: str, data: bytes, location: str = "") -> None:
    """Raise :class:`BlobIntegrityError` if ``key`` is content-addressed and ``data``
    does not hash to it; do nothing for other keys."""
    expected = expected_sha256(key)
    if expected is None:
        return
    actual = sha256_hex(data)
    if actual != expected:
        raise BlobIntegrityError(key, expected, actual, location)
