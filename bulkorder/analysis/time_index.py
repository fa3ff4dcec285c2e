"""The time index: (order, version, instant) for every event, so "the order as it was at
time T" is one indexed lookup instead of a scan of the order's events.

Kept by :class:`bulkorder.analysis.projections.TimeIndexProjection` (one row per event, committed
with its tracking record); instants are microseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

from eventsourcing.persistence import Tracking

from bulkorder.analysis.history import to_micros
from bulkorder.analysis.views import PostgresView, SQLiteView, SqlDialect

TIME_INDEX_VIEW = "OrderTimeIndex"
_TABLE = "bulkorder_order_times"


class TimeIndexSql(SqlDialect):
    table_names: ClassVar[tuple[str, ...]] = (_TABLE,)
    table_statements: ClassVar[tuple[str, ...]] = (
        f"CREATE TABLE IF NOT EXISTS {{{_TABLE}}} (aggregate_id TEXT NOT NULL, version BIGINT NOT NULL, "
        "at_us BIGINT NOT NULL, PRIMARY KEY (aggregate_id, version))",
        f"CREATE INDEX IF NOT EXISTS {_TABLE}_at ON {{{_TABLE}}} (aggregate_id, at_us)",
    )

    def record(self, rows: Sequence[tuple[str, int, int]], expected: int | None, tracking: Tracking) -> None:
        """Add ``(aggregate_id hex, version, at_us)`` rows, then track ``tracking``."""
        with self.write(expected, tracking) as cursor:
            if rows:
                cursor.executemany(self.sql(f"INSERT INTO {{{_TABLE}}} VALUES (%s, %s, %s)"), rows)

    def version_at(self, aggregate_id: str, at_us: int) -> int | None:
        """The version of the last event recorded at or before ``at_us``, if any."""
        rows = self.fetch(
            f"SELECT version FROM {{{_TABLE}}} WHERE aggregate_id = %s AND at_us <= %s "
            "ORDER BY at_us DESC, version DESC LIMIT 1",
            (aggregate_id, at_us),
        )
        return int(rows[0]["version"]) if rows else None

    def first(self, aggregate_id: str) -> tuple[int, int] | None:
        """``(version, at_us)`` of the order's first indexed event, if any."""
        rows = self.fetch(
            f"SELECT version, at_us FROM {{{_TABLE}}} WHERE aggregate_id = %s ORDER BY version LIMIT 1",
            (aggregate_id,),
        )
        return (int(rows[0]["version"]), int(rows[0]["at_us"])) if rows else None

    def position(self) -> int:
        """The last notification this index reflects (0 before the first)."""
        return int(self.max_tracking_id(self.application_name) or 0)  # type: ignore[attr-defined]


class SQLiteTimeIndex(TimeIndexSql, SQLiteView):
    tracking_table: ClassVar[str] = "ordertimeindex_tracking"


class PostgresTimeIndex(TimeIndexSql, PostgresView):
    pass


def row_of(event: Any) -> tuple[str, int, int]:
    """The index row of one ``Order`` event."""
    return (event.originator_id.hex, event.originator_version, to_micros(event.timestamp))
