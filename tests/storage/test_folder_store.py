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

from bulkorder.storage.blob_store import BlobStore, content_key, sha256_hex
from bulkorder.storage.errors import (
    BlobIntegrityError,
    BlobNotFoundError,
    BlobTooLargeError,
    InvalidBlobKeyError,
    StorageError,
)
from bulkorder.storage.folder_store import FolderBlobStore
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
    for call in (lambda: store.put("evil/new", b"x"), lambda: store.get("evil/secret"),
                 lambda: store.delete("evil/secret"), lambda: store.exists("evil/secret"),
                 lambda: store.size("evil/secret")):
        with pytest.raises(InvalidBlobKeyError, match="evil is a symlink; symlinks inside the blob root are refused"):
            call()
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert list(store.iter_keys()) == []  # symlinks are neither listed nor followed


def test_a_symlinked_file_pointing_outside_is_refused(tmp_path: Path, store: FolderBlobStore) -> None:
    target = tmp_path / "passwd"
    target.write_bytes(b"root:x:0:0")
    (store.root / "reports").mkdir()
    (store.root / "reports" / "x").symlink_to(target)
    for call in (lambda: store.get("reports/x"), lambda: store.put("reports/x", b"x"),
                 lambda: store.exists("reports/x"), lambda: store.size("reports/x"), lambda: store.delete("reports/x")):
        with pytest.raises(InvalidBlobKeyError, match="'reports/x' .*reports/x is a symlink"):
            call()
    assert target.read_bytes() == b"root:x:0:0"


def test_a_symlink_within_the_root_is_refused_too(store: FolderBlobStore) -> None:
    # Even pointing inside the root: a symlink lets one key's bytes answer for another.
    data = b"data"
    key = content_key(sha256_hex(data))
    store.put(key, data)
    (store.root / "alias").symlink_to(store.root / "batches", target_is_directory=True)
    alias = "alias/" + key.split("/", 1)[1]
    with pytest.raises(InvalidBlobKeyError, match="alias is a symlink"):
        store.get(alias)
    (store.root / "batches" / "zz").mkdir()
    (store.root / "batches" / "zz" / "x").symlink_to(store.path_for(key))
    with pytest.raises(InvalidBlobKeyError, match="batches/zz/x is a symlink"):
        store.get("batches/zz/x")
    assert sorted(store.iter_keys()) == [key]
    assert list(store.iter_keys("alias/")) == []


def test_a_fifo_at_a_key_is_refused_without_hanging(store: FolderBlobStore) -> None:
    (store.root / "reports").mkdir()
    os.mkfifo(store.root / "reports" / "pipe")
    with pytest.raises(StorageError, match="not a regular file"):
        store.get("reports/pipe")
    with pytest.raises(StorageError, match="not a regular file"):
        store.put("reports/pipe", b"x")


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
    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "link", no_space)
    with pytest.raises(StorageError, match="cannot write blob 'a/b'.*No space left"):
        store.put("a/b", b"data")
    assert store.exists("a/b") is False
    assert _temp_files(store.root) == []


def test_falls_back_to_replace_where_hard_links_are_not_supported(
    store: FolderBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    assert store.put("a/b", b"data") is True
    assert store.put("a/b", b"other") is False
    assert store.get("a/b") == b"data"
    assert _temp_files(store.root) == []


def test_fsync_is_on_by_default_and_syncs_file_and_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    store = FolderBlobStore(tmp_path / "blobs")
    assert store.put("a/b", b"durable") is True
    root = str(store.root)
    # The new directory's entry in the root, the file (still under its temporary name),
    # then the directory that now holds the file.
    assert synced[0] == root and synced[-1] == f"{root}/a"
    assert len(synced) == 3 and synced[1].startswith(f"{root}/a/.tmp-")
    assert store.get("a/b") == b"durable"
    synced.clear()
    assert FolderBlobStore(tmp_path / "fast", fsync=False).put("a/b", b"x") is True
    assert synced == []  # benchmarks only


def test_put_replaces_a_torn_file_at_a_content_key(store: FolderBlobStore) -> None:
    data = os.urandom(4096)
    key = content_key(sha256_hex(data))
    assert store.put(key, data) is True
    store.path_for(key).write_bytes(data[:1000])  # torn: a crash mid-write, no fsync
    with pytest.raises(BlobIntegrityError):
        store.get(key)
    assert store.put(key, data) is True  # detected and replaced
    assert store.get(key) == data
    assert store.put(key, data) is False  # now whole: a no-op again
    assert _temp_files(store.root) == []


def test_put_refuses_bytes_that_are_not_the_content_of_the_key(store: FolderBlobStore) -> None:
    key = content_key(sha256_hex(b"right"))
    with pytest.raises(BlobIntegrityError, match="refusing to write"):
        store.put(key, b"wrong")
    assert store.exists(key) is False


def test_get_checks_the_hash_the_reference_carries(store: FolderBlobStore) -> None:
    # A key that merely ends with a hash is not checked by the key; the ref's hash is.
    data, swapped = b"the real batch", b"swapped bytes"
    key = "batches/1d/v" + sha256_hex(data)
    store.put(key, swapped)
    assert store.get(key) == swapped
    with pytest.raises(BlobIntegrityError) as info:
        store.get(key, sha256=sha256_hex(data))
    assert (info.value.key, info.value.expected, info.value.actual) == (key, sha256_hex(data), sha256_hex(swapped))
    assert store.get(key, sha256=sha256_hex(swapped)) == swapped


def test_get_refuses_a_blob_over_max_size_before_reading_it(store: FolderBlobStore) -> None:
    store.put("reports/big", b"x" * 10_000)
    with pytest.raises(BlobTooLargeError) as info:
        store.get("reports/big", max_size=1024)
    assert (info.value.key, info.value.size, info.value.limit) == ("reports/big", 10_000, 1024)
    assert "'reports/big'" in str(info.value) and "10000 bytes, larger than the 1024" in str(info.value)
    assert store.get("reports/big", max_size=10_000) == b"x" * 10_000
    with pytest.raises(ValueError, match="max_size"):
        store.get("reports/big", max_size=-1)


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


class _DeletedAfterLstat(FolderBlobStore):
    """A folder store whose existing blob is deleted (as a gc sweep would) just after
    ``put`` has seen it and before it reads it to check its hash."""

    def _lstat(self, directory: int, name: str) -> os.stat_result | None:
        info = super()._lstat(directory, name)
        if info is not None and not name.startswith(".tmp-"):
            os.unlink(name, dir_fd=directory)
        return info


def test_a_blob_deleted_while_put_checks_it_is_written_afresh(tmp_path: Path) -> None:
    data = b"content-addressed"
    key = content_key(sha256_hex(data))
    FolderBlobStore(tmp_path).put(key, data)
    assert _DeletedAfterLstat(tmp_path).put(key, data) is True  # written again, not "already there"
    assert FolderBlobStore(tmp_path).get(key) == data
