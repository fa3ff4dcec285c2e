"""Every Temporal payload sealed; an order's workflow payloads with the order's key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import WorkflowSerializationContext

from bulkorder.domain.identifiers import workflow_id_for
from bulkorder.storage.claim_check import ClaimCheckCodec
from bulkorder.storage.encryption.errors import DataKeyDestroyedError, DecryptionError
from bulkorder.storage.encryption.payloads import (
    ENCRYPTED_ENCODING,
    KEY_ID_METADATA,
    EncryptionCodec,
    ProtectedPayloadCodec,
)
from tests.storage.encryption.helpers import folder_keys


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


def context(workflow_id: str) -> WorkflowSerializationContext:
    return WorkflowSerializationContext(namespace="default", workflow_id=workflow_id)


async def test_small_payloads_are_sealed_with_the_orders_key_from_the_serialization_context(tmp_path: Path) -> None:
    keys = folder_keys(tmp_path)
    codec = EncryptionCodec(lambda: keys)
    for_order = codec.with_context(context(workflow_id_for("order-1")))
    [sealed] = await for_order.encode([plain("customer-alice")])
    assert sealed.metadata["encoding"] == ENCRYPTED_ENCODING and b"alice" not in sealed.SerializeToString()
    assert sealed.metadata[KEY_ID_METADATA].decode() == keys.order_key_id("order-1")
    [other] = await codec.with_context(context("not-an-order")).encode([plain("x")])
    assert other.metadata[KEY_ID_METADATA] == b"payloads"
    [no_context] = await codec.encode([plain("x")])
    assert no_context.metadata[KEY_ID_METADATA] == b"payloads"
    # Any codec of the deployment opens it (the codec server has no context): the key ID says which.
    assert await EncryptionCodec(lambda: folder_keys(tmp_path)).decode([sealed]) == [plain("customer-alice")]
    assert await codec.encode([sealed]) == [sealed]  # never sealed twice


async def test_payloads_from_before_encryption_decode_as_they_are(tmp_path: Path) -> None:
    codec = EncryptionCodec(lambda: folder_keys(tmp_path))
    assert await codec.decode([plain("old history")]) == [plain("old history")]


async def test_large_payloads_are_compressed_before_sealing_then_claim_checked_as_ciphertext(tmp_path: Path) -> None:
    keys = folder_keys(tmp_path)
    codec = ProtectedPayloadCodec(EncryptionCodec(lambda: keys), ClaimCheckCodec(keys.blobs, threshold=8 * 1024))
    big = plain("SKU-000042 customer-alice; " * 40_000)  # ~1 MB, compressible
    scoped = codec.with_context(context(workflow_id_for("order-9")))
    [encoded] = await scoped.encode([big])
    assert encoded.ByteSize() < 8 * 1024
    for path in (tmp_path / "blobs").rglob("*"):
        if path.is_file():
            assert b"SKU-000042" not in path.read_bytes() and b"alice" not in path.read_bytes()
    assert await codec.decode([encoded]) == [big]
    codec.claim_check.close()


async def test_an_erased_orders_payloads_are_unreadable_and_tampering_is_refused(tmp_path: Path) -> None:
    keys = folder_keys(tmp_path)
    codec = EncryptionCodec(lambda: keys).with_context(context(workflow_id_for("order-e")))
    [sealed] = await codec.encode([plain("customer-zed")])
    tampered = Payload()
    tampered.CopyFrom(sealed)
    tampered.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    key_id = keys.order_key_id("order-e")
    with pytest.raises(DecryptionError, match=key_id):
        await codec.decode([tampered])
    keys.destroy_order_key("order-e")
    with pytest.raises(DataKeyDestroyedError, match=key_id):
        await EncryptionCodec(lambda: folder_keys(tmp_path)).decode([sealed])
