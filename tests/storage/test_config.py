"""Settings objects: which blob store to open, and the event store's environment."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.cryptography import AESCipher

from bulkorder.domain.summary import OrderChange
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.config import BlobStoreConfig, EventStoreConfig
from bulkorder.storage.folder_store import FolderBlobStore
from bulkorder.storage.s3_store import S3BlobStore
from tests.storage.items import make_items

# --- blob stores


def test_folder_config_opens_a_folder_store(tmp_path: Path) -> None:
    config = BlobStoreConfig(folder=str(tmp_path / "blobs"))
    store = config.open()
    assert isinstance(store, FolderBlobStore) and store.root == (tmp_path / "blobs").resolve()
    assert config.describe() == f"folder {tmp_path / 'blobs'}"


def test_s3_config_opens_an_s3_store_that_works(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> None:
    config = BlobStoreConfig(
        folder=str(tmp_path / "ignored"),  # a bucket wins over a folder
        s3_bucket=s3_bucket,
        s3_prefix="/p1/",
        s3_endpoint_url=s3_endpoint,
        s3_region="us-east-1",
    )
    store = config.open()
    assert isinstance(store, S3BlobStore) and store.prefix == "p1"
    assert store.put("a/b", b"x") and store.get("a/b") == b"x"
    assert config.describe() == f"s3://{s3_bucket}/p1 (endpoint {s3_endpoint})"


def test_no_blob_store_configured() -> None:
    with pytest.raises(ValueError, match="no blob store configured"):
        BlobStoreConfig().open()


# --- event store


def _record_and_read_back(config: EventStoreConfig, tmp_path: Path, order_id: str = "cust-1/order-1") -> Any:
    """Record an order with one batch through one app, read it through a fresh one."""
    ref = BatchStore(FolderBlobStore(tmp_path / "blobs")).write(make_items(3))
    app = config.open_orders()
    try:
        outcome = app.record(OrderChange(order_id=order_id, customer_id="cust-1", create=True, batches=[ref]))
        assert outcome.applied_batch_ids == [ref.batch_id]
    finally:
        app.close()
    app = config.open_orders()
    try:
        summary = app.summary(order_id)
        assert [r.batch_id for r in app.iter_batch_refs(order_id)] == [ref.batch_id]
        return type(app.factory).__module__, summary, ref
    finally:
        app.close()


def test_sqlite_env_and_parent_folders(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "events.sqlite"
    config = EventStoreConfig.sqlite(path)
    assert path.parent.is_dir()
    assert config.env() == {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(path),
        "SQLITE_LOCK_TIMEOUT": "30",
    }
    assert config.describe() == f"SQLite {path} (lock timeout 30 s)"


def test_orders_on_sqlite_persist_across_opens(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    module, summary, ref = _record_and_read_back(EventStoreConfig.sqlite(path), tmp_path)
    assert module == "eventsourcing.sqlite"
    assert (summary.item_count, summary.quantity, summary.totals) == (3, ref.quantity, ref.totals)
    with sqlite3.connect(path) as db:
        assert db.execute("select count(*) from stored_events").fetchone()[0] >= 2


def test_configuration_beats_stray_process_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # eventsourcing reads ORDERS_X before X and merges os.environ in: the config must win.
    monkeypatch.setenv("ORDERS_PERSISTENCE_MODULE", "eventsourcing.popo")
    monkeypatch.setenv("ORDERS_SQLITE_DBNAME", str(tmp_path / "wrong.sqlite"))
    module, summary, _ = _record_and_read_back(EventStoreConfig.sqlite(tmp_path / "right.sqlite"), tmp_path)
    assert module == "eventsourcing.sqlite" and summary.batch_count == 1
    assert (tmp_path / "right.sqlite").exists() and not (tmp_path / "wrong.sqlite").exists()


def test_from_env_defaults_to_sqlite_and_keeps_only_codec_settings(tmp_path: Path) -> None:
    environ = {
        "HOME": "/root",
        "AWS_SECRET_ACCESS_KEY": "not for the event store",
        "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
        "POSTGRES_HOST": "ignored without PERSISTENCE_MODULE",
    }
    config = EventStoreConfig.from_env(environ, tmp_path / "x" / "events.sqlite")
    assert config.env() == {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(tmp_path / "x" / "events.sqlite"),
        "SQLITE_LOCK_TIMEOUT": "30",
        "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
    }
    assert (tmp_path / "x").is_dir()
    assert "compressed with eventsourcing.compressor:ZlibCompressor" in config.describe()


@pytest.mark.parametrize("module_var", ["PERSISTENCE_MODULE", "ORDERS_PERSISTENCE_MODULE"])
def test_from_env_passes_eventsourcing_variables_through_unchanged(tmp_path: Path, module_var: str) -> None:
    eventsourcing_vars = {
        module_var: "eventsourcing.postgres",
        "POSTGRES_DBNAME": "orders",
        "POSTGRES_HOST": "db.internal",
        "POSTGRES_PORT": "6543",
        "POSTGRES_USER": "app",
        "POSTGRES_PASSWORD": "hunter2",
        "ORDERS_POSTGRES_SCHEMA": "bulk",
        "POSTGRES_POOL_SIZE": "20",
        "CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher",
        "CIPHER_KEY": "c2VjcmV0LWtleS0xMjM0NQ==",
        "SINGLE_ROW_TRACKING": "y",
    }
    environ = {**eventsourcing_vars, "PATH": "/usr/bin", "AWS_SECRET_ACCESS_KEY": "x", "ORDERS_DEBUG": "1"}
    config = EventStoreConfig.from_env(environ, tmp_path / "unused.sqlite")
    assert config.env() == eventsourcing_vars
    assert not (tmp_path / "unused.sqlite").exists()
    assert config.persistence_module == "eventsourcing.postgres"
    assert config.get("POSTGRES_SCHEMA") == "bulk"
    description = config.describe()
    assert description == (
        "PostgreSQL app@db.internal:6543/orders schema bulk, encrypted with eventsourcing.cryptography:AESCipher"
    )
    for text in (description, repr(config), str(config)):
        assert "hunter2" not in text and "c2VjcmV0" not in text
    assert config.redacted_env()["POSTGRES_PASSWORD"] == "***"


def test_popo_and_unknown_modules_describe_themselves() -> None:
    assert "nothing is saved" in EventStoreConfig.from_env({"PERSISTENCE_MODULE": "eventsourcing.popo"}).describe()
    assert EventStoreConfig.from_env({"PERSISTENCE_MODULE": "my.module"}).describe() == "persistence module my.module"


def test_sqlite_with_compression_and_encryption(tmp_path: Path) -> None:
    path = tmp_path / "secret.sqlite"
    environ = {
        "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
        "CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher",
        "CIPHER_KEY": AESCipher.create_key(32),
    }
    config = EventStoreConfig.from_env(environ, path)
    module, summary, _ = _record_and_read_back(config, tmp_path, order_id="private.person@example.com/very-private-order")
    assert module == "eventsourcing.sqlite" and summary.order_id == "private.person@example.com/very-private-order"
    assert b"private.person" not in path.read_bytes()
    assert b"very-private-order" not in path.read_bytes()
    assert environ["CIPHER_KEY"] not in repr(config)


@pytest.mark.postgres
def test_orders_on_postgres(postgres_env: dict[str, str], tmp_path: Path) -> None:
    config = EventStoreConfig.from_env(postgres_env, tmp_path / "unused.sqlite")
    assert config.env() == postgres_env
    module, summary, ref = _record_and_read_back(config, tmp_path)
    assert module == "eventsourcing.postgres"
    assert (summary.item_count, summary.batch_count, summary.totals) == (3, 1, ref.totals)
    assert f"schema {postgres_env['POSTGRES_SCHEMA']}" in config.describe()
