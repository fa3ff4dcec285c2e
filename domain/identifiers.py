"""Rules for the identifiers users choose: batch IDs, and the 0.x order and customer IDs.

An order is identified by its name, ``customer/reference`` (:mod:`bulkorder.domain.identity`):
a reference follows :func:`check_order_id`'s rules, and the customer the wider rules there.
The order-ID functions below (``workflow_id_for``, ``aggregate_id_for``, the customer check
of 0.x) remain for orders created before identities: their workflows and aggregates keep
these IDs, and replaying them checks their input by these rules.

Pure standard library, so that workflow code (Temporal's sandbox) can use the same rules
as the CLI and the domain model.
"""

from __future__ import annotations

import re
import uuid

from bulkorder.domain.errors import BulkorderError

# Order and customer IDs end up in workflow IDs, blob keys and file names: keep them to
# a conservative, URL- and path-safe alphabet. Matched whole (``fullmatch``): with
# ``match`` and ``$``, "o-1\n" would pass, a different ID that prints like "o-1".
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_BATCH_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}")

#: Namespace for deriving the event-store aggregate ID (a UUID) from an order ID.
ORDER_ID_NAMESPACE = uuid.UUID("6f2d3c55-8f0a-4a5e-9a39-b2f0e8a3c1d7")

WORKFLOW_ID_PREFIX = "order-"


class InvalidIdentifierError(BulkorderError, ValueError):
    """An order, customer or batch ID that does not follow the rules."""


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_ID_RULES = "use 1-128 characters from A-Z a-z 0-9 . _ : - starting with a letter or digit"
_BATCH_ID_RULES = "use 1-200 characters from A-Z a-z 0-9 . _ : / - starting with a letter or digit"


def _check(value: object, kind: str, pattern: re.Pattern[str], rules: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidIdentifierError(f"{kind} {_describe(value)} is invalid: {rules}")
    return value


def check_order_id(order_id: object) -> str:
    """Return ``order_id`` if valid, else raise :class:`InvalidIdentifierError`."""
    return _check(order_id, "order ID", _ID_PATTERN, _ID_RULES)


def check_customer_id(customer_id: object) -> str:
    """Return ``customer_id`` if valid, else raise :class:`InvalidIdentifierError`."""
    return _check(customer_id, "customer ID", _ID_PATTERN, _ID_RULES)


def check_batch_id(batch_id: object) -> str:
    """Return ``batch_id`` if valid, else raise :class:`InvalidIdentifierError`."""
    return _check(batch_id, "batch ID", _BATCH_ID_PATTERN, _BATCH_ID_RULES)


def workflow_id_for(order_id: str) -> str:
    """The Temporal workflow ID of a 0.x order (``order-<order ID>``); orders since
    identities use ``OrderIdentity.workflow_id``."""
    return WORKFLOW_ID_PREFIX + check_order_id(order_id)


def order_id_from_workflow_id(workflow_id: str) -> str:
    if not workflow_id.startswith(WORKFLOW_ID_PREFIX):
        raise InvalidIdentifierError(f"workflow ID {workflow_id!r} is not an order workflow")
    return check_order_id(workflow_id[len(WORKFLOW_ID_PREFIX) :])


def aggregate_id_for(order_id: str) -> uuid.UUID:
    """The event-store aggregate ID of a 0.x order; orders since identities use
    ``OrderIdentity.aggregate_id``."""
    return uuid.uuid5(ORDER_ID_NAMESPACE, check_order_id(order_id))
