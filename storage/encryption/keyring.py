"""Key-encryption keys (KEKs): what wraps every data key, local or in AWS KMS.

A keyring holds one *active* KEK (new data keys, and rewraps, use it) and any number of
older ones (data keys wrapped by them stay readable). Every KEK has an ID, recorded with
each wrapped data key, so a reader knows which KEK to ask for, and a missing one is a
:class:`~bulkorder.storage.encryption.errors.KeyNotFoundError` naming it.

- :class:`LocalKeyring`: 256-bit KEKs in memory (from the keyring file,
  ``bulkorder.keyring_file``), wrapping with AES-256-GCM, a random nonce, and the data
  key's ID as associated data (a wrapped key cannot be moved to another order).
- :class:`KmsKeyring`: AWS KMS symmetric keys through boto3 ``Encrypt``/``Decrypt``, the
  data key's ID as the encryption context. The key material never leaves KMS.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bulkorder.storage.encryption.errors import DecryptionError, KeyNotFoundError, KeyringError

KEK_BYTES = 32
_NONCE_BYTES = 12


@dataclass(frozen=True)
class WrappedKey:
    """A data key wrapped by the KEK ``kek_id``: opaque bytes only that KEK opens."""

    kek_id: str
    wrapped: bytes

    def to_json(self) -> dict[str, str]:
        return {"kek_id": self.kek_id, "wrapped": base64.b64encode(self.wrapped).decode()}


def _context(data_key_id: str) -> bytes:
    return b"bulkorder data key " + data_key_id.encode("ascii")


class Keyring(Protocol):
    @property
    def active_id(self) -> str:
        """The KEK new data keys (and rewraps) are wrapped with."""
        ...

    def key_ids(self) -> list[str]:
        """Every KEK this keyring can unwrap with, the active one first."""
        ...

    def wrap(self, material: bytes, data_key_id: str) -> WrappedKey: ...

    def unwrap(self, wrapped: WrappedKey, data_key_id: str) -> bytes:
        """The data key; :class:`KeyNotFoundError` if ``wrapped.kek_id`` is unknown,
        :class:`DecryptionError` if it does not open."""
        ...

    def describe(self) -> str: ...


class LocalKeyring:
    """KEKs held in this process (loaded from the keyring file). ``reload`` (optional)
    reads the file again: asked once when a wrapped key names a KEK not loaded yet, so a
    process started before ``bulkorder keys rotate`` reads what was wrapped after it."""

    def __init__(
        self,
        keys: dict[str, bytes],
        active_id: str,
        *,
        reload: Callable[[], tuple[dict[str, bytes], str]] | None = None,
        where: str = "keyring",
    ) -> None:
        if active_id not in keys:
            raise KeyringError(f"{where}: the active key {active_id} is not in it", active_id)
        for kek_id, material in keys.items():
            if len(material) != KEK_BYTES:
                raise KeyringError(f"{where}: key {kek_id} is {len(material)} bytes, expected {KEK_BYTES}", kek_id)
        self._keys = dict(keys)
        self._active = active_id
        self._reload = reload
        self._lock = threading.Lock()
        self.where = where

    def __repr__(self) -> str:
        return f"LocalKeyring({self.where}, active={self._active}, keys={len(self._keys)})"

    @property
    def active_id(self) -> str:
        return self._active

    def key_ids(self) -> list[str]:
        return [self._active, *sorted(k for k in self._keys if k != self._active)]

    def describe(self) -> str:
        return f"{self.where} (active key {self._active}, {len(self._keys)} keys)"

    def wrap(self, material: bytes, data_key_id: str) -> WrappedKey:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self._keys[self._active]).encrypt(nonce, material, _context(data_key_id))
        return WrappedKey(self._active, nonce + sealed)

    def unwrap(self, wrapped: WrappedKey, data_key_id: str) -> bytes:
        kek = self._keys.get(wrapped.kek_id)
        if kek is None and self._reload is not None:
            with self._lock:
                self._keys, self._active = self._reload()
            kek = self._keys.get(wrapped.kek_id)
        if kek is None:
            raise KeyNotFoundError(
                f"data key {data_key_id} is wrapped by key-encryption key {wrapped.kek_id}, "
                f"which is not in the {self.where} (it holds {', '.join(self.key_ids())})",
                wrapped.kek_id,
            )
        blob = wrapped.wrapped
        try:
            return AESGCM(kek).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _context(data_key_id))
        except (InvalidTag, ValueError):
            raise DecryptionError(
                f"data key {data_key_id}: its wrapping under key-encryption key {wrapped.kek_id} "
                "does not authenticate (altered, or moved from another data key)",
                wrapped.kek_id,
            ) from None


def kms_kek_id(kms_key_id: str) -> str:
    """The KEK ID bulkorder records for a KMS key (its ID or ARN never appears in blobs)."""
    return "kms-" + hashlib.sha256(kms_key_id.encode()).hexdigest()[:16]


class KmsKeyring:
    """KEKs in AWS KMS: ``key_id`` (ID, ARN or alias) is active, ``previous`` still unwrap.

    ``client_factory`` builds a boto3 KMS client (built once, on first use).
    """

    def __init__(self, key_id: str, previous: Sequence[str] = (), *, client_factory: Callable[[], Any]) -> None:
        if not key_id:
            raise KeyringError("the KMS keyring needs a key ID (BULKORDER_KMS_KEY_ID)")
        self._key_id = key_id
        self._by_kek = {kms_kek_id(k): k for k in (key_id, *previous)}
        self._client_factory = client_factory
        self._client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KmsKeyring(active={self.active_id}, keys={len(self._by_kek)})"

    @property
    def active_id(self) -> str:
        return kms_kek_id(self._key_id)

    def key_ids(self) -> list[str]:
        return [self.active_id, *sorted(k for k in self._by_kek if k != self.active_id)]

    def describe(self) -> str:
        return f"AWS KMS (active key {self.active_id}, {len(self._by_kek)} keys)"

    def _kms(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client

    def wrap(self, material: bytes, data_key_id: str) -> WrappedKey:
        try:
            answer = self._kms().encrypt(
                KeyId=self._key_id, Plaintext=material, EncryptionContext={"bulkorder-data-key": data_key_id}
            )
        except Exception as exc:  # noqa: BLE001 - botocore raises many types
            raise KeyringError(f"KMS refused to wrap data key {data_key_id} with {self.active_id}: {exc}", self.active_id) from None
        return WrappedKey(self.active_id, answer["CiphertextBlob"])

    def unwrap(self, wrapped: WrappedKey, data_key_id: str) -> bytes:
        kms_key = self._by_kek.get(wrapped.kek_id)
        if kms_key is None:
            raise KeyNotFoundError(
                f"data key {data_key_id} is wrapped by key-encryption key {wrapped.kek_id}, which is not one "
                f"of the configured KMS keys ({', '.join(self.key_ids())}): add it to BULKORDER_KMS_PREVIOUS_KEY_IDS",
                wrapped.kek_id,
            )
        try:
            answer = self._kms().decrypt(
                KeyId=kms_key, CiphertextBlob=wrapped.wrapped, EncryptionContext={"bulkorder-data-key": data_key_id}
            )
        except Exception as exc:  # noqa: BLE001
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code in {"InvalidCiphertextException", "IncorrectKeyException"}:
                raise DecryptionError(
                    f"data key {data_key_id}: KMS says its wrapping under {wrapped.kek_id} does not open ({code})",
                    wrapped.kek_id,
                ) from None
            raise KeyringError(f"KMS refused to unwrap data key {data_key_id} ({wrapped.kek_id}): {exc}", wrapped.kek_id) from None
        return bytes(answer["Plaintext"])
