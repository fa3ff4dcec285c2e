"""What the :class:`~bulkorder.analysis.analyst.Analyst` hands back: an order's state at a
version, an export's end, a report of the read models."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bulkorder.analysis.read_model import OrderSummaryRow, SkuQuantity
from bulkorder.analysis.summaries import SkippedBatch
from bulkorder.domain.summary import OrderSummary


@dataclass
class OrderState:
    """An order as it was at one version: its counters and when things happened."""

    summary: OrderSummary
    version: int
    #: When the event of this version was recorded.
    as_of: datetime
    created_at: datetime
    submitted_at: datetime | None
    closed_at: datetime | None
    cancel_reason: str | None
    #: When retention or erasure deleted the order's items (as the order is now, whatever
    #: the version shown: the blobs are gone for every version).
    items_purged_at: datetime | None = None
    erased_at: datetime | None = None
    erased_by: str | None = None
    erasure_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = self.summary.to_dict()
        data.pop("pending_batches", None)  # a workflow notion; the event store has none
        for name in ("as_of", "created_at", "submitted_at", "closed_at", "items_purged_at", "erased_at"):
            value = getattr(self, name)
            data[name] = value.isoformat() if value is not None else None
        data["cancel_reason"] = self.cancel_reason
        data["erased_by"] = self.erased_by
        data["erasure_reason"] = self.erasure_reason
        return data


@dataclass
class ExportResult:
    events: int
    #: Position of the last event written (resume with ``since=last_position``).
    last_position: int


@dataclass
class Report:
    orders: list[OrderSummaryRow]
    skus: list[SkuQuantity]
    #: Log position the read model reflects, and the log's last position when read.
    position: int
    log_position: int
    #: Batches the summaries could not count (unreadable, or past the bounds), and why.
    skipped: list[SkippedBatch] = field(default_factory=list)

    def skipped_by_order(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.skipped:
            counts[entry.order_id] = counts.get(entry.order_id, 0) + 1
        return counts

