"""What a new order's data key costs its client, and the worker's first read of it.

    python -m tests.benchmarks.bench_data_keys [--keys 200] [--s3-latency-ms 0]

moto's S3 server in a process of its own, behind the loopback latency proxy (as in
bench_fleet); the local keyring file. For ``--keys`` new order names, one after another:

- ``before``: GET (not found), HEAD of the tombstone (not found), the conditional PUT
  (which waited for "100 Continue" before its body), each after the previous one's
  answer; then the same with the PUT's body sent at once (``S3BlobStore`` now);
- ``for_order`` (read first, any first use): GET, then the PUT and the HEAD at once;
- ``create_for_order`` (the create path): the PUT and the HEAD at once;
- ``worker get``: another process's first read of a key made above (one GET).

Each line: p50 / p99 ms and the HTTP requests sent per key (counted at the boto3 client).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import boto3
from botocore.config import Config

from bulkorder.domain.identity import OrderIdentity
from bulkorder.keyring_file import load_keyring_file
from bulkorder.storage.encryption.data_keys import DATA_PREFIX, DESTROYED_PREFIX, DataKeys
from bulkorder.storage.encryption.envelope import DATA_KEY_BYTES
from bulkorder.storage.encryption.errors import DataKeyNotFoundError
from bulkorder.storage.errors import BlobNotFoundError
from bulkorder.storage.s3_store import _NO_EXPECT_ID, S3BlobStore
from tests.benchmarks.bench_codec import moto_server
from tests.benchmarks.measure import machine
from tests.fixtures.latency_proxy import latency_proxy_process


class Counted:
    """A process's view: its own S3 client (requests counted as sent), cache and keyring."""

    def __init__(self, endpoint: str, bucket: str, keyring: Path, *, expect_continue: bool = False) -> None:
        client = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1", config=Config(max_pool_connections=8))
        self.requests = 0
        self._lock = threading.Lock()
        client.meta.events.register("before-send.s3", self._sent)
        self.keys = DataKeys(S3BlobStore(bucket, prefix="bench", client=client), load_keyring_file(keyring))
        if expect_continue:  # as the store sent every PUT before: waiting for "100 Continue"
            client.meta.events.unregister("before-call.s3", unique_id=_NO_EXPECT_ID)
        self.keys.identity = OrderIdentity(b"bench-data-keys-identity-secret-0123456789")
        self.keys.order_key_id("warm-up")

    def _sent(self, **_: Any) -> None:
        with self._lock:
            self.requests += 1


def sequential(keys: DataKeys, order_id: str) -> None:
    """The order of requests before (DataKeys.get_or_create until this change)."""
    key_id = keys.order_key_id(order_id)
    try:
        keys.blobs.get(DATA_PREFIX + key_id, max_size=16 * 1024)
        raise AssertionError("a new order's key exists")
    except BlobNotFoundError:
        pass
    if keys.blobs.exists(DESTROYED_PREFIX + key_id):
        raise DataKeyNotFoundError("destroyed", key_id)
    material = os.urandom(DATA_KEY_BYTES)
    from bulkorder.storage.encryption.key_objects import key_object

    assert keys.blobs.put(DATA_PREFIX + key_id, key_object(key_id, keys.keyring.wrap(material, key_id)))


def measure(view: Counted, count: int, make: Callable[[str], object]) -> tuple[list[float], float, list[str]]:
    made, seconds = [], []
    before = view.requests
    for _ in range(count):
        name = f"bench/new-{uuid.uuid4().hex[:12]}"
        started = time.perf_counter()
        make(name)
        seconds.append(time.perf_counter() - started)
        made.append(name)
    return seconds, (view.requests - before) / count, made


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--s3-latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at start (the machine may be shared)")
    keyring = Path(tempfile.mkdtemp(prefix="bench-data-keys-")) / "keyring"
    with moto_server() as endpoint, latency_proxy_process(endpoint, args.s3_latency_ms) as proxied:
        bucket = f"keys-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
        client = Counted(proxied, bucket, keyring)
        before = Counted(proxied, bucket, keyring, expect_continue=True)
        rows = []
        made: list[str] = []
        seconds, per_key, _ = measure(before, args.keys, lambda name: sequential(before.keys, name))
        rows.append(("before: GET, HEAD, PUT (Expect: 100-continue), one after another", seconds, per_key))
        for label, make in (
            ("GET, HEAD, PUT one after another (the PUT's body at once)", lambda name: sequential(client.keys, name)),
            ("for_order: GET, then PUT + HEAD at once", client.keys.for_order),
            ("create_for_order: PUT + HEAD at once (the create path)", client.keys.create_for_order),
        ):
            seconds, per_key, names = measure(client, args.keys, make)
            rows.append((label, seconds, per_key))
            made = names
        worker = Counted(proxied, bucket, keyring)
        ids = [client.keys.order_key_id(name) for name in made]
        before, seconds = worker.requests, []
        for key_id in ids:
            started = time.perf_counter()
            worker.keys.get(key_id)
            seconds.append(time.perf_counter() - started)
        rows.append(("worker's first read (another process): GET", seconds, (worker.requests - before) / len(ids)))
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print()
    print(f"| a new order's data key, {args.keys} keys, moto S3 +{args.s3_latency_ms:g} ms | p50 ms | p99 ms | requests per key |")
    print("| --- | ---: | ---: | ---: |")
    for label, values, per_key in rows:
        print(f"| {label} | {percentile(values, .5) * 1000:.1f} | {percentile(values, .99) * 1000:.1f} | {per_key:g} |")


if __name__ == "__main__":
    main()
