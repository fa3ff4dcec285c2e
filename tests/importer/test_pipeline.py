"""The pipeline: it stops with the error of a failed upload, however full its queues are;
its sender gathers refs into few calls and sends at once when the input ends, a line is
invalid or an upload fails (the batches before it first)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from temporalio.api.enums.v1 import EventType

from bulkorder.domain.refs import BatchRef
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.folder_store import FolderBlobStore
from bulkorder.storage.errors import StorageError, TransientStoreError
from bulkorder.storage.s3_store import S3BlobStore
from tests.fixtures.orders import OrderStack
from tests.fixtures.s3 import S3_TEST_ENV
from tests.importer.files import write_ndjson
from bulkorder.importer import ImportInputError, ImportOptions, import_file, pipeline
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


async def signalled_ref_counts(stack: OrderStack, order_id: str) -> list[int]:
    """How many refs each signal of the order's history carried, in order."""
    counts = []
    async for event in stack.client.handle(order_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            (refs,) = await stack.client.client.data_converter.decode(
                event.workflow_execution_signaled_event_attributes.input.payloads, [list[BatchRef]]
            )
            counts.append(len(refs))
    return counts


@pytest.fixture
def long_linger(monkeypatch: pytest.MonkeyPatch) -> None:
    """An hour's linger: only the end of the input, a stop or a failure ends a call's wait."""
    monkeypatch.setattr(pipeline, "SEND_LINGER", 3600.0)


async def test_one_call_gathers_the_uploaded_batches_and_the_end_of_the_input_sends_it(
    order_stack: OrderStack, tmp_path: Path, long_linger: None
) -> None:
    path = tmp_path / "items.ndjson"
    write_ndjson(path, 3_000)
    order_id = f"customer-1/imp-{uuid.uuid4().hex[:8]}"
    await order_stack.client.create(order_id)
    summary = await asyncio.wait_for(
        import_file(order_stack.client, order_stack.orders, order_id, path, ImportOptions(batch_size=250)), timeout=30
    )
    assert (summary.items, summary.batches) == (3_000, 12)
    assert await signalled_ref_counts(order_stack, order_id) == [12]


async def test_an_invalid_line_ends_the_wait_and_the_batches_before_it_are_sent(
    order_stack: OrderStack, tmp_path: Path, long_linger: None
) -> None:
    path = tmp_path / "items.ndjson"
    write_ndjson(path, 3_000)
    lines = path.read_text().splitlines(keepends=True)
    lines[1599] = '{"sku": "not an item"}\n'  # line 1600, in the seventh batch of 250
    path.write_text("".join(lines))
    order_id = f"customer-1/imp-{uuid.uuid4().hex[:8]}"
    await order_stack.client.create(order_id)
    with pytest.raises(ImportInputError, match="line 1600") as caught:
        await asyncio.wait_for(
            import_file(order_stack.client, order_stack.orders, order_id, path, ImportOptions(batch_size=250)), timeout=30
        )
    assert "lines 1-1500 are in the order" in str(caught.value)
    assert await signalled_ref_counts(order_stack, order_id) == [6]


class FullFolder(FolderBlobStore):
    """The stack's folder store, refusing the seventh batch blob it is given (a full disk)."""

    def __init__(self, root: Path, batch_prefix: str) -> None:
        super().__init__(root)
        self.batch_prefix = batch_prefix
        self.batch_keys: list[str] = []

    def put(self, key: str, data: bytes) -> bool:
        if key.startswith(self.batch_prefix):
            if key not in self.batch_keys:
                self.batch_keys.append(key)
            if len(self.batch_keys) > 6 and key == self.batch_keys[6]:
                raise StorageError(f"cannot write {key}: no space left on device (injected)")
        return super().put(key, data)


async def test_a_failed_upload_ends_the_wait_and_the_batches_before_it_are_sent(
    order_stack: OrderStack, tmp_path: Path, long_linger: None
) -> None:
    path = tmp_path / "items.ndjson"
    write_ndjson(path, 3_000)
    stack_batches = order_stack.batches
    store = FullFolder(tmp_path / "blobs", stack_batches.key_prefix + "/")
    batches = BatchStore(store, sealer=stack_batches.sealer, protection=stack_batches.protection)
    client = OrderClient(order_stack.client.client, task_queue=order_stack.task_queue, batches=batches)
    order_id = f"customer-1/imp-{uuid.uuid4().hex[:8]}"
    await client.create(order_id)
    options = ImportOptions(batch_size=250, workers=1, upload_threads=1)  # uploads in input order
    with pytest.raises(StorageError, match="no space left"):
        await asyncio.wait_for(import_file(client, order_stack.orders, order_id, path, options), timeout=30)
    assert await signalled_ref_counts(order_stack, order_id) == [6]


async def test_a_call_is_sent_at_its_deadline_while_the_input_stalls(
    order_stack: OrderStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The input is a pipe whose writer stops after four batches and goes on only once the
    # order's history holds a signal: a sender that waited for more input, or for the end
    # of it, instead of its deadline would never send, and the import would hang.
    monkeypatch.setattr(pipeline, "SEND_LINGER", 2.0)
    lines = tmp_path / "lines.ndjson"
    write_ndjson(lines, 2_000)
    data = lines.read_bytes()
    cut = 0
    for _ in range(1_000):  # four batches of 250 lines
        cut = data.index(b"\n", cut) + 1
    first, rest = data[:cut], data[cut:]
    path = tmp_path / "items.ndjson"
    os.mkfifo(path)
    signalled = threading.Event()

    def write() -> None:
        with open(path, "wb") as pipe:
            pipe.write(first)
            pipe.flush()
            if signalled.wait(timeout=120):  # longer than the import's: that one fails first
                pipe.write(rest)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    order_id = f"customer-1/imp-{uuid.uuid4().hex[:8]}"
    await order_stack.client.create(order_id)

    async def watch() -> None:
        while not await signalled_ref_counts(order_stack, order_id):
            await asyncio.sleep(0.1)
        signalled.set()

    watcher = asyncio.create_task(watch())
    try:
        summary = await asyncio.wait_for(
            import_file(order_stack.client, order_stack.orders, order_id, path, ImportOptions(batch_size=250)), timeout=60
        )
    finally:
        watcher.cancel()
        signalled.set()
        writer.join(timeout=10)
    assert (summary.items, summary.batches) == (2_000, 8)
    counts = await signalled_ref_counts(order_stack, order_id)
    # The first call went while the writer was stopped: it holds no batch of the rest.
    assert sum(counts) == 8 and len(counts) >= 2 and counts[0] <= 4
