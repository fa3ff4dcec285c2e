"""The event store's readiness probe: a rolled-back write that a read-only store refuses,
on real SQLite and a real PostgreSQL (a role whose transactions are read-only)."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from bulkorder.domain.application import Orders
from bulkorder.domain.summary import OrderChange
from bulkorder.storage.event_store_probe import EventStoreNotWritableError, check_event_store_writable
from tests.fixtures.orders import sqlite_env


def test_a_writable_sqlite_store_passes_and_nothing_is_written(tmp_path: Path) -> None:
    orders = Orders(env=sqlite_env(tmp_path / "events.sqlite"))
    try:
        orders.record(OrderChange(order_id="probe-1", customer_id="c", create=True))
        before = orders.recorder.max_notification_id()
        check_event_store_writable(orders.recorder)
        assert orders.recorder.max_notification_id() == before
    finally:
        orders.close()


def test_a_read_only_sqlite_connection_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    Orders(env=sqlite_env(path)).close()
    read_only = Orders(env={**sqlite_env(path), "SQLITE_DBNAME": f"file:{path}?mode=ro"})
    try:
        with pytest.raises(EventStoreNotWritableError, match="readonly"):
            check_event_store_writable(read_only.recorder)
    finally:
        read_only.close()


@pytest.mark.postgres
def test_postgres_a_writer_passes_and_a_read_only_role_is_refused(postgres_env: dict[str, str]) -> None:
    admin = Orders(env=postgres_env)  # creates the tables
    role = f"bulkorder_ro_{uuid.uuid4().hex[:10]}"
    schema = postgres_env["POSTGRES_SCHEMA"]
    conninfo = dict(host=postgres_env["POSTGRES_HOST"], port=postgres_env["POSTGRES_PORT"],
                    dbname=postgres_env["POSTGRES_DBNAME"], user=postgres_env["POSTGRES_USER"], autocommit=True)
    with psycopg.connect(**conninfo) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        conn.execute(f'GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
        conn.execute(f'ALTER ROLE "{role}" SET default_transaction_read_only = on')
    try:
        check_event_store_writable(admin.recorder)
        read_only = Orders(env={**postgres_env, "POSTGRES_USER": role, "CREATE_TABLE": "n"})
        try:
            with pytest.raises(EventStoreNotWritableError, match="read-only transaction"):
                check_event_store_writable(read_only.recorder)
        finally:
            read_only.close()
    finally:
        admin.close()
        with psycopg.connect(**conninfo) as conn:
            conn.execute(f'DROP OWNED BY "{role}" CASCADE')
            conn.execute(f'DROP ROLE "{role}"')
