"""A new order's data key in one round trip (the create path), on moto's S3 server: the
HTTP requests each path sends, counted at the real boto3 client; one key whoever races;
an erased order's key never made again, and nothing left behind."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest

from bulkorder.keyring_file import load_keyring_file
from bulkorder.storage.encryption.data_keys import DATA_PREFIX, DESTROYED_PREFIX, DataKeys
from bulkorder.storage.encryption.errors import DataKeyDestroyedError
from bulkorder.storage.s3_store import S3BlobStore

PREFIX = "deploy"


class RequestLog:
    """Every HTTP request a boto3 S3 client sends (retries included): (method, blob key)."""

    def __init__(self, store: S3BlobStore) -> None:
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._root = f"/{store.bucket}/{PREFIX}/"
        store.client.meta.events.register("before-send.s3", self._sent)

    def _sent(self, request: Any, **_: Any) -> None:
        path = request.url.split("?", 1)[0].split("://", 1)[1].partition("/")[2]
        with self._lock:
            self.requests.append((request.method, ("/" + path).removeprefix(self._root)))

    def take(self) -> list[tuple[str, str]]:
        with self._lock:
            taken, self.requests = self.requests, []
        return sorted(taken)


@pytest.fixture
def deployment(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> Iterator[Any]:
    """``process()`` opens a new process's view of one deployment: its own S3 client
    (path-style, so a request's path is bucket/key), its own cache, the shared keyring."""
    from botocore.config import Config
    import boto3

    def process() -> tuple[DataKeys, RequestLog]:
        client = boto3.session.Session().client(
            "s3", endpoint_url=s3_endpoint, region_name="us-east-1", config=Config(s3={"addressing_style": "path"})
        )
        store = S3BlobStore(s3_bucket, prefix=PREFIX, client=client)
        keys = DataKeys(store, load_keyring_file(tmp_path / "keyring"))
        keys.order_key_id("warm-up")  # the index key, made or read once per process
        log = RequestLog(store)
        return keys, log

    yield process


def stored_data_keys(keys: DataKeys) -> list[str]:
    return sorted(keys.blobs.iter_keys(DATA_PREFIX))


def test_a_new_order_key_costs_one_conditional_put_and_one_tombstone_head_sent_together(deployment: Any) -> None:
    client, client_log = deployment()
    key = client.create_for_order("customer/new-1")
    key_id = key.key_id
    assert client_log.take() == [("HEAD", DESTROYED_PREFIX + key_id), ("PUT", DATA_PREFIX + key_id)]
    assert client.create_for_order("customer/new-1") is key and client_log.take() == []  # cached

    # The worker, another process, reads it once: one GET, its wrapping unwrapped (verified).
    worker, worker_log = deployment()
    assert worker.get(key_id).material == key.material
    assert worker_log.take() == [("GET", DATA_PREFIX + key_id)]


def test_the_read_first_path_makes_a_missing_key_in_one_read_then_one_round_trip(deployment: Any) -> None:
    keys, log = deployment()
    key_id = keys.for_order("customer/new-2").key_id
    # Was GET (404), then HEAD, then PUT, one after the other; the HEAD and PUT now go together.
    assert log.take() == [("GET", DATA_PREFIX + key_id), ("HEAD", DESTROYED_PREFIX + key_id), ("PUT", DATA_PREFIX + key_id)]
    other, other_log = deployment()
    assert other.for_order("customer/new-2").material == keys.cached(key_id).material  # type: ignore[union-attr]
    assert other_log.take() == [("GET", DATA_PREFIX + key_id)]  # an existing key: one GET


def test_a_retried_create_of_an_existing_order_uses_its_stored_key(deployment: Any) -> None:
    first, _ = deployment()
    key = first.create_for_order("customer/retried")
    retry, log = deployment()
    assert retry.create_for_order("customer/retried").material == key.material
    # The conditional put is refused (412), the stored key read.
    assert log.take() == [("GET", DATA_PREFIX + key.key_id), ("HEAD", DESTROYED_PREFIX + key.key_id), ("PUT", DATA_PREFIX + key.key_id)]
    assert len(stored_data_keys(retry)) == 2  # index + the order's


@pytest.mark.parametrize("expect_new", [True, False])
def test_concurrent_creators_in_separate_processes_agree_on_one_key(deployment: Any, expect_new: bool) -> None:
    processes = [deployment()[0] for _ in range(6)]
    start = threading.Barrier(len(processes))

    def make(keys: DataKeys) -> bytes:
        start.wait()
        key_id = keys.order_key_id("customer/raced")
        return keys.get_or_create(key_id, expect_new=expect_new).material

    with ThreadPoolExecutor(len(processes)) as pool:
        made = list(pool.map(make, processes))
    assert len(set(made)) == 1
    assert len(stored_data_keys(processes[0])) == 2  # index + the order's
    later, _ = deployment()
    assert later.for_order("customer/raced").material == made[0]


@pytest.mark.parametrize("path", ["create_for_order", "for_order"])
def test_an_erased_order_key_is_refused_and_nothing_is_left_behind(deployment: Any, path: str) -> None:
    eraser, _ = deployment()
    eraser.create_for_order("customer/erased")
    key_id = eraser.destroy_order_key("customer/erased")
    creator, log = deployment()
    before = stored_data_keys(creator)
    with pytest.raises(DataKeyDestroyedError, match=key_id):
        getattr(creator, path)("customer/erased")
    assert stored_data_keys(creator) == before and DATA_PREFIX + key_id not in before
    assert creator.cached(key_id) is None
    sent = log.take()
    assert ("HEAD", DESTROYED_PREFIX + key_id) in sent
    if ("PUT", DATA_PREFIX + key_id) in sent:  # the put was written (the key was gone): deleted
        assert ("DELETE", DATA_PREFIX + key_id) in sent
    with pytest.raises(DataKeyDestroyedError, match=key_id):
        creator.get(key_id)


def test_a_key_left_beside_its_tombstone_is_deleted_by_the_next_create(deployment: Any) -> None:
    # What a create racing an erasure could leave (the window in DataKeys._create): a data
    # key object written after the erasure deleted the order's. Made here by putting back
    # the order's own key object after the erasure.
    eraser, _ = deployment()
    key_id = eraser.create_for_order("customer/raced-erasure").key_id
    left = eraser.blobs.get(DATA_PREFIX + key_id)
    eraser.destroy_order_key("customer/raced-erasure")
    assert eraser.blobs.put(DATA_PREFIX + key_id, left)

    creator, _ = deployment()
    with pytest.raises(DataKeyDestroyedError, match=key_id):
        creator.create_for_order("customer/raced-erasure")
    assert DATA_PREFIX + key_id not in stored_data_keys(creator)
    with pytest.raises(DataKeyDestroyedError, match=key_id):
        creator.get(key_id)
