"""Errors of encryption at rest. Each names the key ID it is about, never key material.

A caller decides from the class alone: :class:`KeyNotFoundError` (a key-encryption key
this process's keyring does not hold: configure it), :class:`DataKeyNotFoundError` (an
order's data key is gone: destroyed by erasure, or never written), :class:`DecryptionError`
(the ciphertext or a wrapped key was changed, or the wrong key was used). None of them is
worth retrying.
"""

from __future__ import annotations

from typing import Any

from bulkorder.domain.errors import BulkorderError


class EncryptionError(BulkorderError):
    """Base class of the encryption errors; ``key_id`` names the key concerned."""

    def __init__(self, message: str, key_id: str = "") -> None:
        self.key_id = key_id
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.key_id))


class KeyNotFoundError(EncryptionError, LookupError):
    """A key-encryption key (KEK) named by a wrapped data key is not in the keyring."""


class DataKeyNotFoundError(EncryptionError, LookupError):
    """An order's data key (DEK) does not exist in the key store."""


class DataKeyDestroyedError(DataKeyNotFoundError):
    """An order's data key was destroyed (crypto-shredding): its data is unreadable for good."""


class DecryptionError(EncryptionError, ValueError):
    """Authentication failed: the ciphertext, its header or a wrapped key was altered, or
    the key is not the one it was sealed with."""


class EnvelopeFormatError(EncryptionError, ValueError):
    """Bytes that claim to be an envelope but are not a well-formed one this version reads."""


class KeyringError(EncryptionError):
    """The keyring (file or KMS settings) is unusable; the message says which and why."""
