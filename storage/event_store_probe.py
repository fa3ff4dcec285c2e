"""Is the event store writable? One rolled-back write, for a worker's readiness check.

A ``DELETE ... WHERE 1 = 0`` on the events table inside a transaction that is rolled
back: it changes nothing, yet the database must accept a write to run it (SQLite takes
its write lock; a read-only file, a ``mode=ro`` connection or a PostgreSQL standby refuse
it). Any recorder with a ``datastore`` and an ``events_table_name`` (eventsourcing's SQLite
and PostgreSQL recorders) can be probed.
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
    try:
        with datastore.transaction(commit=False) as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE 1 = 0")
    except Exception as exc:  # noqa: BLE001 - each driver raises its own family
        raise EventStoreNotWritableError(f"the event store refused a write to {table}: {exc}") from None
