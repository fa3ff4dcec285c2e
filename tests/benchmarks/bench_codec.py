"""Claim-check codec versus temporalio's ExternalStorage (S3 driver) versus raw boto3.

    python -m tests.benchmarks.bench_codec [--sizes 1,8,32] [--repeat 3] [--latency-ms 0,20]

One run, one moto S3 server (HTTP, in a process of its own), the same payloads for
every system: a list of realistic order items (``bulkorder.domain.sample_items``) as the JSON
payload Temporal's default converter makes of it, 1, 8 and 32 MiB. Each system gets its
own bucket, so "bytes stored" is what it left there. Every system goes through a Temporal
``DataConverter`` (``RawValue`` passes the payload in and out unconverted):

- bulkorder: ``DataConverter(payload_codec=ClaimCheckCodec(S3BlobStore))``, decoding
  with a second codec whose cache is off, so every decode downloads;
- ExternalStorage: ``DataConverter(external_storage=ExternalStorage([S3StorageDriver]))``
  with temporalio.contrib.aws.s3driver. Its shipped client adapter needs aioboto3, which
  pins botocore older than the one installed here; the adapter below does what it does
  (HEAD, then ``upload_fileobj``, multipart past 8 MiB; ``get_object``) with boto3 in a
  thread, as its README invites for other S3 libraries;
- floor: boto3 ``put_object`` + ``get_object`` of the serialized payload, nothing else.

Every repetition changes one metadata value, so no system can skip an upload because the
content-addressed key already exists. The systems take turns (round robin), times are
medians of the repetitions (after one warm-up each), and each decode is checked byte for
byte against the original.

Every system reaches moto through the same loopback latency proxy
(``tests/fixtures/latency_proxy.py``), which delays each request by ``--latency-ms``
(default 0 and 20: moto answers in a few milliseconds, real S3 in tens), so the two
tables differ only in the request latency.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterator

import boto3
from botocore.exceptions import ClientError
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.contrib.aws.s3driver import S3StorageDriver, S3StorageDriverClient
from temporalio.converter import DataConverter, ExternalStorage

from bulkorder.domain.sample_items import generate_items
from bulkorder.storage.claim_check import ClaimCheckCodec
from bulkorder.storage.s3_store import S3BlobStore
from tests.fixtures.latency_proxy import latency_proxy_process

MiB = 1024 * 1024
REGION = "us-east-1"


class Boto3DriverClient(S3StorageDriverClient):
    """The S3 driver's client contract over boto3 (blocking calls in a thread)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def object_exists(self, *, bucket: str, key: str) -> bool:
        def head() -> bool:
            try:
                self._client.head_object(Bucket=bucket, Key=key)
                return True
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "404":
                    return False
                raise

        return await asyncio.to_thread(head)

    async def put_object(self, *, bucket: str, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._client.upload_fileobj, io.BytesIO(data), bucket, key)

    async def get_object(self, *, bucket: str, key: str) -> bytes:
        return await asyncio.to_thread(lambda: self._client.get_object(Bucket=bucket, Key=key)["Body"].read())


def order_payloads(sizes_mib: list[int]) -> dict[int, Payload]:
    """For each size, the JSON payload of as many generated items as fit in it."""
    largest = max(sizes_mib) * MiB
    encoded: list[bytes] = []
    total = 2
    for item in generate_items(10_000_000):
        line = json.dumps(item, separators=(",", ":")).encode()
        encoded.append(line)
        total += len(line) + 1
        if total >= largest:
            break
    payloads = {}
    for size in sizes_mib:
        count, length = 0, 2
        while count < len(encoded) and length + len(encoded[count]) + 1 <= size * MiB:
            length += len(encoded[count]) + 1
            count += 1
        data = b"[" + b",".join(encoded[:count]) + b"]"
        payloads[size] = Payload(metadata={"encoding": b"json/plain"}, data=data)
    return payloads


def variant(payload: Payload, tag: str) -> Payload:
    copy = Payload()
    copy.CopyFrom(payload)
    copy.metadata["bench-run"] = tag.encode()
    return copy


def bucket_bytes(client: Any, bucket: str) -> int:
    total = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        total += sum(item["Size"] for item in page.get("Contents", ()))
    return total


@dataclass
class System:
    name: str
    bucket: str
    round_trip: Callable[[Payload], Awaitable[tuple[float, float, Payload]]]


@dataclass
class Result:
    system: str
    size_mib: int
    payload_bytes: int
    encode_s: float
    decode_s: float
    stored_bytes: float

    @property
    def total_s(self) -> float:
        return self.encode_s + self.decode_s


