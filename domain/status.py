"""An order's statuses, by name (standard library only: every module may import it)."""

from __future__ import annotations


class OrderStatus:
    """Lifecycle of an order. Strings, so they read well in JSON and in Temporal's UI."""

    OPEN = "open"
    SUBMITTED = "submitted"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"
    #: Fulfillment met an error no retry can fix (recorded as ``FulfillmentFailed``).
    FAILED = "failed"
    #: Only for workflows whose create request was refused: no order was recorded.
    REJECTED = "rejected"

    CLOSED = frozenset({FULFILLED, CANCELLED, FAILED, REJECTED})
