"""The order summaries read model: one row per order, and per-SKU quantities per order.

Kept by :class:`storage.projections.OrderSummaryProjection`. The per-order SKU table lets
the report leave cancelled orders out of the per-SKU totals without re-reading any batch.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, ClassVar, Iterable, Mapping

from eventsourcing.persistence import Tracking

from domain.read_model import OrderSummaryRow, SkuQuantity
from domain.summary import OrderStatus
from storage.views import PostgresView, SQLiteView, SqlDialect

SUMMARY_VIEW = "OrderSummaries"
_ORDERS = "bulkorder_order_summaries"
_SKUS = "bulkorder_order_skus"
_COLUMNS = (
    "aggregate_id", "order_id", "customer_id", "status", "item_count", "batch_count", "quantity",
    "rejected_batches", "totals", "created_at", "submitted_at", "fulfilled_at", "cancelled_at", "version",
)
_TIMES = ("created_at", "submitted_at", "fulfilled_at", "cancelled_at")
_IN_CHUNK = 500


class SummariesSql(SqlDialect):
    table_names: ClassVar[tuple[str, ...]] = (_ORDERS, _SKUS)
    table_statements: ClassVar[tuple[str, ...]] = (
        f"CREATE TABLE IF NOT EXISTS {{{_ORDERS}}} (aggregate_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, "
        "customer_id TEXT NOT NULL, status TEXT NOT NULL, item_count BIGINT NOT NULL, batch_count BIGINT NOT NULL, "
        "quantity BIGINT NOT NULL, rejected_batches BIGINT NOT NULL, totals TEXT NOT NULL, created_at TEXT, "
        "submitted_at TEXT, fulfilled_at TEXT, cancelled_at TEXT, version BIGINT NOT NULL)",
        f"CREATE UNIQUE INDEX IF NOT EXISTS {_ORDERS}_order_id ON {{{_ORDERS}}} (order_id)",
        f"CREATE TABLE IF NOT EXISTS {{{_SKUS}}} (aggregate_id TEXT NOT NULL, sku TEXT NOT NULL, "
        "quantity BIGINT NOT NULL, lines BIGINT NOT NULL, PRIMARY KEY (aggregate_id, sku))",
        f"CREATE INDEX IF NOT EXISTS {_SKUS}_sku ON {{{_SKUS}}} (sku)",
    )

    def load(self, aggregate_ids: Iterable[str]) -> dict[str, OrderSummaryRow]:
        """The rows of these orders that exist, by aggregate ID (hex)."""
        ids = list(dict.fromkeys(aggregate_ids))
        found: dict[str, OrderSummaryRow] = {}
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            marks = ", ".join(["%s"] * len(chunk))
            for row in self.fetch(f"SELECT * FROM {{{_ORDERS}}} WHERE aggregate_id IN ({marks})", chunk):
                summary = _summary_of(row)
                found[summary.aggregate_id] = summary
        return found

    def save(
        self,
        rows: Iterable[OrderSummaryRow],
        sku_deltas: Mapping[tuple[str, str], list[int]],
        expected: int | None,
        tracking: Tracking,
    ) -> None:
        """Write ``rows`` whole, add ``sku_deltas`` ``{(aggregate_id, sku): [quantity, lines]}``,
        and track ``tracking`` - all or nothing, and only if the view is at ``expected``."""
        names = ", ".join(_COLUMNS)
        marks = ", ".join(["%s"] * len(_COLUMNS))
        updates = ", ".join(f"{name} = excluded.{name}" for name in _COLUMNS[1:])
        upsert_order = (
            f"INSERT INTO {{{_ORDERS}}} ({names}) VALUES ({marks}) ON CONFLICT (aggregate_id) DO UPDATE SET {updates}"
        )
        upsert_sku = (
            f"INSERT INTO {{{_SKUS}}} AS s (aggregate_id, sku, quantity, lines) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (aggregate_id, sku) DO UPDATE SET quantity = s.quantity + excluded.quantity, "
            "lines = s.lines + excluded.lines"
        )
        order_params = [_params_of(row) for row in rows]
        sku_params = [(agg, sku, q, lines) for (agg, sku), (q, lines) in sorted(sku_deltas.items())]
        with self.write(expected, tracking) as cursor:
            if order_params:
                cursor.executemany(self.sql(upsert_order), order_params)
            if sku_params:
                cursor.executemany(self.sql(upsert_sku), sku_params)

    def summaries(self, status: str | None = None) -> list[OrderSummaryRow]:
        where, params = ("WHERE status = %s", (status,)) if status else ("", ())
        return [_summary_of(row) for row in self.fetch(f"SELECT * FROM {{{_ORDERS}}} {where} ORDER BY order_id", params)]

    def summary(self, order_id: str) -> OrderSummaryRow | None:
        rows = self.fetch(f"SELECT * FROM {{{_ORDERS}}} WHERE order_id = %s", (order_id,))
        return _summary_of(rows[0]) if rows else None

    def sku_quantities(self, limit: int | None = None) -> list[SkuQuantity]:
        """Per SKU across every order that is not cancelled, largest quantity first."""
        statement = (
            f"SELECT s.sku AS sku, SUM(s.quantity) AS quantity, SUM(s.lines) AS lines, COUNT(*) AS orders "
            f"FROM {{{_SKUS}}} s JOIN {{{_ORDERS}}} o ON o.aggregate_id = s.aggregate_id "
            "WHERE o.status <> %s GROUP BY s.sku ORDER BY SUM(s.quantity) DESC, s.sku"
        )
        params: tuple[Any, ...] = (OrderStatus.CANCELLED,)
        if limit is not None:
            statement += " LIMIT %s"
            params += (limit,)
        return [
            SkuQuantity(sku=row["sku"], quantity=int(row["quantity"]), lines=int(row["lines"]), orders=int(row["orders"]))
            for row in self.fetch(statement, params)
        ]

    def position(self) -> int:
        """The last notification this read model reflects (0 before the first)."""
        return int(self.max_tracking_id(self.application_name) or 0)  # type: ignore[attr-defined]


class SQLiteSummaries(SummariesSql, SQLiteView):
    tracking_table: ClassVar[str] = "ordersummaries_tracking"


class PostgresSummaries(SummariesSql, PostgresView):
    pass


def _params_of(row: OrderSummaryRow) -> tuple[Any, ...]:
    values = []
    for name in _COLUMNS:
        value = getattr(row, name)
        if name == "totals":
            value = json.dumps(value, sort_keys=True)
        elif name in _TIMES and value is not None:
            value = value.isoformat()
        values.append(value)
    return tuple(values)


def _summary_of(row: Any) -> OrderSummaryRow:
    values = {name: row[name] for name in _COLUMNS}
    values["totals"] = json.loads(values["totals"])
    for name in _TIMES:
        if values[name] is not None:
            values[name] = datetime.fromisoformat(values[name])
    for name in ("item_count", "batch_count", "quantity", "rejected_batches", "version"):
        values[name] = int(values[name])
    return OrderSummaryRow(**values)
