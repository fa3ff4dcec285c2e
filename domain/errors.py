"""Errors the order domain raises. Each message names the order and what is wrong.

They are the family users catch, whichever way a request went: the event store raises
them directly (the orders application, ``OrderOutbox``), and ``OrderClient`` raises its
workflow's refusals as classes that are both :class:`~bulkorder.workflows.errors.OrderRefusedError`
and the matching class here, so ``except OrderClosedError`` catches a closed order from
either side.
"""

from __future__ import annotations

from bulkorder.domain.status import OrderStatus


class BulkorderError(Exception):
    """Base class of every error bulkorder raises on purpose (``except BulkorderError``)."""


class OrderError(BulkorderError):
    """Base class of the order domain's errors."""


class OrderNotFoundError(OrderError, LookupError):
    def __init__(self, order_id: str):
        self.order_id = order_id
        super().__init__(f"order {order_id!r} does not exist")


class OrderConflictError(OrderError):
    """The order exists and the request contradicts it (another customer, a closed order)."""


class OrderAlreadyExistsError(OrderConflictError):
    """An order with this ID exists already: another customer's (the event store, the
    outbox), or any closed one (``OrderClient.create``: an ID is never reused)."""


class OrderClosedError(OrderError):
    """The order no longer accepts this change (it was submitted, fulfilled or cancelled)."""

    def __init__(self, order_id: str, status: str, action: str):
        self.order_id = order_id
        self.status = status
        super().__init__(f"order {order_id!r} is {status}: cannot {action}")


class EmptyOrderError(OrderClosedError):
    """The order has no items, so there is nothing to submit.

    An :class:`OrderClosedError` too: the order's workflow refuses the same submit as
    ``OrderClosed``, so one ``except OrderClosedError`` serves both ways of submitting."""

    def __init__(self, order_id: str):
        self.order_id = order_id
        self.status = OrderStatus.OPEN
        OrderError.__init__(self, f"order {order_id!r} has no items to submit")


class OrderErasedError(OrderClosedError):
    """The order was erased (the right to be forgotten): nothing more is recorded on it,
    and its items are gone for good."""

    def __init__(self, order_id: str, erased_at: object, action: str):
        self.order_id = order_id
        self.status = "erased"
        self.erased_at = erased_at
        OrderError.__init__(self, f"order {order_id!r} was erased at {erased_at}: cannot {action}")


class ItemsPurgedError(OrderError, LookupError):
    """The order's items were deleted (retention or erasure): its events and counters
    remain, its items cannot be read any more."""

    def __init__(self, order_id: str, purged_at: object, erased: bool = False):
        self.order_id = order_id
        self.purged_at = purged_at
        self.erased = erased
        how = "erased" if erased else "purged by retention"
        super().__init__(f"order {order_id!r}: its items were {how} at {purged_at}; they cannot be read any more")


class OrderLimitError(OrderError):
    """A batch would take the order's quantity or a per-currency total past the order
    bounds (``bulkorder.domain.limits``): recorded as a rejection, never as counters."""


class FulfillmentFailedError(OrderError):
    """The order's fulfillment failed; the message is the recorded reason. The order waits
    for ``retry_fulfillment`` or ``cancel`` (raised by ``OrderClient.wait_closed``)."""