async def timed(operation: Awaitable[Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = await operation
    return time.perf_counter() - start, result


def build_systems(endpoint: str, s3: Any) -> list[System]:
    buckets = {name: f"bench-{name}-{uuid.uuid4().hex[:8]}" for name in ("bulkorder", "extstore", "floor")}
    for bucket in buckets.values():
        s3.create_bucket(Bucket=bucket)

    store = S3BlobStore(buckets["bulkorder"], endpoint_url=endpoint, region_name=REGION)
    writer = DataConverter(payload_codec=ClaimCheckCodec(store, cache_bytes=0))
    reader = DataConverter(payload_codec=ClaimCheckCodec(store, cache_bytes=0))

    async def bulkorder(payload: Payload) -> tuple[float, float, Payload]:
        encode_s, encoded = await timed(writer.encode([RawValue(payload)]))
        decode_s, [decoded] = await timed(reader.decode(encoded, [RawValue]))
        return encode_s, decode_s, decoded.payload

    driver = S3StorageDriver(
        client=Boto3DriverClient(boto3.client("s3", endpoint_url=endpoint, region_name=REGION)),
        bucket=buckets["extstore"],
        max_payload_size=1 << 30,
    )
    external = DataConverter(external_storage=ExternalStorage(drivers=[driver]))

    async def extstore(payload: Payload) -> tuple[float, float, Payload]:
        encode_s, encoded = await timed(external.encode([RawValue(payload)]))
        decode_s, [decoded] = await timed(external.decode(encoded, [RawValue]))
        return encode_s, decode_s, decoded.payload

    raw = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)  # through the same proxy

    async def floor(payload: Payload) -> tuple[float, float, Payload]:
        key = f"raw/{uuid.uuid4().hex}"
        start = time.perf_counter()
        raw.put_object(Bucket=buckets["floor"], Key=key, Body=payload.SerializeToString())
        middle = time.perf_counter()
        decoded = Payload.FromString(raw.get_object(Bucket=buckets["floor"], Key=key)["Body"].read())
        return middle - start, time.perf_counter() - middle, decoded

    return [
        System("bulkorder claim-check", buckets["bulkorder"], bulkorder),
        System("ExternalStorage+s3driver", buckets["extstore"], extstore),
        System("raw boto3 put+get", buckets["floor"], floor),
    ]


async def measure(systems: list[System], payloads: dict[int, Payload], repeat: int, s3: Any) -> list[Result]:
    for system in systems:  # warm-up: clients, connection pools, thread pools
        await system.round_trip(variant(payloads[min(payloads)], "warm-up"))
    results = []
    for size, payload in payloads.items():
        before = {system.name: bucket_bytes(s3, system.bucket) for system in systems}
        times: dict[str, tuple[list[float], list[float]]] = {system.name: ([], []) for system in systems}
        # Round robin, so a burst of load on this shared machine hits every system alike.
        for run in range(repeat):
            for system in systems:
                original = variant(payload, f"{size}-{run}")
                encode_s, decode_s, decoded = await system.round_trip(original)
                if decoded.SerializeToString(deterministic=True) != original.SerializeToString(deterministic=True):
                    raise AssertionError(f"{system.name} did not return the {size} MiB payload intact")
                times[system.name][0].append(encode_s)
                times[system.name][1].append(decode_s)
        for system in systems:
            encode_times, decode_times = times[system.name]
            stored = (bucket_bytes(s3, system.bucket) - before[system.name]) / repeat
            results.append(
                Result(system.name, size, payload.ByteSize(), statistics.median(encode_times),
                       statistics.median(decode_times), stored)
            )
    return results


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server in a process of its own, as S3 is never inside the client's process."""
    from tests.fixtures.s3 import S3_TEST_ENV, free_port

    for name, value in S3_TEST_ENV.items():
        os.environ.setdefault(name, value)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto's server did not start on port {port}") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=30)


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPUs ({model}), {ram:.0f} GiB RAM, Python {platform.python_version()}"


def print_table(results: list[Result]) -> None:
    print(
        f"| size | system | encode ms | decode ms | total ms | stored bytes | time vs ExtStorage "
        "| bytes vs ExtStorage | time vs floor |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    by_key = {(r.size_mib, r.system): r for r in results}
    for r in results:
        ext = by_key[(r.size_mib, "ExternalStorage+s3driver")]
        floor = by_key[(r.size_mib, "raw boto3 put+get")]
        print(
            f"| {r.size_mib} MiB | {r.system} | {r.encode_s * 1000:,.0f} | {r.decode_s * 1000:,.0f} "
            f"| {r.total_s * 1000:,.0f} | {r.stored_bytes:,.0f} | {r.total_s / ext.total_s:.2f}× "
            f"| {r.stored_bytes / ext.stored_bytes:.3f}× | {r.total_s / floor.total_s:.2f}× |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,8,32", help="payload sizes in MiB (default 1,8,32)")
    parser.add_argument("--repeat", type=int, default=7, help="repetitions per size and system (default 7)")
    parser.add_argument("--latency-ms", default="0,20", help="added latency per S3 request, one table each (default 0,20)")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    latencies = [float(ms) for ms in args.latency_ms.split(",")]

    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at start (the machine may be shared)")
    print(f"payloads: generated order items as JSON ({', '.join(f'{s} MiB' for s in sizes)}), "
          f"median of {args.repeat} round trips each, moto S3 (own process) over HTTP on 127.0.0.1, "
          "every system through the same latency proxy (own process)")
    payloads = order_payloads(sizes)
    with moto_server() as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
        for latency in latencies:
            with latency_proxy_process(endpoint, latency) as proxied:
                systems = build_systems(proxied, s3)
                results = asyncio.run(measure(systems, payloads, args.repeat, s3))
            print()
            print(f"### {latency:g} ms added per S3 request")
            print()
            report(results)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def report(results: list[Result]) -> None:
    print_table(results)
    worst_time = max(r.total_s / next(x for x in results if x.size_mib == r.size_mib and x.system.startswith("External")).total_s
                     for r in results if r.system.startswith("bulkorder"))
    worst_bytes = max(r.stored_bytes / next(x for x in results if x.size_mib == r.size_mib and x.system.startswith("External")).stored_bytes
                      for r in results if r.system.startswith("bulkorder"))
    print()
    print(f"bulkorder vs ExternalStorage, worst size: {worst_time:.2f}× the time (target ≤ 0.5×), "
          f"{worst_bytes:.3f}× the bytes stored (target ≤ 0.35×)")


if __name__ == "__main__":
    main()
