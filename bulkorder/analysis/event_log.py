"""The orders' event log read in notification order, decoded, for export.

A *position* is an event's notification ID: its place in the application's log (SQLite
rowid, PostgreSQL ``notification_id``). Positions only grow, so "everything after
position P" is a stable, resumable cursor.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from bulkorder.domain.application import Orders
from bulkorder.domain.order import Order
from bulkorder.analysis.history import event_document


class EventLog:
    """Pages of the log as JSON-ready documents (:func:`bulkorder.analysis.history.event_document`)."""

    def __init__(self, orders: Orders, *, page_size: int = 1_000) -> None:
        self.orders = orders
        self.page_size = page_size
        # aggregate ID -> order ID; only Created events carry the order ID.
        self._order_ids: dict[UUID, str] = {}

    def last_position(self) -> int:
        return int(self.orders.recorder.max_notification_id() or 0)

    def page(self, after: int, until: int | None = None) -> list[dict[str, Any]]:
        """Up to ``page_size`` events with ``after < position <= until``, in order."""
        return [event_document(event, position, order_id) for position, event, order_id in self.page_events(after, until)]

    def page_events(self, after: int, until: int | None = None) -> list[tuple[int, Any, str]]:
        """Like :meth:`page`, as ``(position, domain event, order ID)``."""
        notifications = self.orders.recorder.select_notifications(
            start=after, limit=self.page_size, stop=until, inclusive_of_start=False
        )
        to_domain_event = self.orders.mapper.to_domain_event
        events = []
        for notification in notifications:
            event = to_domain_event(notification)
            events.append((notification.id, event, self._order_id(event)))
        return events

    def _order_id(self, event: Any) -> str:
        if isinstance(event, Order.Created):
            self._order_ids[event.originator_id] = event.order_id
            return str(event.order_id)
        order_id = self._order_ids.get(event.originator_id)
        if order_id is None:
            created = next(iter(self.orders.events.get(event.originator_id, lte=1)), None)
            order_id = str(getattr(created, "order_id", "")) or str(event.originator_id)
            if len(self._order_ids) > 100_000:  # bounded memory over a long --follow
                self._order_ids.clear()
            self._order_ids[event.originator_id] = order_id
        return order_id
