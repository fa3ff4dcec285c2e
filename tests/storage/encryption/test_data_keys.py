"""Per-order data keys: made once whoever races, rewrapped on rotation, destroyed for good."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bulkorder.keyring_file import load_keyring_file, rotate_keyring_file
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.encryption.data_keys import DATA_PREFIX, DESTROYED_PREFIX, REWRAP_PREFIX, DataKeys
from bulkorder.storage.encryption.errors import (
    DataKeyDestroyedError,
    DataKeyNotFoundError,
    DecryptionError,
    KeyNotFoundError,
)
from bulkorder.storage.encryption.protection import BlobProtection
from bulkorder.storage.folder_store import FolderBlobStore
from tests.storage.encryption.helpers import folder_keys
from tests.storage.items import make_items


def test_an_order_key_id_is_a_keyed_hash_not_the_order_id(tmp_path: Path) -> None:
    keys = folder_keys(tmp_path)
    key_id = keys.order_key_id("order-alice-42")
    assert len(key_id) == 32 and "alice" not in key_id
    assert key_id == folder_keys(tmp_path).order_key_id("order-alice-42")  # stable across processes
    other_deployment = folder_keys(tmp_path / "elsewhere")
    assert other_deployment.order_key_id("order-alice-42") != key_id  # keyed by the deployment's index key
    stored = [p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert not any("alice" in name for name in stored)


def test_concurrent_writers_of_one_order_agree_on_one_data_key(tmp_path: Path) -> None:
    processes = [folder_keys(tmp_path) for _ in range(8)]  # eight processes' caches
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda keys: keys.for_order("order-1").material, processes))
    assert len(set(made)) == 1
    assert len(list(FolderBlobStore(tmp_path / "blobs").iter_keys(DATA_PREFIX))) == 2  # index + the order's


def test_rotation_rewraps_data_keys_without_rewriting_any_batch_and_the_old_kek_can_go(tmp_path: Path) -> None:
    keys = folder_keys(tmp_path)
    store = BatchStore(keys.blobs, protection=BlobProtection(keys))
    items = make_items(20)
    ref = store.write(items, order_id="order-1")
    batch_bytes = keys.blobs.get(ref.key)
    old = keys.keyring.active_id

    new = rotate_keyring_file(tmp_path / "keyring")
    rotated = folder_keys(tmp_path)
    assert rotated.keyring.active_id == new and old in rotated.keyring.key_ids()
    report = rotated.rewrap_all()
    assert report.rewrapped == report.data_keys == 2 and report.kek_id == new
    assert rotated.rewrap_all().rewrapped == 0  # idempotent
    assert keys.blobs.get(ref.key) == batch_bytes
    usage = rotated.usage()
    assert usage.wraps == {old: 2, new: 2} and usage.only == {}

    # The operator removes the old KEK from the keyring: everything still opens.
    path = tmp_path / "keyring"
    body = json.loads(path.read_text())
    del body["keys"][old]
    path.write_text(json.dumps(body))
    path.chmod(0o600)
    fresh = folder_keys(tmp_path)
    assert BatchStore(fresh.blobs, protection=BlobProtection(fresh)).read(ref) == items


def test_a_data_key_wrapped_by_a_kek_missing_from_the_keyring_is_an_error_naming_that_kek(tmp_path: Path) -> None:
    writer = folder_keys(tmp_path / "a")
    store = BatchStore(writer.blobs, protection=BlobProtection(writer))
    ref = store.write(make_items(3), order_id="order-1")
    # Same blobs, another keyring (the deployment's keyring file lost or not configured).
    stranger = DataKeys(writer.blobs, load_keyring_file(tmp_path / "other-keyring"))
    with pytest.raises(KeyNotFoundError, match=writer.keyring.active_id) as caught:
        BatchStore(stranger.blobs, protection=BlobProtection(stranger)).read(ref)
    assert caught.value.key_id == writer.keyring.active_id


def test_a_tampered_wrapped_key_is_a_decryption_error_naming_the_kek(tmp_path: Path) -> None:
    keys = folder_keys(tmp_path)
    key_id = keys.order_key_id("order-1")
    keys.for_order("order-1")
    path = tmp_path / "blobs" / DATA_PREFIX / key_id
    body = json.loads(path.read_text())
    body["wrapped"] = body["wrapped"][:-8] + ("A" * 8 if not body["wrapped"].endswith("A" * 8) else "B" * 8)
    path.write_text(json.dumps(body))
    with pytest.raises(DecryptionError, match=keys.keyring.active_id):
        folder_keys(tmp_path).get(key_id)


def test_destroy_order_key_makes_every_batch_of_the_order_unreadable_for_good(tmp_path: Path) -> None:
    keys = folder_keys(tmp_path)
    store = BatchStore(keys.blobs, protection=BlobProtection(keys))
    gone = store.write(make_items(5), order_id="order-erased")
    kept = store.write(make_items(5), order_id="order-kept")
    rotate_keyring_file(tmp_path / "keyring")
    rotated = folder_keys(tmp_path)
    rotated.rewrap_all()

    key_id = rotated.destroy_order_key("order-erased")
    assert key_id == keys.order_key_id("order-erased")
    assert rotated.destroy_order_key("order-erased") == key_id  # idempotent
    blobs = rotated.blobs
    assert not blobs.exists(DATA_PREFIX + key_id) and blobs.exists(DESTROYED_PREFIX + key_id)
    assert not any(k.endswith("/" + key_id) for k in blobs.iter_keys(REWRAP_PREFIX))
    for process in (rotated, folder_keys(tmp_path)):  # this process at once, and any new one
        reader = BatchStore(blobs, protection=BlobProtection(process))
        with pytest.raises(DataKeyDestroyedError, match=key_id) as caught:
            reader.read(gone)
        assert isinstance(caught.value, DataKeyNotFoundError) and caught.value.key_id == key_id
        assert reader.read(kept) == make_items(5)
    # No writer makes a new key for an erased order (one that had it cached keeps it
    # until it restarts: destroy_order_key's docstring).
    for process in (rotated, folder_keys(tmp_path)):
        with pytest.raises(DataKeyDestroyedError, match=key_id):
            BatchStore(blobs, protection=BlobProtection(process)).write(make_items(1), order_id="order-erased")
    with pytest.raises(ValueError, match="deployment key"):
        rotated.destroy("index")


def test_a_missing_data_key_never_destroyed_says_not_found(tmp_path: Path) -> None:
    with pytest.raises(DataKeyNotFoundError, match="0" * 32) as caught:
        folder_keys(tmp_path).get("0" * 32)
    assert not isinstance(caught.value, DataKeyDestroyedError)
