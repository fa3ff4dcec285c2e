"""Read-model tables beside the event store, updated atomically with a tracking record.

A *view* is an eventsourcing tracking recorder (:class:`~eventsourcing.sqlite.
SQLiteTrackingRecorder` or :class:`~eventsourcing.postgres.PostgresTrackingRecorder`)
extended with its own tables. Every write to a view happens in one transaction with the
tracking record of the last notification it reflects, and only if the view is still where
the writer read it (``expected``): so a projection stopped anywhere resumes exactly after
the last event it committed, and two runners never apply the same event twice.

Each view writes its SQL once, with ``%s`` placeholders and ``{name}`` table names;
:class:`SqlDialect` adapts both to SQLite or PostgreSQL. Views open on the event store's
own settings (:func:`open_view`), in the same database.
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import contextmanager
from functools import cache
from typing import Any, ClassVar, Iterator, Sequence

from eventsourcing.persistence import InfrastructureFactory, IntegrityError, Tracking, TrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder
from eventsourcing.utils import Environment

from bulkorder.storage.errors import StorageError
from bulkorder.storage.config import APP_PREFIX, POSTGRES_MODULE, SQLITE_MODULE, EventStoreConfig


class ViewMovedError(IntegrityError):
    """The view was updated by someone else since this writer read it: re-read and retry."""


class UnsupportedStoreError(StorageError, ValueError):
    """The event store is not one the read models can live in (SQLite or PostgreSQL)."""


class SqlDialect:
    """What differs between the SQLite and PostgreSQL versions of a view."""

    #: Names of the view's tables, as used in ``{name}`` fields of its statements.
    table_names: ClassVar[tuple[str, ...]] = ()
    #: ``CREATE TABLE``/``CREATE INDEX`` statements, with ``{name}`` fields.
    table_statements: ClassVar[tuple[str, ...]] = ()
    application_name: ClassVar[str] = "Orders"

    @abstractmethod
    def sql(self, statement: str) -> str:
        """``statement`` with real table names and this database's placeholders."""

    @abstractmethod
    def qualified_tracking_table(self) -> str:
        """The name of the view's tracking table, as it appears in statements."""

    def _lock_for_write(self, cursor: Any) -> None:
        """Serialise this view's writers, where the database needs telling."""

    @contextmanager
    def write(self, expected: int | None, tracking: Tracking) -> Iterator[Any]:
        """A transaction that records ``tracking`` at its end, if the view is at ``expected``."""
        with self.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
            self._lock_for_write(cursor)
            self._check_expected(cursor, expected, tracking)
            yield cursor
            self._insert_tracking(cursor, tracking)  # type: ignore[attr-defined]

    @contextmanager
    def read(self) -> Iterator[Any]:
        with self.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
            yield cursor

    def _check_expected(self, cursor: Any, expected: int | None, tracking: Tracking) -> None:
        current = self._max_tracking_id(tracking.application_name, cursor)  # type: ignore[attr-defined]
        if current != expected:
            raise ViewMovedError(
                f"{type(self).__name__}: expected the view at position {expected}, found it at {current}"
            )

    def reset(self) -> None:
        """Empty the view's tables and forget its position: the next run rebuilds it from
        the start of the log (after a change to what the projection computes)."""
        with self.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
            for name in self.table_names:
                cursor.execute(self.sql(f"DELETE FROM {{{name}}}"))
            cursor.execute(
                self.sql(f"DELETE FROM {self.qualified_tracking_table()} WHERE application_name = %s"),
                (self.application_name,),
            )

    def fetch(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.read() as cursor:
            cursor.execute(self.sql(statement), params)
            return list(cursor.fetchall())


class SQLiteView(SqlDialect, SQLiteTrackingRecorder):
    """A view in the event store's SQLite file, with a tracking table of its own.

    eventsourcing's SQLite tracking table is one per database (``tracking``); two views
    tracking the same application there would share one row, so each view here names its
    own (``<view>_tracking``, as eventsourcing's PostgreSQL factory does).
    """

    tracking_table: ClassVar[str] = "view_tracking"

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        if not self.datastore.single_row_tracking:
            raise ValueError(f"{type(self).__name__} needs single-row tracking (SINGLE_ROW_TRACKING unset or true)")
        table = self.tracking_table
        self.insert_tracking_statement = (
            f"INSERT INTO {table} VALUES (:application_name, :notification_id) "
            "ON CONFLICT (application_name) DO UPDATE SET notification_id = :notification_id "
            f"WHERE {table}.notification_id < :notification_id RETURNING notification_id"
        )
        self.select_max_tracking_id_statement = f"SELECT MAX(notification_id) FROM {table} WHERE application_name=?"

    def construct_create_table_statements(self) -> list[str]:
        return [
            f"CREATE TABLE IF NOT EXISTS {self.tracking_table} (application_name TEXT, "
            "notification_id INTEGER, PRIMARY KEY (application_name)) WITHOUT ROWID",
            *(self.sql(statement) for statement in self.table_statements),
        ]

    def sql(self, statement: str) -> str:
        return statement.format(**{name: name for name in self.table_names}).replace("%s", "?")

    def qualified_tracking_table(self) -> str:
        return self.tracking_table

    def _lock_for_write(self, cursor: Any) -> None:
        # eventsourcing begins with a plain (deferred) BEGIN: take the write lock before the
        # first read, so a second writer waits (SQLITE_LOCK_TIMEOUT) instead of failing to
        # upgrade its read snapshot with "database is locked".
        cursor.execute(f"UPDATE {self.tracking_table} SET notification_id = notification_id WHERE 0")


class PostgresView(SqlDialect):
    """A view in the event store's PostgreSQL schema; its tracking table is ``<view>_tracking``.

    :func:`open_view` joins it with eventsourcing's ``PostgresTrackingRecorder``, so psycopg
    (the ``postgres`` extra) is imported only when the event store is PostgreSQL."""

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        from psycopg.sql import SQL

        super().__init__(datastore, **kwargs)
        for statement in self.table_statements:
            self.sql_create_statements.append(SQL(self.sql(statement)))  # type: ignore[arg-type]

    def _qualified(self, name: str) -> str:
        return f'"{self.datastore.schema.replace(chr(34), chr(34) * 2)}"."{name}"'

    def sql(self, statement: str) -> str:
        return statement.format(**{name: self._qualified(name) for name in self.table_names})

    def qualified_tracking_table(self) -> str:
        return self._qualified(self.tracking_table_name)

    def _lock_for_write(self, cursor: Any) -> None:
        # One writer at a time per view; readers are not blocked.
        cursor.execute(f"LOCK TABLE {self.qualified_tracking_table()} IN SHARE ROW EXCLUSIVE MODE")


class OpenedView:
    """A view and the infrastructure factory (connection pool) it came from."""

    def __init__(self, factory: InfrastructureFactory[Any], view: TrackingRecorder) -> None:
        self.factory = factory
        self.view = view

    def close(self) -> None:
        self.factory.close()


def open_view(
    config: EventStoreConfig, name: str, sqlite_class: type[SQLiteView], postgres_class: type[PostgresView]
) -> OpenedView:
    """Open (creating its tables if needed) the view ``name`` in the event store's database."""
    module = config.persistence_module
    if module == SQLITE_MODULE:
        view_class: type[Any] = sqlite_class
    elif module == POSTGRES_MODULE:
        view_class = _on_postgres(postgres_class)
    else:
        raise UnsupportedStoreError(
            f"read models need the event store in SQLite or PostgreSQL, not {module} ({config.describe()})"
        )
    factory: InfrastructureFactory[Any] = InfrastructureFactory.construct(Environment(name, _unprefixed(config)))
    return OpenedView(factory, factory.tracking_recorder(view_class))


@cache
def _on_postgres(view_class: type[PostgresView]) -> type[Any]:
    from eventsourcing.postgres import PostgresTrackingRecorder  # psycopg: the postgres extra

    return type(view_class.__name__, (view_class, PostgresTrackingRecorder), {"__module__": view_class.__module__})


def _unprefixed(config: EventStoreConfig) -> dict[str, str]:
    """The event store's variables without the application prefix (the prefixed value wins),
    so a view reads exactly the database settings the ``Orders`` application reads."""
    env = {name: value for name, value in config.variables if not name.startswith(APP_PREFIX)}
    env.update((name[len(APP_PREFIX) :], value) for name, value in config.variables if name.startswith(APP_PREFIX))
    return env
