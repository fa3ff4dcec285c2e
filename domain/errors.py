"""Errors the order domain raises. Each message names the order and what is wrong."""

from __future__ import annotations


class OrderError(Exception):
    """Base class of the order domain's errors."""


class OrderNotFoundError(OrderError, LookupError):
    def __init__(self, order_id: str):
        self.order_id = order_id
        super().__init__(f"order {order_id!r} does not exist")


class OrderConflictError(OrderError):
    """The order exists and the request contradicts it (another customer, a closed order)."""


class OrderClosedError(OrderError):
    """The order no longer accepts this change (it was submitted, fulfilled or cancelled)."""

    def __init__(self, order_id: str, status: str, action: str):
        self.order_id = order_id
        self.status = status
        super().__init__(f"order {order_id!r} is {status}: cannot {action}")


class EmptyOrderError(OrderError):
    """The order has no items, so there is nothing to submit."""

    def __init__(self, order_id: str):
        self.order_id = order_id
        super().__init__(f"order {order_id!r} has no items to submit")


class OrderLimitError(OrderError):
    """A batch would take the order's quantity or a per-currency total past the order
    bounds (``domain.limits``): recorded as a rejection, never as counters."""
