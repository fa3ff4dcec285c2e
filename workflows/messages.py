"""What travels between clients, the order workflow and its activities.

Plain dataclasses (standard library only, sandbox-safe) that Temporal's default converter
serialises. None of them ever holds an item: at most a bounded list of ``BatchRef``s.
"""

from dataclasses import dataclass, field

from bulkorder.domain.refs import BatchRef, ReportRef
from bulkorder.domain.summary import OrderStatus, OrderSummary, Rejection

# Names of the workflow's handlers and of the activities, shared by worker and clients.
RECORD_ACTIVITY = "record_order_change"
#: v1 fulfillment: fails on the first unreadable batch (kept for workflows started before v2).
FULFILL_ACTIVITY = "fulfill_order"
#: v2 fulfillment: reports unreadable batches as rejections instead of failing.
FULFILL_CHECKED_ACTIVITY = "fulfill_order_checked"
ADD_BATCHES = "add_batches"
SUBMIT = "submit"
CANCEL = "cancel"
#: Update: fulfill a failed order again once its cause is fixed.
RETRY_FULFILLMENT = "retry_fulfillment"
#: Query: the blob keys of the refs the workflow accepted and has not yet recorded
#: (garbage collection keeps them). A query records nothing: no patch needed.
PENDING_KEYS = "pending_keys"

#: Most refs one ``add_batches`` call may carry: keeps the call far below 2 MB.
MAX_REFS_PER_CALL = 1_000


@dataclass
class OrderLimits:
    """When a run continues-as-new, and how much work one activity call takes.

    Temporal's hard limits per run: 51,200 events / 50 MB of history, 10,000 signals,
    2,000 updates; it suggests continue-as-new at 4,096 events / 4 MiB. The defaults stay
    well inside those, leaving room for what arrives while a run hands over.
    """

    max_history_events: int = 2_000
    max_history_bytes: int = 2 * 1024 * 1024
    max_signals: int = 5_000
    max_updates: int = 1_000
    #: Refs recorded per activity call; ~300 bytes each, so ~150 KB of input.
    max_refs_per_record: int = 500
    #: Most unrecorded refs handed to the next run (~300 KB of continue-as-new input).
    max_carried_refs: int = 1_000
    #: Batches the fulfillment step reads from the blob store at once.
    fulfillment_concurrency: int = 4
    #: How long a failed order waits for an operator (``retry_fulfillment`` or
    #: ``cancel``) before its workflow ends as failed; its record stays "failed".
    failed_hold_seconds: int = 30 * 24 * 3600


@dataclass
class OrderState:
    """What one run hands to the next on continue-as-new. Compact by construction:
    counters, a status, and only the refs accepted but not yet recorded."""

    order_id: str
    customer_id: str
    status: str = OrderStatus.OPEN
    created: bool = False
    #: Counters as last recorded in the event store (authoritative for recorded batches).
    recorded: OrderSummary | None = None
    pending: list[BatchRef] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    submit_requested: bool = False
    cancel_reason: str | None = None
    runs: int = 1
    duplicates_ignored: int = 0
    invalid_refs: int = 0
    #: DB-first order: the service records its changes, the relay signals them here.
    via_outbox: bool = False
    #: Refs signalled after recording closed (fulfillment under way, or done): ignored.
    late_refs_ignored: int = 0


@dataclass
class OrderInput:
    """Workflow input. ``state`` is set only when a run continues as new."""

    order_id: str
    customer_id: str
    limits: OrderLimits = field(default_factory=OrderLimits)
    #: True when started by ``create`` (Update-With-Start): the run records nothing unless
    #: that update was accepted, so a refused create leaves no order behind.
    create_via_update: bool = True
    state: OrderState | None = None
    #: Started by the relay for a DB-first order (see ``OrderState.via_outbox``).
    via_outbox: bool = False


@dataclass
class CreateRequest:
    """The ``create`` update: opens the order, optionally with its first batches."""

    refs: list[BatchRef] = field(default_factory=list)


@dataclass
class AddBatchesResult:
    """Answer to the ``add_batches`` update."""

    accepted: list[str]
    duplicates: list[str]
    summary: OrderSummary


@dataclass
class FulfillRequest:
    order_id: str
    #: The counters the event store recorded at submit; fulfillment checks it read them all.
    expected_items: int
    expected_batches: int
    #: Read only events up to this aggregate version (the ``Submitted`` event).
    up_to_version: int
    concurrency: int = 4


@dataclass
class FulfillmentResult:
    """What v2 fulfillment found: the report over every readable batch, and the batches it
    could not read (gone, corrupt, undecodable), each with its reason. ``report`` is None
    when no batch could be read."""

    report: ReportRef | None
    rejections: list[Rejection] = field(default_factory=list)


@dataclass
class OrderStats:
    """How the workflow itself is doing (the ``stats`` query): runs, history, messages."""

    runs: int
    history_events: int
    history_bytes: int
    signals_this_run: int
    updates_this_run: int
    pending_batches: int
    duplicates_ignored: int
    invalid_refs: int
