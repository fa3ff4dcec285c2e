"""The pipeline stops with the error of a failed upload, however full its queues are."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Iterator

import pytest

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
