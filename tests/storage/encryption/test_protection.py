"""Batches and reports sealed with their order's key; old plaintext blobs still read."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bulkorder.storage.batches import BatchStore
from bulkorder.storage.blob_store import sha256_hex
from bulkorder.storage.encryption.envelope import PURPOSE_REPORT, is_envelope, read_header
from bulkorder.storage.encryption.errors import DecryptionError, KeyringError
from bulkorder.storage.encryption.protection import BlobProtection, open_blob
from bulkorder.storage.errors import BlobIntegrityError
from bulkorder.storage.ref_proof import claims_mismatch
from tests.storage.encryption.helpers import folder_keys
from tests.storage.items import make_items


def test_a_batch_is_sealed_with_its_orders_key_and_its_ref_hashes_the_stored_bytes(tmp_path: Path) -> None:
    keys = folder_keys(tmp_path)
    store = BatchStore(keys.blobs, protection=BlobProtection(keys))
    items = make_items(50)
    ref = store.write(items, order_id="order-1")
    stored = keys.blobs.get(ref.key)
    assert is_envelope(stored) and sha256_hex(stored) == ref.sha256 and len(stored) == ref.size
    assert read_header(stored, where="t").key_id == keys.order_key_id("order-1")
    assert store.read(ref) == items
    assert claims_mismatch(ref, items) is None
    # A retried import writes the same bytes under the same key; another order differs.
    assert store.write(items, order_id="order-1") == ref
    assert store.write(items, order_id="order-2").sha256 != ref.sha256
    # Batches of no named order use the shared key.
    shared = store.write(items)
    assert read_header(keys.blobs.get(shared.key), where="t").key_id == "shared"


def test_plaintext_batches_of_older_stores_still_read(tmp_path: Path) -> None:
    keys = folder_keys(tmp_path)
    old = BatchStore(keys.blobs)  # a store from before encryption
    ref = old.write(make_items(5))
    assert not is_envelope(keys.blobs.get(ref.key))
    assert BatchStore(keys.blobs, protection=BlobProtection(keys)).read(ref) == make_items(5)


def test_encryption_off_writes_plaintext_and_still_reads_sealed_batches(tmp_path: Path) -> None:
    keys = folder_keys(tmp_path)
    sealed = BatchStore(keys.blobs, protection=BlobProtection(keys)).write(make_items(5), order_id="o")
    plain_store = BatchStore(keys.blobs, protection=BlobProtection(keys, encrypt=False))
    plain = plain_store.write(make_items(5), order_id="o")
    assert not is_envelope(keys.blobs.get(plain.key))
    assert plain_store.read(sealed) == make_items(5)


def test_a_tampered_batch_is_refused_by_its_hash_and_a_consistent_forgery_by_its_tag(tmp_path: Path) -> None:
    keys = folder_keys(tmp_path)
    store = BatchStore(keys.blobs, protection=BlobProtection(keys))
    ref = store.write(make_items(20), order_id="order-1")
    forged = bytearray(keys.blobs.get(ref.key))
    forged[-5] ^= 0xFF
    path = keys.blobs.path_for(ref.key)
    path.chmod(0o644)
    path.write_bytes(bytes(forged))
    with pytest.raises(BlobIntegrityError):
        store.read(ref)
    # A writer who also forges the ref (hash and key of the forged bytes) meets the tag.
    sha = sha256_hex(bytes(forged))
    keys.blobs.put(f"batches/{sha[:2]}/{sha}", bytes(forged))
    forged_ref = dataclasses.replace(ref, key=f"batches/{sha[:2]}/{sha}", sha256=sha, seal="")
    with pytest.raises(DecryptionError, match=keys.order_key_id("order-1")):
        store.read(forged_ref)


def test_a_sealed_blob_without_a_keyring_is_a_clear_error(tmp_path: Path) -> None:
    keys = folder_keys(tmp_path)
    ref = BatchStore(keys.blobs, protection=BlobProtection(keys)).write(make_items(2), order_id="o")
    with pytest.raises(KeyringError, match=keys.order_key_id("o")):
        BatchStore(keys.blobs).read(ref)


def test_reports_are_sealed_and_opened_like_batches(tmp_path: Path) -> None:
    keys = folder_keys(tmp_path)
    store = BatchStore(keys.blobs, protection=BlobProtection(keys))
    sealed = store.seal_blob("order-1", PURPOSE_REPORT, b"report of customer c-1")
    assert b"c-1" not in sealed
    assert open_blob(store.protection, sealed, where="report", purpose=PURPOSE_REPORT) == b"report of customer c-1"
    assert open_blob(store.protection, b"\x28\xb5\x2f\xfd old", where="report", purpose=PURPOSE_REPORT).endswith(b"old")


async def test_items_stored_for_an_order_by_the_client_are_sealed_with_its_key(tmp_path: Path) -> None:
    from bulkorder.workflows.item_batches import store_item_batches

    keys = folder_keys(tmp_path)
    store = BatchStore(keys.blobs, protection=BlobProtection(keys))
    items = make_items(30)
    refs = await store_item_batches(store, items, batch_size=10, batch_id_prefix=None, leases=None, order_id="order-c")
    for ref in refs:
        assert read_header(keys.blobs.get(ref.key), where="t").key_id == keys.order_key_id("order-c")
    assert [item for ref in refs for item in store.read(ref)] == items
