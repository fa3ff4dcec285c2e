"""Fault 3: the S3 endpoint (moto's HTTP server) is unavailable for a while mid-import."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

from tests.faults.harness import SCALE, FaultLine, failed_attempts, recorded_batches, report, wait_until
from tests.faults.importing import ImportCase, ItemsFile
from tests.fixtures.orders import TEST_IDENTITY, sqlite_env
from tests.fixtures.s3 import S3_TEST_ENV, free_port
from bulkorder.workflows.messages import FULFILL_CHECKED_ACTIVITY


async def test_s3_unavailable_mid_import(temporal_address: str, task_queue: str, tmp_path: Path, items_file: ItemsFile) -> None:
    for name, value in S3_TEST_ENV.items():
        os.environ.setdefault(name, value)
    # Its own S3 server, to stop it without disturbing other tests. moto keeps its state
    # in this process, so the bucket and its objects survive a stop and start on one port.
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    s3.start()
    bucket = f"faults-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    case = ImportCase(
        "s3", tmp_path, items_file, temporal_address=temporal_address, task_queue=task_queue,
        event_store_env=sqlite_env(tmp_path / "events.sqlite"),
        blob_env={
            "BULKORDER_S3_BUCKET": bucket, "BULKORDER_S3_ENDPOINT_URL": endpoint, "BULKORDER_S3_REGION": "us-east-1",
            **S3_TEST_ENV,
        },
    )
    try:
        await case.start()
        client = await case.client()
        await case.gate.release_batches(1)  # the rest only once S3 is down
        importing = case.import_task()
        await wait_until(
            lambda: recorded_batches(case.orders, case.order_id) >= 1, "the order's first batch recorded", interval=0.05
        )
        assert not importing.done(), "the import ended before the outage"
        loop = asyncio.get_running_loop()
        s3.stop()
        await case.gate.release_all()
        back_at = loop.time() + SCALE.outage_seconds
        # While S3 is down the import goes on (its uploads fail: it stops, and is run
        # again); if it ends first, the order is submitted at once, and fulfillment's reads
        # meet the outage instead.
        await asyncio.wait({importing}, timeout=SCALE.outage_seconds)
        submitted_during_outage = importing.done()
        if submitted_during_outage:
            await importing
            await client.submit(case.order_id)
        await asyncio.sleep(max(0.0, back_at - loop.time()))  # the rest of the fault's duration
        s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        s3.start()

        await importing
        # Fulfillment reads every batch back from S3.
        agreement, runs = await case.finish(submit=not submitted_during_outage)
        failed_reads, _ = await failed_attempts(client.client, TEST_IDENTITY.workflow_id(case.order_id), FULFILL_CHECKED_ACTIVITY)
        assert case.importer.reruns + failed_reads > 0, "nothing met the outage"
    finally:
        await case.stop()
        s3.stop()
    report(FaultLine(
        f"S3 endpoint down {SCALE.outage_seconds:.0f} s mid-import", agreement.expected_items,
        agreement.recorded_items, agreement.duplicates, case.watch.seconds,
        f"{case.importer.reruns} import reruns, {failed_reads} fulfillment attempts failed, {runs} runs replayed",
    ))
