"""FolderBlobStore: atomic, create-only files under a root that keys cannot escape."""

from __future__ import annotations

import errno
import multiprocessing
import os
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

from storage.blob_store import BlobStore, content_key, sha256_hex
from storage.errors import BlobIntegrityError, BlobNotFoundError, InvalidBlobKeyError, StorageError
from storage.folder_store import FolderBlobStore
from tests.storage.test_blob_store import BAD_KEYS


@pytest.fixture
def store(tmp_path: Path) -> FolderBlobStore:
    return FolderBlobStore(tmp_path / "blobs")


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".tmp-*")]


def test_is_a_blob_store_and_creates_its_root(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path / "a" / "b")
    assert isinstance(store, BlobStore)
    assert (tmp_path / "a" / "b").is_dir()
    assert store.location == f"folder {(tmp_path / 'a' / 'b').resolve()}"


def test_round_trip_of_a_content_addressed_blob(store: FolderBlobStore) -> None:
    data = b"some batch bytes"
    key = content_key(sha256_hex(data))
    assert store.put(key, data) is True
    assert store.get(key) == data
    assert store.exists(key) and store.size(key) == len(data)
    assert store.path_for(key) == store.root / "batches" / key.split("/")[1] / key.split("/")[2]


def test_round_trip_of_a_plain_key_is_not_hash_checked(store: FolderBlobStore) -> None:
    assert store.put("reports/order-1.json", b"{}") is True
    assert store.get("reports/order-1.json") == b"{}"


def test_put_of_an_existing_key_is_a_no_op(store: FolderBlobStore) -> None:
    assert store.put("reports/x", b"first") is True
    path = store.path_for("reports/x")
    before = path.stat()
    assert store.put("reports/x", b"second") is False
    assert store.get("reports/x") == b"first"
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert _temp_files(store.root) == []


def test_get_of_a_missing_key_names_key_and_folder(store: FolderBlobStore) -> None:
    with pytest.raises(BlobNotFoundError) as info:
        store.get("batches/ab/missing")
    assert info.value.key == "batches/ab/missing"
    assert str(info.value) == f"blob 'batches/ab/missing' not found in {store.location}"
    with pytest.raises(BlobNotFoundError):
        store.size("batches/ab/missing")
    assert store.exists("batches/ab/missing") is False


def test_a_directory_is_not_a_blob(store: FolderBlobStore) -> None:
    store.put("batches/ab/x", b"1")
    assert store.exists("batches/ab") is False
    with pytest.raises(BlobNotFoundError):
        store.get("batches/ab")
    with pytest.raises(BlobNotFoundError):
        store.size("batches")
    with pytest.raises(BlobNotFoundError):
        store.get("batches/ab/x/y")  # a file where a directory would be
    with pytest.raises(StorageError, match="is a directory"):
        store.put("batches/ab", b"x")
    with pytest.raises(StorageError, match="cannot write blob 'batches/ab/x/y'"):
        store.put("batches/ab/x/y", b"x")


def test_get_detects_bytes_tampered_on_disk(store: FolderBlobStore) -> None:
    data = b"original"
    key = content_key(sha256_hex(data))
    store.put(key, data)
    store.path_for(key).write_bytes(b"tampered")
    with pytest.raises(BlobIntegrityError) as info:
        store.get(key)
    assert info.value.key == key
    assert info.value.actual == sha256_hex(b"tampered")
    assert key in str(info.value) and "corrupt" in str(info.value)


@pytest.mark.parametrize("key", BAD_KEYS)
def test_every_operation_refuses_invalid_keys(store: FolderBlobStore, key: str) -> None:
    for call in (lambda: store.put(key, b"x"), lambda: store.get(key), lambda: store.exists(key),
                 lambda: store.delete(key), lambda: store.size(key)):
        with pytest.raises(InvalidBlobKeyError):
            call()
    assert list(store.root.iterdir()) == []


def test_a_symlinked_directory_pointing_outside_is_refused(tmp_path: Path, store: FolderBlobStore) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"do not read")
    (store.root / "evil").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidBlobKeyError, match="outside"):
        store.put("evil/new", b"x")
    with pytest.raises(InvalidBlobKeyError, match="outside"):
        store.get("evil/secret")
    with pytest.raises(InvalidBlobKeyError):
        store.delete("evil/secret")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert list(store.iter_keys()) == []  # symlinks are neither listed nor followed


