"""The KMS keyring against moto's KMS, served by the same moto HTTP server as S3."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from bulkorder.encryption import EncryptionSettings
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.encryption.data_keys import DataKeys
from bulkorder.storage.encryption.errors import KeyNotFoundError
from bulkorder.storage.encryption.keyring import KmsKeyring, kms_kek_id
from bulkorder.storage.encryption.protection import BlobProtection
from bulkorder.storage.s3_store import S3BlobStore
from tests.storage.items import make_items


def new_kms_key(endpoint: str) -> str:
    kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1")
    return str(kms.create_key(Description="bulkorder test KEK")["KeyMetadata"]["KeyId"])


def settings_for(endpoint: str, key_id: str, previous: str = "") -> EncryptionSettings:
    env = {"BULKORDER_KMS_KEY_ID": key_id, "BULKORDER_S3_ENDPOINT_URL": endpoint, "BULKORDER_S3_REGION": "us-east-1"}
    if previous:
        env["BULKORDER_KMS_PREVIOUS_KEY_IDS"] = previous
    return EncryptionSettings.from_env(env, Path("/nonexistent"))


def test_batches_in_s3_sealed_with_data_keys_wrapped_by_kms_and_rotated(s3_endpoint: str, s3_bucket: str) -> None:
    blobs = S3BlobStore(s3_bucket, endpoint_url=s3_endpoint, region_name="us-east-1")
    first = new_kms_key(s3_endpoint)
    keyring = settings_for(s3_endpoint, first).keyring()
    assert isinstance(keyring, KmsKeyring) and keyring.active_id == kms_kek_id(first)
    assert first not in keyring.active_id
    store = BatchStore(blobs, protection=BlobProtection(DataKeys(blobs, keyring)))
    ref = store.write(make_items(10), order_id="order-kms")
    wrapped = blobs.get("keys/data/" + store.protection.keys.order_key_id("order-kms"))  # type: ignore[union-attr]
    assert kms_kek_id(first).encode() in wrapped

    # Rotation: a new KMS key active, the old one kept as previous; then the old one dropped.
    second = new_kms_key(s3_endpoint)
    rotated = DataKeys(blobs, settings_for(s3_endpoint, second, previous=first).keyring())
    assert rotated.rewrap_all().rewrapped == 2
    only_new = DataKeys(blobs, settings_for(s3_endpoint, second).keyring())
    assert BatchStore(blobs, protection=BlobProtection(only_new)).read(ref) == make_items(10)

    # A reader configured with an unrelated KMS key only: the KEK it lacks is named.
    stranger = DataKeys(blobs, settings_for(s3_endpoint, new_kms_key(s3_endpoint)).keyring())
    with pytest.raises(KeyNotFoundError, match=kms_kek_id(first)):
        BatchStore(blobs, protection=BlobProtection(stranger)).read(ref)
