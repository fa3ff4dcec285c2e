"""Event bodies encrypted at rest, and personal fields sealed with the order's data key.

Two layers, both in a mapper that wraps the application's own
(:class:`ProtectedMapper`, installed by :meth:`EventProtection.protect`):

1. **Personal fields** (a customer ID, the free-text reasons of rejections, failures and
   cancellations, and the same fields in snapshots) are each replaced, before the event is
   serialised, by a string token ``bkoe:<base64 envelope>`` sealed with *the order's* data
   key (the one its batches use, found from the event's aggregate ID). When that key is
   destroyed (erasure), such a field reads back as :data:`ERASED` instead: the events,
   counters and status stay readable, the personal data does not.
2. **The whole stored body** is then sealed with the deployment's ``events`` data key
   (rotating the keyring rewraps it; the key ID is in every row's envelope header).

Rows written before encryption (no envelope, plain JSON) are read as they are; fields
that are not tokens pass untouched. A row that does not authenticate, or whose key is not
in the keyring, raises the typed error naming the key ID, not eventsourcing's generic
deserialisation error.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from typing import Any
from uuid import UUID

from eventsourcing.domain import Snapshot
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent

from bulkorder.domain.order import Order
from bulkorder.storage.encryption.data_keys import EVENTS_KEY_ID, DataKeys
from bulkorder.storage.encryption.envelope import PURPOSE_EVENT, PURPOSE_FIELD, is_envelope, open_sealed, read_header, seal
from bulkorder.storage.encryption.errors import DataKeyNotFoundError, EncryptionError, EnvelopeFormatError

#: What a personal field reads as once its order's data key is destroyed.
ERASED = "[erased]"
TOKEN_PREFIX = "bkoe:"
#: Personal fields, by event class (snapshots: keys of the aggregate's state).
PERSONAL_FIELDS: dict[type, tuple[str, ...]] = {
    Order.Created: ("customer_id",),
    Order.BatchRejected: ("reason",),
    Order.FulfillmentFailed: ("reason",),
    Order.FulfillmentRetried: ("reason",),
    Order.Cancelled: ("reason",),
}
SNAPSHOT_PERSONAL_FIELDS = ("customer_id", "cancel_reason", "failure_reason")
SNAPSHOT_PERSONAL_MAPS = ("rejected_batch_ids",)


class EventProtection:
    """What ``Orders(protection=...)`` takes: seals events with ``keys``; ``encrypt=False``
    writes plaintext (reading sealed rows still works)."""

    def __init__(self, keys: DataKeys, *, encrypt: bool = True) -> None:
        self.keys = keys
        self.encrypt = encrypt

    def protect(self, mapper: Mapper[UUID]) -> Mapper[UUID]:
        return ProtectedMapper(mapper, self)

    # Fields.

    def seal_field(self, aggregate_id: UUID, value: str) -> str:
        key = self.keys.get_or_create(self.keys.aggregate_key_id(aggregate_id))
        return TOKEN_PREFIX + base64.b64encode(seal(key, PURPOSE_FIELD, value.encode())).decode()

    def open_field(self, value: str, where: str) -> str:
        try:
            data = base64.b64decode(value[len(TOKEN_PREFIX) :], validate=True)
        except binascii.Error:
            raise EnvelopeFormatError(f"{where}: a sealed field that is not base64") from None
        head = read_header(data, where=where)
        try:
            key = self.keys.get(head.key_id)
        except DataKeyNotFoundError:
            return ERASED
        return open_sealed(key, data, where=where, purpose=PURPOSE_FIELD).decode()

    # Bodies.

    def seal_body(self, state: bytes) -> bytes:
        return seal(self.keys.get_or_create(EVENTS_KEY_ID), PURPOSE_EVENT, state)

    def open_body(self, state: bytes, where: str) -> bytes:
        if not is_envelope(state):
            return state  # written before encryption
        head = read_header(state, where=where)
        return open_sealed(self.keys.get(head.key_id), state, where=where, purpose=PURPOSE_EVENT)


def _with_state(event: Any, state: dict[str, Any]) -> Any:
    copy = object.__new__(type(event))
    object.__setattr__(copy, "__dict__", state)
    return copy


class ProtectedMapper(Mapper[UUID]):
    """The application's mapper (``inner``), with personal fields and bodies sealed."""

    def __init__(self, inner: Mapper[UUID], protection: EventProtection) -> None:
        super().__init__(transcoder=inner.transcoder, compressor=inner.compressor, cipher=inner.cipher)
        self.inner = inner
        self.protection = protection

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        protection = self.protection
        if not protection.encrypt:
            return self.inner.to_stored_event(domain_event)
        state = dict(vars(domain_event))
        aggregate_id = state["originator_id"]
        if isinstance(domain_event, Snapshot):
            inner = dict(state["state"])
            for name in SNAPSHOT_PERSONAL_FIELDS:
                if isinstance(inner.get(name), str):
                    inner[name] = protection.seal_field(aggregate_id, inner[name])
            for name in SNAPSHOT_PERSONAL_MAPS:
                if isinstance(inner.get(name), dict):
                    inner[name] = {k: protection.seal_field(aggregate_id, v) if isinstance(v, str) else v for k, v in inner[name].items()}
            state["state"] = inner
        else:
            for name in PERSONAL_FIELDS.get(type(domain_event), ()):
                if isinstance(state.get(name), str):
                    state[name] = protection.seal_field(aggregate_id, state[name])
        stored = self.inner.to_stored_event(_with_state(domain_event, state))
        return dataclasses.replace(stored, state=protection.seal_body(stored.state))

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        where = f"event {stored_event.originator_id} v{stored_event.originator_version} ({stored_event.topic})"
        plain = dataclasses.replace(stored_event, state=self.protection.open_body(stored_event.state, where))
        try:
            event = self.inner.to_domain_event(plain)
        except MapperDeserialisationError as exc:
            if isinstance(exc.__cause__, EncryptionError):
                raise exc.__cause__ from None
            raise
        state = event.__dict__
        if isinstance(event, Snapshot):
            inner = state.get("state")
            if isinstance(inner, dict):
                for name in SNAPSHOT_PERSONAL_FIELDS:
                    inner[name] = self._open(inner.get(name), where)
                for name in SNAPSHOT_PERSONAL_MAPS:
                    if isinstance(inner.get(name), dict):
                        inner[name] = {k: self._open(v, where) for k, v in inner[name].items()}
        else:
            for name in PERSONAL_FIELDS.get(type(event), ()):
                if name in state:
                    state[name] = self._open(state[name], where)
        return event

    def _open(self, value: Any, where: str) -> Any:
        if isinstance(value, str) and value.startswith(TOKEN_PREFIX):
            return self.protection.open_field(value, where)
        return value
