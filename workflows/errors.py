"""Typed errors for callers of order workflows.

The workflow refuses requests with ``ApplicationError``s whose ``type`` says why
(``OrderAlreadyExists``, ``InvalidBatchRef``, ``OrderClosed``, ...). Callers get one
exception class carrying that type and the workflow's own message.
"""

from __future__ import annotations

from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ActivityError, ApplicationError, FailureError


class OrderRefusedError(Exception):
    """The order's workflow refused a request. ``type`` names the reason."""

    def __init__(self, message: str, *, type: str, order_id: str) -> None:
        super().__init__(message)
        self.type = type
        self.order_id = order_id


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
