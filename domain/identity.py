"""An order's identity: the customer's account plus the customer's own reference.

``OrderName`` is the one way every API, command, tool, log and export addresses and
prints an order: ``<customer>/<reference>`` (``acme/PO-1001``, ``alice@example.com/PO-7``,
``Müller-GmbH/PO-1``). Two customers may both have ``PO-1001``; they are two orders.

Temporal stores workflow IDs and search attributes in clear, and a customer ID may be an
e-mail address, so what Temporal and the event store's keys see is a keyed hash of the
identity (:class:`OrderIdentity`): workflow ID ``order-v2-<hex>``, aggregate ID
``uuid5(ORDER_V2_NAMESPACE, hex)``, where ``hex`` is the first 16 bytes of
HMAC-SHA256(identity key, ``bulkorder/order-identity/v1\\0<customer>\\0<reference>``).
The key is a deployment secret that must never change: every ID derives from it.

Orders created before identities (0.x: workflow ID ``order-<order ID>``, aggregate
``uuid5(ORDER_ID_NAMESPACE, order ID)``) are addressed as ``<customer>/<order ID>``; the
lookups try the v2 IDs first, then these (docs/architecture.md, "Order identity").

Pure standard library: workflow code (Temporal's sandbox) uses the same rules.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Iterable, Sequence

from bulkorder.domain.identifiers import (
    ORDER_ID_NAMESPACE,
    WORKFLOW_ID_PREFIX,
    InvalidIdentifierError,
    _describe,
    check_order_id,
)

#: Namespace of v2 aggregate IDs: ``uuid5(ORDER_V2_NAMESPACE, <identity hex>)``.
ORDER_V2_NAMESPACE = uuid.UUID("0b7c1f4e-5d2a-4e8b-9c61-3a9e2f7d4b10")
#: Prefix of v2 workflow IDs: ``order-v2-<identity hex>``.
WORKFLOW_ID_V2_PREFIX = "order-v2-"
_IDENTITY_CONTEXT = b"bulkorder/order-identity/v1\0"
_REQUEST_CONTEXT = b"bulkorder/create-request/v1\0"
#: Shortest identity key: 16 bytes (32 random bytes as hex is a good one).
MIN_IDENTITY_KEY_BYTES = 16

MAX_CUSTOMER_CHARS = 128
MAX_IDEMPOTENCY_KEY_CHARS = 200
_CUSTOMER_PUNCTUATION = frozenset("@._+-")
CUSTOMER_RULES = (
    f"use 1-{MAX_CUSTOMER_CHARS} Unicode letters, marks, digits or @ . _ + - (no spaces, control, format or "
    "invisible characters, no /), starting with a letter or digit; it is kept NFC-normalised and case as given"
)
REFERENCE_RULES = "use 1-128 characters from A-Z a-z 0-9 . _ : - starting with a letter or digit"
NAME_RULES = "an order is named <customer>/<reference>, e.g. acme/PO-1001"


def _customer_char_ok(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in "LM" or category == "Nd" or char in _CUSTOMER_PUNCTUATION


def check_customer(customer: object) -> str:
    """``customer`` NFC-normalised if valid, else :class:`InvalidIdentifierError` with the
    rules. Letters of every script are allowed; control, format (bidi overrides,
    zero-width), whitespace and separator characters never are."""
    if not isinstance(customer, str):
        raise InvalidIdentifierError(f"customer ID {_describe(customer)} is invalid: {CUSTOMER_RULES}")
    normal = unicodedata.normalize("NFC", customer)
    first = normal[:1]
    if (
        not 1 <= len(normal) <= MAX_CUSTOMER_CHARS
        or not (unicodedata.category(first)[0] == "L" or unicodedata.category(first) == "Nd")
        or not all(_customer_char_ok(char) for char in normal)
    ):
        raise InvalidIdentifierError(f"customer ID {_describe(customer)} is invalid: {CUSTOMER_RULES}")
    return normal


def check_reference(reference: object) -> str:
    """``reference`` if valid (today's order-ID rules), else :class:`InvalidIdentifierError`."""
    try:
        return check_order_id(reference)
    except InvalidIdentifierError:
        raise InvalidIdentifierError(f"order reference {_describe(reference)} is invalid: {REFERENCE_RULES}") from None


@dataclass(frozen=True, order=True)
class OrderName:
    """``<customer>/<reference>``: an order's identity, checked and normalised."""

    customer: str
    reference: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "customer", check_customer(self.customer))
        object.__setattr__(self, "reference", check_reference(self.reference))

    @classmethod
    def parse(cls, text: object) -> OrderName:
        """The name in ``text`` (``customer/reference``); an ``OrderName`` is returned as is."""
        if isinstance(text, OrderName):
            return text
        if not isinstance(text, str):
            raise InvalidIdentifierError(f"order name {_describe(text)} is invalid: {NAME_RULES}")
        customer, slash, reference = text.rpartition("/")
        if not slash:
            raise InvalidIdentifierError(f"order name {_describe(text)} has no customer: {NAME_RULES}")
        return cls(customer, reference)

    def __str__(self) -> str:
        return f"{self.customer}/{self.reference}"


def order_name(value: OrderName | str) -> OrderName:
    """What callers pass (an ``OrderName`` or its text) as an ``OrderName``."""
    return OrderName.parse(value)


def order_key(value: OrderName | str) -> str:
    """How the event store is asked for an order: its name, normalised; or, for an order
    from before identities, its bare 0.x order ID (which finds only such an order)."""
    if isinstance(value, str) and "/" not in value:
        return check_order_id(value)
    return str(order_name(value))


