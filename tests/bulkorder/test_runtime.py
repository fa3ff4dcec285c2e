"""The data converter of a bulkorder deployment: payloads far over Temporal's limits go
through start, activities, signals, queries and updates, and Temporal holds only references."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bulkorder.runtime import claim_check_codec, data_converter, open_runtime
from bulkorder.settings import Settings
from bulkorder.storage.claim_check import is_reference
from tests.bulkorder.large_payloads import LargePayloadWorkflow, iter_payloads, reverse

MB = 1_000_000


def s3_settings(tmp_path: Path, temporal_address: str, s3_endpoint: str, s3_bucket: str, task_queue: str) -> Settings:
    return Settings.from_env(
        {
            "TEMPORAL_ADDRESS": temporal_address,
            "BULKORDER_HOME": str(tmp_path / "home"),
            "BULKORDER_TASK_QUEUE": task_queue,
            "BULKORDER_S3_BUCKET": s3_bucket,
            "BULKORDER_S3_ENDPOINT_URL": s3_endpoint,
            "BULKORDER_S3_REGION": "us-east-1",
        }
    )


async def test_20_mb_input_and_result_leave_only_references_in_history(
    temporal_env: WorkflowEnvironment, temporal_address: str, s3_endpoint: str, s3_bucket: str, task_queue: str, tmp_path: Path
) -> None:
    settings = s3_settings(tmp_path, temporal_address, s3_endpoint, s3_bucket, task_queue)
    rng = random.Random(3)
    data = rng.randbytes(20 * MB)
    note = rng.randbytes(3 * MB)  # over Temporal's 2 MB payload limit too
    workflow_id = f"large-{uuid.uuid4().hex[:10]}"

    async with open_runtime(settings) as runtime:
        # The worker takes the converter of the client it is given: nothing to configure.
        async with Worker(runtime.client, task_queue=task_queue, workflows=[LargePayloadWorkflow], activities=[reverse]):
            handle = await runtime.client.start_workflow(LargePayloadWorkflow.run, data, id=workflow_id, task_queue=task_queue)
            await handle.signal(LargePayloadWorkflow.note, note)
            assert await handle.query(LargePayloadWorkflow.noted) == note
            assert await handle.execute_update(LargePayloadWorkflow.finish, note) == note[::-1]
            assert await handle.result() == data[::-1]

    # Read the history raw, with a client that has no codec.
    history = await temporal_env.client.get_workflow_handle(workflow_id).fetch_history()
    payloads = [payload for event in history.events for payload in iter_payloads(event)]
    sizes = sorted(payload.ByteSize() for payload in payloads)
    assert sizes and sizes[-1] < 1024, f"history holds a payload of {sizes[-1]} bytes"
    # Input, activity input and result, signal, update argument and result, workflow result.
    assert sum(is_reference(payload) for payload in payloads) >= 7
    stats = claim_check_codec(settings).cache_stats()
    assert stats.hits > 0, "the worker should reuse payloads it just encoded or decoded"


async def test_threshold_setting_decides_what_leaves_temporal(tmp_path: Path) -> None:
    env = {"BULKORDER_HOME": str(tmp_path), "BULKORDER_CLAIM_CHECK_THRESHOLD": "65536"}
    converter = data_converter(Settings.from_env(env))
    assert converter is data_converter(Settings.from_env(dict(env))), "one converter (and codec) per process"
    value = "x" * 100_000
    [encoded] = await converter.encode([value])
    assert is_reference(encoded)
    assert await converter.decode([encoded], [str]) == [value]
    [inline] = await data_converter(Settings.from_env({"BULKORDER_HOME": str(tmp_path)})).encode([value])
    assert not is_reference(inline), "100 kB is under the default threshold of 128 KiB"
