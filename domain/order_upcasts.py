"""Events and snapshots stored in older shapes, read as today's ``Order``.

eventsourcing's mapper calls ``<Event>.upcast_vN_vN+1(state)`` on the stored state of an
event older than its class's ``class_version``, step by step, as the event is read;
nothing in the store is rewritten, so streams recorded years ago stay readable. The event
classes stay in :mod:`bulkorder.domain.order` (their stored topic names that module) and
bind these functions as their upcasters; each event's docstring says what its versions
added. Pure functions of the state dict, standard library only.

A snapshot is read back differently: eventsourcing sets the stored state as the
aggregate's ``__dict__`` without calling ``__init__``, so an attribute added since the
snapshot was taken is missing from it, and ``Order`` finds it as a class-level default
in :class:`OrderSnapshotDefaults`, its base class.
"""

from __future__ import annotations

from datetime import datetime

from bulkorder.domain.summary import rejection_code


class OrderSnapshotDefaults:
    """What an ``Order`` rebuilt from an older snapshot has for attributes added since
    (or set only by events it had not had): every such attribute, with its default."""

    items_purged_at: datetime | None = None
    erased_at: datetime | None = None
    erased_by: str | None = None
    erasure_reason: str | None = None
    via_outbox: bool = False
    rejected_items: int = 0
    failure_reason: str | None = None
    fulfillment_retries: int = 0
    request_digest: str = ""
    initial_batch_ids: tuple[str, ...] = ()
    idempotency_key: str = ""


def not_via_outbox(state: dict[str, object]) -> None:
    """v1 -> v2 of ``Created``, ``ItemsAdded``, ``Submitted`` and ``Cancelled``: events
    stored before ``via_outbox`` existed did not come via the outbox."""
    state["via_outbox"] = False


def created_without_request(state: dict[str, object]) -> None:
    """v2 -> v3 of ``Created``: an order created before the create request was recorded
    has none (no retry of it can be told from a conflict by its digest)."""
    state["request_digest"] = ""
    state["initial_batch_ids"] = []
    state["idempotency_key"] = ""


def rejection_with_code(state: dict[str, object]) -> None:
    """v1 -> v2 of ``BatchRejected``: the code from the reason's wording, as a new
    rejection recorded without a code gets it."""
    state["code"] = rejection_code(str(state["reason"]))


def rejection_when_added(state: dict[str, object]) -> None:
    """v2 -> v3 of ``BatchRejected``: rejections before v3 were all refusals of a batch
    being added, never batches fulfillment could not read."""
    state["at_fulfillment"] = False
    state["item_count"] = 0


def retried_without_count(state: dict[str, object]) -> None:
    """``FulfillmentRetried`` v1 did not say how many rejected batches it read again."""
    state["reread_batches"] = 0
