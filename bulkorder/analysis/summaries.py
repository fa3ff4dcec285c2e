"""The order summaries read model: one row per order, and per-SKU quantities per order.

Kept by :class:`bulkorder.analysis.projections.OrderSummaryProjection`. The per-order SKU table lets
the report leave cancelled orders out of the per-SKU totals without re-reading any batch.
The skipped-batches table lists each batch the projection could not count, and why.

Per-order values are bounded by the domain (``MAX_ORDER_QUANTITY``, ``MAX_ORDER_TOTAL``,
10**18, below the 64-bit columns' 9.2e18); sums *across* orders are not, so the report
never asks the database for one in a 64-bit integer: SQLite's ``SUM`` would fail with
"integer overflow". Each quantity is summed as two parts (``q / 10**9`` and
``q - (q / 10**9) * 10**9``, each sum far from overflowing) and recombined exactly in Python; SKUs are
ranked by ``TOTAL`` (a float) and the page re-sorted exactly, so only SKUs whose
totals differ by less than a float's precision (past 2**53) may rank in file order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Iterable, Mapping

from eventsourcing.persistence import Tracking

from bulkorder.domain.summary import OrderStatus
from bulkorder.analysis.read_model import OrderSummaryRow, SkuQuantity
from bulkorder.analysis.views import PostgresView, SQLiteView, SqlDialect

SUMMARY_VIEW = "OrderSummaries"
_ORDERS = "bulkorder_order_summaries"
_SKUS = "bulkorder_order_skus"
_SKIPPED = "bulkorder_skipped_batches"
_PART = 10**9
_COLUMNS = (
    "aggregate_id", "order_id", "customer_id", "status", "item_count", "batch_count", "quantity",
    "rejected_batches", "totals", "created_at", "submitted_at", "fulfilled_at", "cancelled_at", "version",
)
_TIMES = ("created_at", "submitted_at", "fulfilled_at", "cancelled_at")
_IN_CHUNK = 500


@dataclass(frozen=True)
class SkippedBatch:
    """A batch the summaries could not count: its order (aggregate ID, hex), its ID, the
    log position of its ``ItemsAdded``, and why."""

    aggregate_id: str
    batch_id: str
    position: int
    reason: str
    order_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"order_id": self.order_id, "batch_id": self.batch_id, "position": self.position, "reason": self.reason}


class SummariesSql(SqlDialect):
    table_names: ClassVar[tuple[str, ...]] = (_ORDERS, _SKUS, _SKIPPED)
    table_statements: ClassVar[tuple[str, ...]] = (
        f"CREATE TABLE IF NOT EXISTS {{{_ORDERS}}} (aggregate_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, "
        "customer_id TEXT NOT NULL, status TEXT NOT NULL, item_count BIGINT NOT NULL, batch_count BIGINT NOT NULL, "
        "quantity BIGINT NOT NULL, rejected_batches BIGINT NOT NULL, totals TEXT NOT NULL, created_at TEXT, "
        "submitted_at TEXT, fulfilled_at TEXT, cancelled_at TEXT, version BIGINT NOT NULL)",
        f"CREATE UNIQUE INDEX IF NOT EXISTS {_ORDERS}_order_id ON {{{_ORDERS}}} (order_id)",
        f"CREATE TABLE IF NOT EXISTS {{{_SKUS}}} (aggregate_id TEXT NOT NULL, sku TEXT NOT NULL, "
        "quantity BIGINT NOT NULL, lines BIGINT NOT NULL, PRIMARY KEY (aggregate_id, sku))",
        f"CREATE INDEX IF NOT EXISTS {_SKUS}_sku ON {{{_SKUS}}} (sku)",
        f"CREATE TABLE IF NOT EXISTS {{{_SKIPPED}}} (aggregate_id TEXT NOT NULL, batch_id TEXT NOT NULL, "
        "position BIGINT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (aggregate_id, batch_id))",
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
        *,
        skipped: Iterable[SkippedBatch] = (),
    ) -> None:
        """Write ``rows`` whole, add ``sku_deltas`` ``{(aggregate_id, sku): [quantity, lines]}``,
        list ``skipped`` batches, and track ``tracking`` - all or nothing, and only if the
        view is at ``expected``."""
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
        skipped_params = [(entry.aggregate_id, entry.batch_id, entry.position, entry.reason) for entry in skipped]
        insert_skipped = (
            f"INSERT INTO {{{_SKIPPED}}} (aggregate_id, batch_id, position, reason) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (aggregate_id, batch_id) DO NOTHING"
        )
        with self.write(expected, tracking) as cursor:
            if order_params:
                cursor.executemany(self.sql(upsert_order), order_params)
            if sku_params:
                cursor.executemany(self.sql(upsert_sku), sku_params)
            if skipped_params:
                cursor.executemany(self.sql(insert_skipped), skipped_params)

    def summaries(self, status: str | None = None) -> list[OrderSummaryRow]:
        where, params = ("WHERE status = %s", (status,)) if status else ("", ())
        return [_summary_of(row) for row in self.fetch(f"SELECT * FROM {{{_ORDERS}}} {where} ORDER BY order_id", params)]

    def summary(self, order_id: str) -> OrderSummaryRow | None:
        rows = self.fetch(f"SELECT * FROM {{{_ORDERS}}} WHERE order_id = %s", (order_id,))
        return _summary_of(rows[0]) if rows else None

    def sku_quantities(self, limit: int | None = None) -> list[SkuQuantity]:
        """Per SKU across every order that is not cancelled, largest quantity first
        (summed without overflow: see the module's notes)."""
        statement = (
            f"SELECT s.sku AS sku, SUM(s.quantity / {_PART}) AS high, SUM(s.quantity - (s.quantity / {_PART}) * {_PART}) AS low, "
            "SUM(s.lines) AS lines, COUNT(*) AS orders "
            f"FROM {{{_SKUS}}} s JOIN {{{_ORDERS}}} o ON o.aggregate_id = s.aggregate_id "
            "WHERE o.status <> %s GROUP BY s.sku ORDER BY SUM(s.quantity * 1.0) DESC, s.sku"
        )
        params: tuple[Any, ...] = (OrderStatus.CANCELLED,)
        if limit is not None:
            statement += " LIMIT %s"
            params += (limit,)
        skus = [
            SkuQuantity(
                sku=row["sku"],
                quantity=int(row["high"]) * _PART + int(row["low"]),
                lines=int(row["lines"]),
                orders=int(row["orders"]),
            )
            for row in self.fetch(statement, params)
        ]
        skus.sort(key=lambda sku: (-sku.quantity, sku.sku))
        return skus

    def skipped_batches(self) -> list[SkippedBatch]:
        """Every batch the projection skipped, with its order ID, in log order."""
        rows = self.fetch(
            f"SELECT k.aggregate_id AS aggregate_id, k.batch_id AS batch_id, k.position AS position, "
            f"k.reason AS reason, o.order_id AS order_id FROM {{{_SKIPPED}}} k "
            f"LEFT JOIN {{{_ORDERS}}} o ON o.aggregate_id = k.aggregate_id ORDER BY k.position, k.batch_id"
        )
        return [
            SkippedBatch(
                aggregate_id=row["aggregate_id"],
                batch_id=row["batch_id"],
                position=int(row["position"]),
                reason=row["reason"],
                order_id=row["order_id"] or "",
            )
            for row in rows
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
