"""The pipeline: it stops with the error of a failed upload, however full its queues are;
its sender gathers refs into few calls and sends at once when the input ends."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from bulkorder.domain.refs import BatchRef
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.errors import TransientStoreError
from bulkorder.storage.s3_store import S3BlobStore
from tests.fixtures.orders import OrderStack
from tests.fixtures.s3 import S3_TEST_ENV
from tests.importer.files import write_ndjson
from bulkorder.importer import ImportOptions, import_file
from bulkorder.workflows.client import OrderClient


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An HTTP endpoint that accepts connections and never answers (a hung S3 gateway)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


async def test_a_failed_upload_stops_the_import_while_the_reader_is_still_reading(
    order_stack: OrderStack, tmp_path: Path, silent_endpoint: str
) -> None:
    for name, value in S3_TEST_ENV.items():
        os.environ.setdefault(name, value)
    path = tmp_path / "items.ndjson"
    write_ndjson(path, 20_000)  # 200 batches of 100: the reader is far from done when uploads fail
    store = S3BlobStore("bucket", endpoint_url=silent_endpoint, region_name="us-east-1", max_attempts=1, read_timeout=2)
    client = OrderClient(order_stack.client.client, task_queue=order_stack.task_queue, batches=BatchStore(store))
    options = ImportOptions(create_customer="customer-1", batch_size=100)
    # Before the fix the reader, cancelled while its queue was full, waited forever.
    with pytest.raises(TransientStoreError, match="did not answer"):
        await asyncio.wait_for(
            import_file(client, order_stack.orders, f"customer-1/imp-{uuid.uuid4().hex[:8]}", path, options), timeout=60
        )


async def test_one_call_gathers_the_uploaded_batches_and_the_end_of_the_input_sends_it(
    order_stack: OrderStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender gathers uploaded refs for SEND_LINGER into one signal; the end of the
    input ends the wait at once (with an hour's linger the import still ends, in one call)."""
    from temporalio.api.enums.v1 import EventType

    from bulkorder.importer import pipeline

    monkeypatch.setattr(pipeline, "SEND_LINGER", 3600.0)
    path = tmp_path / "items.ndjson"
    write_ndjson(path, 3_000)
    order_id = f"customer-1/imp-{uuid.uuid4().hex[:8]}"
    await order_stack.client.create(order_id)
    summary = await asyncio.wait_for(
        import_file(order_stack.client, order_stack.orders, order_id, path, ImportOptions(batch_size=250)), timeout=120
    )
    assert (summary.items, summary.batches) == (3_000, 12)
    signals = [
        event
        async for event in order_stack.client.handle(order_id).fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert len(signals) == 1
    (refs,) = await order_stack.client.client.data_converter.decode(
        signals[0].workflow_execution_signaled_event_attributes.input.payloads, [list[BatchRef]]
    )
    assert len(refs) == 12