def test_a_symlinked_file_pointing_outside_is_refused(tmp_path: Path, store: FolderBlobStore) -> None:
    target = tmp_path / "passwd"
    target.write_bytes(b"root:x:0:0")
    (store.root / "reports").mkdir()
    (store.root / "reports" / "x").symlink_to(target)
    with pytest.raises(InvalidBlobKeyError, match="outside"):
        store.get("reports/x")


def test_a_symlink_within_the_root_is_followed(store: FolderBlobStore) -> None:
    store.put("real/blob", b"data")
    (store.root / "alias").symlink_to(store.root / "real", target_is_directory=True)
    assert store.get("alias/blob") == b"data"


def test_a_symlinked_root_is_fine(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    store = FolderBlobStore(tmp_path / "link")
    assert store.put("a/b", b"1") is True
    assert (tmp_path / "real" / "a" / "b").read_bytes() == b"1"


def test_concurrent_puts_of_one_key_leave_one_correct_file(store: FolderBlobStore) -> None:
    data = os.urandom(256 * 1024)
    key = content_key(sha256_hex(data))
    barrier = threading.Barrier(8)

    def put() -> bool:
        barrier.wait()
        return store.put(key, data)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: put(), range(8)))
    assert results.count(True) == 1 and results.count(False) == 7
    assert store.get(key) == data
    assert sorted(store.iter_keys()) == [key]
    assert _temp_files(store.root) == []


def _put_in_child(root: str, key: str, data: bytes) -> bool:
    return FolderBlobStore(root).put(key, data)


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_concurrent_puts_from_processes_leave_one_correct_file(store: FolderBlobStore) -> None:
    data = os.urandom(64 * 1024)
    key = content_key(sha256_hex(data))
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("fork")) as pool:
        results = list(pool.map(_put_in_child, [str(store.root)] * 8, [key] * 8, [data] * 8))
    assert results.count(True) == 1
    assert store.get(key) == data
    assert _temp_files(store.root) == []


def test_many_threads_writing_and_reading_different_keys(store: FolderBlobStore) -> None:
    blobs = [os.urandom(1000 + i) for i in range(64)]

    def round_trip(data: bytes) -> bool:
        key = content_key(sha256_hex(data))
        return store.put(key, data) and store.get(key) == data

    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(round_trip, blobs))
    assert len(list(store.iter_keys("batches/"))) == 64


def test_a_failed_write_leaves_neither_blob_nor_temp_file(
    store: FolderBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "link", no_space)
    with pytest.raises(StorageError, match="cannot write blob 'a/b'.*No space left"):
        store.put("a/b", b"data")
    assert store.exists("a/b") is False
    assert _temp_files(store.root) == []


def test_falls_back_to_replace_where_hard_links_are_not_supported(
    store: FolderBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*args: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    assert store.put("a/b", b"data") is True
    assert store.put("a/b", b"other") is False
    assert store.get("a/b") == b"data"
    assert _temp_files(store.root) == []


def test_fsync_mode_writes_the_same_blob(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path, fsync=True)
    assert store.put("a/b", b"durable") is True
    assert store.get("a/b") == b"durable"


def test_files_get_umask_permissions_not_0600(store: FolderBlobStore) -> None:
    store.put("a/b", b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert store.path_for("a/b").stat().st_mode & 0o777 == 0o666 & ~umask


def test_delete_is_idempotent(store: FolderBlobStore) -> None:
    store.put("a/b", b"x")
    store.delete("a/b")
    assert store.exists("a/b") is False
    store.delete("a/b")
    store.delete("never/was")
    assert store.put("a/b", b"y") is True  # a deleted key can be written again


def test_iter_keys_lists_blobs_by_prefix_and_skips_foreign_files(store: FolderBlobStore) -> None:
    keys = ["batches/ab/1", "batches/ac/2", "batches-old/3", "reports/4", "top"]
    for key in keys:
        store.put(key, b"x")
    (store.root / "batches" / "ab" / ".tmp-123").write_bytes(b"partial")
    (store.root / "batches" / "ab" / "README.TXT").write_bytes(b"not a key")
    assert sorted(store.iter_keys()) == sorted(keys)
    assert sorted(store.iter_keys("batches/")) == ["batches/ab/1", "batches/ac/2"]
    assert sorted(store.iter_keys("batches")) == ["batches-old/3", "batches/ab/1", "batches/ac/2"]
    assert list(store.iter_keys("batches/ab")) == ["batches/ab/1"]
    assert list(store.iter_keys("batches/ab/1")) == ["batches/ab/1"]
    assert list(store.iter_keys("t")) == ["top"]
    assert list(store.iter_keys("nothing/here")) == []
    assert list(store.iter_keys("../")) == []
    assert list(store.iter_keys("BATCHES/")) == []
