"""What an order looks like from outside: its status and running counters.

Plain dataclasses (standard library only): the workflow returns them from queries and
updates, the event store builds them from the ``Order`` aggregate, the CLI prints them.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

from bulkorder.domain.refs import BatchRef, ReportRef
from bulkorder.domain.status import OrderStatus  # noqa: F401 - its home is domain/status.py; imported from here too


@dataclass
class OrderSummary:
    """Counters of one order. Never holds items or refs, so it stays a few hundred bytes."""

    order_id: str
    customer_id: str
    status: str = OrderStatus.OPEN
    item_count: int = 0
    batch_count: int = 0
    quantity: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    rejected_batches: int = 0
    #: Items of added batches that fulfillment could not read (see ``Rejection``).
    rejected_items: int = 0
    #: Event-store version of the ``Order`` aggregate the counters were read from.
    version: int = 0
    #: Batches the workflow accepted that are not yet in the event store (see counters).
    pending_batches: int = 0
    report: ReportRef | None = None
    #: Why fulfillment failed (status "failed": the order waits for ``retry`` or ``cancel``).
    failure_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: ``BatchRejected.code`` values: why a batch was refused, for counting without parsing text.
REJECTED_ORDER_CLOSED = "order_closed"
REJECTED_INVALID_REF = "invalid_ref"
REJECTED_OTHER = "other"
#: A batch the order had added that fulfillment could not read (``at_fulfillment``).
REJECTED_UNREADABLE = "unreadable"
#: A ref whose claims (items, quantity, totals) were neither sealed nor borne out by its blob.
REJECTED_UNPROVEN = "unproven"
#: A batch that would take the order's quantity or a total past the order bounds.
REJECTED_ORDER_LIMIT = "order_limit"
#: A batch the event store could not record for a reason no retry fixes.
REJECTED_UNRECORDABLE = "unrecordable"
REJECTION_CODES = frozenset(
    {REJECTED_ORDER_CLOSED, REJECTED_INVALID_REF, REJECTED_OTHER, REJECTED_UNREADABLE, REJECTED_UNPROVEN,
     REJECTED_ORDER_LIMIT, REJECTED_UNRECORDABLE}
)


def rejection_code(reason: str) -> str:
    """The code of a rejection reason, as the workflow words them (see ``_refusal`` there):
    for rejections recorded without a code (``BatchRejected`` v1, callers that give none)."""
    if reason.startswith("order is "):
        return REJECTED_ORDER_CLOSED
    if reason.startswith("invalid batch ref"):
        return REJECTED_INVALID_REF
    return REJECTED_OTHER


@dataclass(frozen=True)
class Rejection:
    """A batch the order refused, recorded as a ``BatchRejected`` event (never dropped)."""

    batch_id: str
    reason: str
    key: str = ""
    #: An added batch that fulfillment could not read, and how many items it held.
    at_fulfillment: bool = False
    item_count: int = 0
    #: Why, for counting without parsing text (``bulkorder.domain.order.REJECTED_*``); empty on
    #: rejections made before codes travelled with them (the reason's wording decides).
    code: str = ""


@dataclass
class OrderChange:
    """Everything one call to the event store should record for an order, applied at once.

    Applying the same change twice records it once: batch IDs and the order's status make
    repeats detectable (this is what makes the recording activity idempotent).
    """

    order_id: str
    customer_id: str = ""
    create: bool = False
    batches: list[BatchRef] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    submit: bool = False
    cancel_reason: str | None = None
    report: ReportRef | None = None
    #: Fulfillment failed for good: close the order as failed with this reason.
    fulfillment_failure: str | None = None
    #: An operator retries the fulfillment of a failed order (after fixing the cause).
    retry_fulfillment: str | None = None
    #: Recorded by a DB-first service: the relay forwards these events to the workflow.
    via_outbox: bool = False
    #: With ``create``: the request (``bulkorder.domain.identity.request_digest``), its initial batch
    #: IDs and the caller's idempotency key. An order that exists with the same digest is
    #: this request's retry (nothing recorded); another digest is a conflict.
    request_digest: str = ""
    initial_batch_ids: list[str] = field(default_factory=list)
    idempotency_key: str = ""


@dataclass
class RecordOutcome:
    """What the event store did with an :class:`OrderChange`."""

    summary: OrderSummary
    new_events: int
    applied_batch_ids: list[str] = field(default_factory=list)
    duplicate_batch_ids: list[str] = field(default_factory=list)
    #: Refs the worker rejected because their claims were not proven (their IDs are free).
    unproven_batch_ids: list[str] = field(default_factory=list)
    #: A create found the order already recorded with the same request (a retry, e.g.
    #: after its workflow closed or its history was deleted): nothing was recorded.
    existing: bool = False
