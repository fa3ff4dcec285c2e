"""A worker process for the baseline workflows (``python -m tests.benchmarks.baseline_worker``).

With ``--s3-endpoint`` and ``--bucket`` its data converter uses temporalio's
``ExternalStorage`` with the contrib S3 driver, through :class:`Boto3S3Client`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal

from botocore.exceptions import ClientError
from temporalio.client import Client
from temporalio.contrib.aws.s3driver import S3StorageDriver, S3StorageDriverClient
from temporalio.converter import DataConverter, ExternalStorage
from temporalio.worker import Worker

from tests.benchmarks.baseline_workflows import CountingItemsWorkflow, InlineItemsWorkflow


class Boto3S3Client(S3StorageDriverClient):
    """The S3 driver's client over boto3 in threads (the SDK's own adapter needs aioboto3,
    which is not a dependency here; the driver's logic is the same)."""

    def __init__(self, endpoint_url: str) -> None:
        import boto3

        self._s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name="us-east-1")

    async def put_object(self, *, bucket: str, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._s3.put_object, Bucket=bucket, Key=key, Body=data)

    async def object_exists(self, *, bucket: str, key: str) -> bool:
        try:
            await asyncio.to_thread(self._s3.head_object, Bucket=bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    async def get_object(self, *, bucket: str, key: str) -> bytes:
        response = await asyncio.to_thread(self._s3.get_object, Bucket=bucket, Key=key)
        return await asyncio.to_thread(response["Body"].read)


def external_storage_converter(endpoint_url: str, bucket: str) -> DataConverter:
    driver = S3StorageDriver(client=Boto3S3Client(endpoint_url), bucket=bucket)
    return dataclasses.replace(DataConverter.default, external_storage=ExternalStorage(drivers=[driver]))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("task_queue")
    parser.add_argument("--s3-endpoint")
    parser.add_argument("--bucket")
    args = parser.parse_args()
    converter = (
        external_storage_converter(args.s3_endpoint, args.bucket) if args.s3_endpoint else DataConverter.default
    )
    client = await Client.connect(args.address, data_converter=converter)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    # Deadlock detection off (debug_mode; the sandbox stays): on two shared cores, decoding
    # one workflow task's many 2,000-item payloads can take longer than its 2 s, and the
    # failed task is retried from a full replay that fetches every payload again, in a loop
    # (the ExternalStorage baseline then crawled, "workflow didn't yield" in its log).
    async with Worker(
        client, task_queue=args.task_queue, workflows=[InlineItemsWorkflow, CountingItemsWorkflow], debug_mode=True
    ):
        print("worker ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