def stored_name(order_id: str, customer_id: str) -> str:
    """The name of an order as a ``Created`` event holds it: the name itself since
    identities, ``<customer>/<order ID>`` for a 0.x order (its order ID is the reference)."""
    return order_id if "/" in order_id else f"{customer_id}/{order_id}"


_V2_TOKEN = re.compile(r"v2-([0-9a-f]{32})")


def aggregate_id_of_key_order(order: str, identity: OrderIdentity | None = None) -> uuid.UUID:
    """The aggregate ID of the order ``order`` names for its data key: a name (needs the
    identity secret: ``identity``, else ``BULKORDER_IDENTITY_SECRET``), the ``v2-<hex>``
    suffix of a v2 workflow ID (no secret needed), or a 0.x order ID."""
    token = _V2_TOKEN.fullmatch(order)
    if token is not None:
        return uuid.uuid5(ORDER_V2_NAMESPACE, token.group(1))
    if "/" in order:
        if identity is None:
            secret = os.environ.get("BULKORDER_IDENTITY_SECRET", "").encode()
            if len(secret) < MIN_IDENTITY_KEY_BYTES:
                raise InvalidIdentifierError(
                    f"order {_describe(order)}: its data key needs the identity secret (BULKORDER_IDENTITY_SECRET)"
                )
            identity = OrderIdentity(secret)
        return identity.aggregate_id(order)
    return legacy_aggregate_id(order)


def legacy_workflow_id(order_id: str) -> str:
    """Workflow ID of an order created before identities (``order-<order ID>``)."""
    return WORKFLOW_ID_PREFIX + check_order_id(order_id)


def legacy_aggregate_id(order_id: str) -> uuid.UUID:
    """Aggregate ID of an order created before identities."""
    return uuid.uuid5(ORDER_ID_NAMESPACE, check_order_id(order_id))


class OrderIdentity:
    """The keyed hash of names: the IDs Temporal and the event store's keys see.

    ``key`` is the deployment's identity secret (``bulkorder.seals``): every process of a
    deployment must hold the same one, and it must never change."""

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) < MIN_IDENTITY_KEY_BYTES:
            raise ValueError(f"an identity key needs at least {MIN_IDENTITY_KEY_BYTES} bytes")
        self._key = key

    def __repr__(self) -> str:
        return "OrderIdentity(<secret>)"

    def digest(self, name: OrderName) -> str:
        """32 hex digits naming the order without revealing it."""
        message = _IDENTITY_CONTEXT + name.customer.encode() + b"\0" + name.reference.encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()[:16].hex()

    def workflow_id(self, name: OrderName | str) -> str:
        return WORKFLOW_ID_V2_PREFIX + self.digest(order_name(name))

    def aggregate_id(self, name: OrderName | str) -> uuid.UUID:
        return uuid.uuid5(ORDER_V2_NAMESPACE, self.digest(order_name(name)))

    def workflow_id_of_stored(self, order_id: str) -> str:
        """Workflow ID for the ``order_id`` a stored event or a workflow's state holds: a
        name (``customer/reference``) today, a bare order ID for orders from before."""
        return self.workflow_id(order_id) if "/" in order_id else legacy_workflow_id(order_id)


# ---- create requests: what makes a retry the same request -----------------------------


def check_idempotency_key(key: object) -> str:
    """A caller's idempotency key: 1-200 printable ASCII characters (or "" for none)."""
    if key is None or key == "":
        return ""
    if not isinstance(key, str) or len(key) > MAX_IDEMPOTENCY_KEY_CHARS or not all(" " < c < "\x7f" for c in key):
        raise InvalidIdentifierError(
            f"idempotency key {_describe(key)} is invalid: use 1-{MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII "
            "characters without spaces"
        )
    return key


def request_digest(name: OrderName, batches: Iterable[tuple[str, str]], idempotency_key: str = "") -> str:
    """sha-256 of a create request: the name, and the caller's idempotency key when given,
    else the initial batches' IDs and content hashes (in any order). Two requests with
    one digest are the same request: a retry."""
    digest = hashlib.sha256(_REQUEST_CONTEXT)
    digest.update(name.customer.encode() + b"\0" + name.reference.encode() + b"\0")
    if idempotency_key:
        digest.update(b"key\0" + idempotency_key.encode())
    else:
        digest.update(b"batches\0")
        for batch_id, sha256 in sorted(batches):
            digest.update(batch_id.encode() + b"\0" + sha256.encode() + b"\0")
    return digest.hexdigest()


def request_difference(
    recorded_batch_ids: Sequence[str], recorded_key: str, batch_ids: Sequence[str], key: str, *, limit: int = 5
) -> str:
    """What differs between a recorded create and a new one, in words (for the conflict)."""
    if recorded_key or key:
        if not recorded_key:
            return "this request carries an idempotency key; the order was created without one"
        if not key:
            return "the order was created with an idempotency key; this request carries none"
        if recorded_key != key:
            return "the idempotency key differs from the one the order was created with"
    missing = sorted(set(recorded_batch_ids) - set(batch_ids))
    extra = sorted(set(batch_ids) - set(recorded_batch_ids))
    parts = []
    if extra:
        parts.append(f"batches not in the original request: {_few(extra, limit)}")
    if missing:
        parts.append(f"batches of the original request missing: {_few(missing, limit)}")
    return "; ".join(parts) or "the initial batches differ in content (same batch IDs, other hashes)"


def _few(values: list[str], limit: int) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")
