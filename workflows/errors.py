"""Typed errors for callers of order workflows.

The workflow refuses requests with ``ApplicationError``s whose ``type`` says why
(``OrderAlreadyExists``, ``InvalidBatchRef``, ``OrderClosed``, ...). Callers get an
:class:`OrderRefusedError` carrying that type and the workflow's own message, of the
subclass for that reason: each is also the domain's class for it
(:mod:`bulkorder.domain.errors`), so ``except OrderClosedError`` catches a closed order whether
``OrderClient`` (a refusal) or ``OrderOutbox`` (the event store) said it.

As ``OSError(errno.ENOENT, ...)`` gives a ``FileNotFoundError``, constructing an
``OrderRefusedError`` with a known ``type`` gives that reason's subclass; any other type
stays a plain ``OrderRefusedError``.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

from bulkorder.domain.errors import (
    BulkorderError,
    FulfillmentFailedError,
    OrderAlreadyExistsError,
    OrderClosedError,
    OrderConflictError,
    OrderLimitError,
    OrderNotFoundError,
)
from bulkorder.domain.refs import InvalidRefError
from bulkorder.workflows.order_rules import FULFILLMENT_FAILED, INVALID_REF, ORDER_CLOSED, ORDER_EXISTS, ORDER_LIMIT


class OrderRefusedError(BulkorderError):
    """The order's workflow refused a request. ``type`` names the reason."""

    type: str
    order_id: str

    def __new__(cls, message: str, *, type: str, order_id: str) -> OrderRefusedError:  # noqa: A002 - the workflow's word
        if cls is OrderRefusedError:
            cls = _REFUSALS.get(type, OrderRefusedError)
        return super().__new__(cls, message)

    def __init__(self, message: str, *, type: str, order_id: str) -> None:  # noqa: A002
        # Not super().__init__: the domain base of a subclass takes other arguments.
        Exception.__init__(self, message)
        self.type = type
        self.order_id = order_id

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle as cls(*args); ours take keywords.
        return (_rebuild, (str(self), self.type, self.order_id))


def _rebuild(message: str, type: str, order_id: str) -> OrderRefusedError:  # noqa: A002
    return OrderRefusedError(message, type=type, order_id=order_id)


class OrderClosedRefusal(OrderRefusedError, OrderClosedError):
    """``OrderClosed``: the order no longer takes this change (or has nothing to submit).
    ``status`` is not known to the client: it is ``None``; the message says it."""

    status: str | None = None  # type: ignore[assignment]


class OrderAlreadyExistsRefusal(OrderRefusedError, OrderAlreadyExistsError):
    """``OrderAlreadyExists``: another order has this ID (open, or closed for good)."""


class OrderConflictRefusal(OrderRefusedError, OrderConflictError):
    """The event store found the request contradicts the order (recording failed)."""


class InvalidBatchRefRefusal(OrderRefusedError, InvalidRefError):
    """``InvalidBatchRef``: a ref the workflow will not take (shape, claims, proof)."""


class OrderLimitRefusal(OrderRefusedError, OrderLimitError):
    """``OrderLimitExceeded``: the batches would take the order past its bounds."""


class FulfillmentFailedRefusal(OrderRefusedError, FulfillmentFailedError):
    """``FulfillmentFailed``: the message is the recorded reason."""


class OrderNotFoundRefusal(OrderRefusedError, OrderNotFoundError):
    """The event store has no such order (recording failed)."""


#: The workflow's refusal types (bulkorder.workflows.order_rules) and the domain errors' class names
#: an activity failure carries (bulkorder.workflows.activity_errors), by the subclass raised.
_REFUSALS: dict[str, type[OrderRefusedError]] = {
    ORDER_CLOSED: OrderClosedRefusal,
    "OrderClosedError": OrderClosedRefusal,
    "EmptyOrderError": OrderClosedRefusal,
    ORDER_EXISTS: OrderAlreadyExistsRefusal,
    "OrderAlreadyExistsError": OrderAlreadyExistsRefusal,
    "OrderConflictError": OrderConflictRefusal,
    INVALID_REF: InvalidBatchRefRefusal,
    "InvalidRefError": InvalidBatchRefRefusal,
    ORDER_LIMIT: OrderLimitRefusal,
    "OrderLimitError": OrderLimitRefusal,
    FULFILLMENT_FAILED: FulfillmentFailedRefusal,
    "OrderNotFound": OrderNotFoundRefusal,
    "OrderNotFoundError": OrderNotFoundRefusal,
}


def refusal_from(err: WorkflowUpdateFailedError | WorkflowFailureError, order_id: str) -> OrderRefusedError:
    """The innermost ``ApplicationError`` of a failed update or workflow, as a refusal."""
    cause: BaseException | None = err.cause
    while isinstance(cause, (ActivityError,)) or (
        isinstance(cause, FailureError) and not isinstance(cause, ApplicationError) and cause.cause is not None
    ):
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return OrderRefusedError(cause.message, type=cause.type or "ApplicationError", order_id=order_id)
    return OrderRefusedError(f"order {order_id!r}: {cause or err}", type=type(cause or err).__name__, order_id=order_id)
