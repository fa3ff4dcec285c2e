"""Is the event store writable? One rolled-back write, for a worker's readiness check.

An ``INSERT INTO events SELECT * FROM events WHERE 1 = 0`` inside a transaction that is
rolled back: it inserts no row, yet the database must accept a write to run it (SQLite
takes its write lock; a read-only file, a ``mode=ro`` connection, a PostgreSQL standby or
a read-only role refuse it). It needs only the privileges a worker has anyway (INSERT and
SELECT on the events table), not DELETE. Any recorder with a ``datastore`` and an
``events_table_name`` (eventsourcing's SQLite and PostgreSQL recorders) can be probed.
"""

from __future__ import annotations

from typing import Any

from bulkorder.storage.errors import StorageError


class EventStoreNotWritableError(StorageError):
    """The event store refused the probe's write (the message names why)."""


def check_event_store_writable(recorder: Any) -> None:
    """Raise :class:`EventStoreNotWritableError` unless ``recorder``'s database takes a write."""
    datastore = getattr(recorder, "datastore", None)
    table = getattr(recorder, "events_table_name", None)
    if datastore is None or not table:
        return  # in memory (eventsourcing.popo): always writable
    schema = getattr(datastore, "schema", None)  # PostgreSQL's; SQLite has none
    name = f"{_quoted(schema)}.{_quoted(table)}" if schema else _quoted(table)
    try:
        with datastore.transaction(commit=False) as cursor:
            cursor.execute(f"INSERT INTO {name} SELECT * FROM {name} WHERE 1 = 0")
    except Exception as exc:  # noqa: BLE001 - each driver raises its own family
        raise EventStoreNotWritableError(f"the event store refused a write to {table}: {exc}") from None


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
