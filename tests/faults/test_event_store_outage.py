"""Fault 4: the event store is unavailable for a while as the record activity runs.

Two ways, one per backend:

- SQLite: another connection holds the database's write lock (``BEGIN EXCLUSIVE``); the
  worker's lock timeout is 1 s, so each record attempt fails ("database is locked")
  instead of waiting the outage out, and Temporal retries it.
- PostgreSQL: the worker logs in as a role of its own; the outage is ``ALTER ROLE ...
  NOLOGIN`` plus ``pg_terminate_backend`` of that role's sessions (what a database
  restart or failover looks like to a client: connections drop, new ones are refused),
  undone by ``ALTER ROLE ... LOGIN``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from pathlib import Path
from typing import Iterator, Mapping

import pytest

from tests.faults.harness import SCALE, FaultLine, failed_attempts, recorded_batches, report, wait_until
from tests.faults.importing import ImportCase, ItemsFile
from tests.fixtures.orders import TEST_IDENTITY, sqlite_env
from tests.fixtures.postgres import _connect as postgres_admin
from bulkorder.workflows.messages import RECORD_ACTIVITY


class EventStoreOutage:
    """One backend's way to make the event store unavailable, and the worker's settings."""

    name: str
    worker_env: dict[str, str]
    admin_env: dict[str, str]

    def outage(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError


class SQLiteLocked(EventStoreOutage):
    name = "SQLite write-locked"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.admin_env = sqlite_env(path)
        self.worker_env = {**self.admin_env, "SQLITE_LOCK_TIMEOUT": "1"}

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        holder = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()


class PostgresRefused(EventStoreOutage):
    name = "PostgreSQL connections refused"

    def __init__(self, postgres_env: Mapping[str, str]) -> None:
        self.role = f"bulkorder_fault_{uuid.uuid4().hex[:10]}"
        schema = postgres_env["POSTGRES_SCHEMA"]
        with postgres_admin() as conn:
            conn.execute(f'CREATE ROLE "{self.role}" LOGIN')
            conn.execute(f'GRANT ALL ON SCHEMA "{schema}" TO "{self.role}"')
        self.admin_env = dict(postgres_env)
        self.worker_env = {**postgres_env, "POSTGRES_USER": self.role, "POSTGRES_CONNECT_TIMEOUT": "2"}

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        with postgres_admin() as conn:
            conn.execute(f'ALTER ROLE "{self.role}" NOLOGIN')
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (self.role,))
        try:
            yield
        finally:
            with postgres_admin() as conn:
                conn.execute(f'ALTER ROLE "{self.role}" LOGIN')

    def drop(self) -> None:
        with postgres_admin() as conn:
            conn.execute(f'DROP OWNED BY "{self.role}" CASCADE')
            conn.execute(f'DROP ROLE "{self.role}"')


@pytest.fixture(params=["sqlite", "postgres"])
def event_store_outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStoreOutage]:
    if request.param == "sqlite":
        yield SQLiteLocked(tmp_path / "events.sqlite")
        return
    postgres_env = request.getfixturevalue("postgres_env")
    outage = PostgresRefused(postgres_env)
    try:
        yield outage
    finally:
        outage.drop()


async def test_event_store_unavailable_while_recording(
    temporal_address: str, task_queue: str, tmp_path: Path, items_file: ItemsFile, event_store_outage: EventStoreOutage,
) -> None:
    case = ImportCase(
        "store", tmp_path, items_file, temporal_address=temporal_address, task_queue=task_queue,
        event_store_env=event_store_outage.worker_env, blob_env={"BULKORDER_BLOB_DIR": str(tmp_path / "blobs")},
        # The case and the importer (which waits until the store has every batch) read the
        # admin's view of the store, which the outage does not touch (on SQLite, reads go
        # on under the lock).
        orders_env=event_store_outage.admin_env,
    )
    try:
        await case.start()  # first: on PostgreSQL, its role creates the tables it writes
        await case.gate.release_batches(1)  # the rest only once the store is away
        importing = case.import_task()
        # From the order's first recorded batch on: every later batch must be recorded
        # while (or after) the store is away, so the outage meets the record activity.
        await wait_until(
            lambda: recorded_batches(case.orders, case.order_id) >= 1, "the order's first batch recorded", interval=0.05
        )
        assert not importing.done(), "the import ended before the outage"
        with event_store_outage.outage():
            await case.gate.release_all()
            await asyncio.sleep(SCALE.outage_seconds)  # the fault's duration
        await importing
        agreement, runs = await case.finish()
        # Proof that the outage hit the record activity: Temporal retried it.
        client = await case.client()
        attempts, failure = await failed_attempts(client.client, TEST_IDENTITY.workflow_id(case.order_id), RECORD_ACTIVITY)
        assert attempts > 0, "no record attempt failed during the outage"
    finally:
        await case.stop()
    report(FaultLine(
        f"event store down {SCALE.outage_seconds:.0f} s ({event_store_outage.name})", agreement.expected_items,
        agreement.recorded_items, agreement.duplicates, case.watch.seconds,
        f"record activity failed {attempts}x ({failure[:40]!r}), {case.importer.reruns} import reruns, {runs} runs replayed",
    ))
