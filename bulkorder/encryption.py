"""Encryption settings, and the one :class:`DataKeys` per deployment and process.

- ``BULKORDER_KEYRING``: the local keyring file (default ``<BULKORDER_HOME>/keyring``).
- ``BULKORDER_KMS_KEY_ID``: use AWS KMS instead (key ID, ARN or alias); older keys whose
  wrappings must stay readable in ``BULKORDER_KMS_PREVIOUS_KEY_IDS`` (comma-separated).
  The KMS endpoint is ``BULKORDER_KMS_ENDPOINT_URL``, else ``BULKORDER_S3_ENDPOINT_URL``;
  the region ``BULKORDER_S3_REGION`` or boto3's own configuration.
- ``BULKORDER_ENCRYPTION=off``: write new blobs and payloads in plaintext (reading sealed
  data still works). For the encryption-cost benchmark only; never in production.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from bulkorder.domain.identity import OrderIdentity
from bulkorder.domain.errors import BulkorderError
from bulkorder.keyring_file import KEYRING_FILE, load_keyring_file
from bulkorder.storage.config import BlobStoreConfig, redact_url
from bulkorder.storage.encryption.data_keys import DataKeys
from bulkorder.storage.encryption.keyring import Keyring, KmsKeyring
from bulkorder.storage.encryption.events import EventProtection
from bulkorder.storage.encryption.protection import BlobProtection


class EncryptionSettingsError(BulkorderError, ValueError):
    """An encryption setting is malformed; the message names the variable."""


@dataclass(frozen=True, repr=False)
class EncryptionSettings:
    keyring_path: Path
    enabled: bool = True
    kms_key_id: str | None = None
    kms_previous_key_ids: tuple[str, ...] = ()
    kms_endpoint_url: str | None = None
    kms_region: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], home: Path) -> EncryptionSettings:
        switch = env.get("BULKORDER_ENCRYPTION", "on").strip().lower() or "on"
        if switch not in {"on", "off"}:
            raise EncryptionSettingsError(f"BULKORDER_ENCRYPTION={switch!r}: expected on or off")
        keyring = env.get("BULKORDER_KEYRING") or None
        return cls(
            keyring_path=Path(keyring).expanduser() if keyring else home / KEYRING_FILE,
            enabled=switch == "on",
            kms_key_id=env.get("BULKORDER_KMS_KEY_ID") or None,
            kms_previous_key_ids=tuple(
                k.strip() for k in env.get("BULKORDER_KMS_PREVIOUS_KEY_IDS", "").split(",") if k.strip()
            ),
            kms_endpoint_url=env.get("BULKORDER_KMS_ENDPOINT_URL") or env.get("BULKORDER_S3_ENDPOINT_URL") or None,
            kms_region=env.get("BULKORDER_S3_REGION") or None,
        )

    def __repr__(self) -> str:
        endpoint = redact_url(self.kms_endpoint_url) if self.kms_endpoint_url else None
        return (
            f"EncryptionSettings(keyring_path={str(self.keyring_path)!r}, enabled={self.enabled}, "
            f"kms_key_id={self.kms_key_id!r}, kms_endpoint_url={endpoint!r}, kms_region={self.kms_region!r})"
        )

    def keyring(self) -> Keyring:
        if self.kms_key_id:
            return KmsKeyring(self.kms_key_id, self.kms_previous_key_ids, client_factory=self._kms_client)
        return load_keyring_file(self.keyring_path)

    def _kms_client(self) -> Any:
        import boto3

        return boto3.client("kms", endpoint_url=self.kms_endpoint_url, region_name=self.kms_region)

    def describe(self) -> str:
        if not self.enabled:
            return "OFF for new writes (BULKORDER_ENCRYPTION=off)"
        where = f"AWS KMS key {self.kms_key_id}" if self.kms_key_id else f"keyring file {self.keyring_path}"
        return f"AES-256-GCM, per-order data keys wrapped by {where}"


_lock = threading.Lock()


@functools.lru_cache(maxsize=16)
def _data_keys(encryption: EncryptionSettings, blob_store: BlobStoreConfig) -> DataKeys:
    return DataKeys(blob_store.open(), encryption.keyring())


def data_keys(
    encryption: EncryptionSettings, blob_store: BlobStoreConfig, identity: OrderIdentity | None = None
) -> DataKeys:
    """The process's data keys for this deployment (one cache of unwrapped keys).
    ``identity`` (the deployment's, ``Settings.order_identity()``) maps order names to
    their keys; one deployment has one, so the first given is kept."""
    with _lock:
        keys = _data_keys(encryption, blob_store)
        if identity is not None and keys.identity is None:
            keys.identity = identity
        return keys


def blob_protection(
    encryption: EncryptionSettings, blob_store: BlobStoreConfig, identity: OrderIdentity | None = None
) -> BlobProtection:
    return BlobProtection(data_keys(encryption, blob_store, identity), encrypt=encryption.enabled)


def event_protection(
    encryption: EncryptionSettings, blob_store: BlobStoreConfig, identity: OrderIdentity | None = None
) -> EventProtection:
    return EventProtection(data_keys(encryption, blob_store, identity), encrypt=encryption.enabled)
