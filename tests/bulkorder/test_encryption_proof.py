"""The proof: after a real import and fulfilment, nothing at rest is readable.

The bucket (boto3 on moto's S3 server) and the folder store are read directly, every
zstd frame found in them decompressed; the event store's tables (PostgreSQL and SQLite)
are dumped whole; Temporal's history is fetched without the codec. None of them holds an
item's SKU, name or attribute value, or the customer's ID. Then a rotation mid-import:
an order begun under one key-encryption key and finished under the next, read back by a
process that holds the new key only.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any, Iterator, Mapping

import boto3
import pytest
import zstandard
from temporalio.testing import WorkflowEnvironment

from bulkorder.analysis import Analyst
from bulkorder.importer.importer import ImportOptions, import_file
from bulkorder.keyring_file import rotate_keyring_file
from bulkorder.runtime import open_runtime
from bulkorder.settings import Settings
from bulkorder.storage.encryption.data_keys import DataKeys
from tests.fixtures.orders import sqlite_env

CUSTOMER = "customer-proof-5531"
SKU = "SKU-PRF-"
NAME = "Proof widget"
COLOUR = "ultramarine-proof"
SECRETS = (CUSTOMER.encode(), SKU.encode(), NAME.encode(), COLOUR.encode())
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def write_items(path: Path, count: int, start: int = 0) -> Path:
    with path.open("w") as out:
        for i in range(start, start + count):
            item = {
                "sku": f"{SKU}{i:06d}",
                "name": f"{NAME} {i}",
                "quantity": 1 + i % 5,
                "unit_price": {"amount": 250 + i % 100, "currency": "EUR"},
                "attributes": {"colour": COLOUR, "line": i},
            }
            out.write(json.dumps(item) + "\n")
    return path


def readable(data: bytes) -> Iterator[bytes]:
    """``data``, and the content of every zstd frame found anywhere in it."""
    yield data
    start = data.find(ZSTD_MAGIC)
    while start != -1:
        try:
            yield zstandard.ZstdDecompressor().decompressobj().decompress(data[start:])
        except zstandard.ZstdError:
            pass
        start = data.find(ZSTD_MAGIC, start + 1)


def assert_nothing_readable(where: str, chunks: Iterator[tuple[str, bytes]]) -> int:
    seen = 0
    for name, data in chunks:
        seen += 1
        for text in readable(data):
            for secret in SECRETS:
                assert secret not in text, f"{where}: {name} holds {secret!r} in plaintext"
    return seen


def bucket_objects(endpoint: str, bucket: str) -> Iterator[tuple[str, bytes]]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for entry in page.get("Contents", []):
            yield entry["Key"], s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()


def folder_files(root: Path) -> Iterator[tuple[str, bytes]]:
    for path in root.rglob("*"):
        if path.is_file():
            yield str(path.relative_to(root)), path.read_bytes()


def sqlite_rows(path: Path) -> Iterator[tuple[str, bytes]]:
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                yield table, repr(row).encode() + b"".join(v for v in row if isinstance(v, bytes))


def postgres_rows(env: Mapping[str, str]) -> Iterator[tuple[str, bytes]]:
    import psycopg

    schema = env["POSTGRES_SCHEMA"]
    with psycopg.connect(
        host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"], user=env["POSTGRES_USER"], dbname=env["POSTGRES_DBNAME"]
    ) as conn:
        tables = [r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))]
        assert tables, f"no tables in schema {schema}"
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{schema}"."{table}"'):
                yield table, repr(row).encode() + b"".join(bytes(v) for v in row if isinstance(v, (bytes, memoryview)))


def settings_for(home: Path, task_queue: str, temporal_address: str, extra: Mapping[str, str]) -> Settings:
    return Settings.from_env({"BULKORDER_HOME": str(home), "TEMPORAL_ADDRESS": temporal_address, "BULKORDER_TASK_QUEUE": task_queue, **extra})


async def import_and_fulfil(settings: Settings, order_id: str, items: Path) -> Any:
    async with open_runtime(settings) as runtime:
        async with runtime.worker():
            client = runtime.order_client()
            options = ImportOptions(create_customer=CUSTOMER, batch_size=250, workers=1)
            summary = await import_file(client, runtime.orders, order_id, items, options)
            assert summary.items == 2_000
            await client.submit(order_id)
            final = await client.wait_closed(order_id)
            assert final.status == "fulfilled" and final.item_count == 2_000
            # A cancellation reason, a personal field, on a second order.
            await client.create(order_id + "-c")
            await client.cancel(order_id + "-c", f"{CUSTOMER} asked")
            return final


async def history_bytes(temporal_env: WorkflowEnvironment, settings: Settings, order_id: str) -> Iterator[tuple[str, bytes]]:
    # The test server's own client: Temporal's default converter, no codec. The workflow
    # ID is the name's keyed hash (the deployment's identity secret).
    workflow_id = settings.order_identity().workflow_id(order_id)
    history = await temporal_env.client.get_workflow_handle(workflow_id).fetch_history()
    return iter([(f"history of {order_id}", b"".join(event.SerializeToString() for event in history.events))])


@pytest.mark.postgres
async def test_s3_and_postgres_hold_nothing_readable_after_an_import(
    temporal_env: WorkflowEnvironment, temporal_address: str, task_queue: str, tmp_path: Path,
    s3_endpoint: str, s3_bucket: str, postgres_env: dict[str, str],
) -> None:
    extra = {"BULKORDER_S3_BUCKET": s3_bucket, "BULKORDER_S3_ENDPOINT_URL": s3_endpoint, "BULKORDER_S3_REGION": "us-east-1", **postgres_env}
    settings = settings_for(tmp_path / "home", task_queue, temporal_address, extra)
    order_id = f"{CUSTOMER}/proof-{uuid.uuid4().hex[:8]}"  # the order's name
    await import_and_fulfil(settings, order_id, write_items(tmp_path / "items.ndjson", 2_000))
    objects = list(bucket_objects(s3_endpoint, s3_bucket))
    assert any(k.startswith("batches/") for k, _ in objects) and any(k.startswith("reports/") for k, _ in objects)
    assert assert_nothing_readable("bucket", iter(objects)) >= 10
    assert assert_nothing_readable("PostgreSQL", postgres_rows(postgres_env)) >= 10
    for wid in (order_id, order_id + "-c"):
        assert_nothing_readable("Temporal history", await history_bytes(temporal_env, settings, wid))


async def test_the_folder_store_and_sqlite_hold_nothing_readable_and_survive_a_rotation_mid_import(
    temporal_env: WorkflowEnvironment, temporal_address: str, task_queue: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    extra = {"BULKORDER_BLOB_DIR": str(tmp_path / "blobs"), **sqlite_env(tmp_path / "events.sqlite")}
    settings = settings_for(home, task_queue, temporal_address, extra)
    order_id = f"{CUSTOMER}/proof-{uuid.uuid4().hex[:8]}"  # the order's name
    await import_and_fulfil(settings, order_id, write_items(tmp_path / "items.ndjson", 2_000))
    assert assert_nothing_readable("folder store", folder_files(tmp_path / "blobs")) >= 10
    assert assert_nothing_readable("SQLite", sqlite_rows(tmp_path / "events.sqlite")) >= 10
    assert_nothing_readable("Temporal history", await history_bytes(temporal_env, settings, order_id))

    # Rotation mid-import: half an order's items, a new KEK and the rewrap, the other half.
    rotating = f"{CUSTOMER}/rot-{uuid.uuid4().hex[:8]}"
    async with open_runtime(settings) as runtime:  # this process loaded the old keyring
        async with runtime.worker():
            client = runtime.order_client()
            options = ImportOptions(create_customer=CUSTOMER, batch_size=250, workers=1)
            await import_file(client, runtime.orders, rotating, write_items(tmp_path / "a.ndjson", 1_000), options)
            old_kek = settings.encryption_settings.keyring().active_id
            rotate_keyring_file(settings.encryption_settings.keyring_path)
            rewrapped = DataKeys(settings.blob_store.open(), settings.encryption_settings.keyring()).rewrap_all()
            assert rewrapped.rewrapped >= 3 and rewrapped.kek_id != old_kek
            await import_file(client, runtime.orders, rotating, write_items(tmp_path / "b.ndjson", 1_000, 1_000), options)
            await client.submit(rotating)
            assert (await client.wait_closed(rotating)).status == "fulfilled"
    # The old KEK removed from the keyring: a new process reads everything, events and items.
    body = json.loads(settings.encryption_settings.keyring_path.read_text())
    del body["keys"][old_kek]
    settings.encryption_settings.keyring_path.write_text(json.dumps(body))
    os.chmod(settings.encryption_settings.keyring_path, 0o600)
    import bulkorder.encryption as encryption

    encryption._data_keys.cache_clear()  # a new process: no key cached
    out = io.BytesIO()
    with Analyst.from_settings(settings) as analyst:
        assert analyst.orders.summary(rotating).customer_id == CUSTOMER
        assert analyst.stream_items(rotating, out).items == 2_000
    assert out.getvalue().count(SKU.encode()) == 2_000


async def test_an_import_whose_key_cannot_be_had_fails_before_writing_anything(
    temporal_env: WorkflowEnvironment, temporal_address: str, task_queue: str, tmp_path: Path
) -> None:
    from bulkorder.encryption import data_keys
    from bulkorder.storage.encryption.errors import DataKeyDestroyedError

    extra = {"BULKORDER_BLOB_DIR": str(tmp_path / "blobs"), **sqlite_env(tmp_path / "events.sqlite")}
    settings = settings_for(tmp_path / "home", task_queue, temporal_address, extra)
    order_id = f"{CUSTOMER}/gone-{uuid.uuid4().hex[:8]}"
    key_id = data_keys(settings.encryption_settings, settings.blob_store, settings.order_identity()).destroy_order_key(order_id)
    async with open_runtime(settings) as runtime:
        async with runtime.worker():
            options = ImportOptions(create_customer=CUSTOMER, batch_size=250, workers=1)
            with pytest.raises(DataKeyDestroyedError, match=key_id):
                await import_file(runtime.order_client(), runtime.orders, order_id, write_items(tmp_path / "i.ndjson", 500), options)
            assert not runtime.orders.exists(order_id)
    assert not list((tmp_path / "blobs").glob("batches/*/*"))
