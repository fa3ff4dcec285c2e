"""What an order looks like from outside: its status and running counters.

Plain dataclasses (standard library only): the workflow returns them from queries and
updates, the event store builds them from the ``Order`` aggregate, the CLI prints them.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

from domain.refs import BatchRef, ReportRef


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Rejection:
    """A batch the order refused, recorded as a ``BatchRejected`` event (never dropped)."""

    batch_id: str
    reason: str
    key: str = ""
    #: An added batch that fulfillment could not read, and how many items it held.
    at_fulfillment: bool = False
    item_count: int = 0


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
    #: Recorded by a DB-first service: the relay forwards these events to the workflow.
    via_outbox: bool = False


@dataclass
class RecordOutcome:
    """What the event store did with an :class:`OrderChange`."""

    summary: OrderSummary
    new_events: int
    applied_batch_ids: list[str] = field(default_factory=list)
    duplicate_batch_ids: list[str] = field(default_factory=list)
