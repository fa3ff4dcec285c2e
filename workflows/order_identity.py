"""Finding an order's workflow by its name, for clients (``OrderClient``, the relay).

A name (``customer/reference``) maps to the workflow ID ``order-v2-<keyed hash>``
(``bulkorder.domain.identity.OrderIdentity``). Orders created before identities run under
``order-<order ID>``: a name whose v2 workflow does not exist is looked up there, and
taken only if that workflow's customer (read from its input, no worker needed) is the
name's, so another customer's old order with the same reference is never reached.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Mapping

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from bulkorder.domain.errors import OrderIdentityError
from bulkorder.domain.identifiers import WORKFLOW_ID_PREFIX, InvalidIdentifierError
from bulkorder.domain.identity import MIN_IDENTITY_KEY_BYTES, OrderIdentity, OrderName, legacy_workflow_id, stored_name
from bulkorder.workflows.messages import OrderInput

IDENTITY_SECRET_VARIABLE = "BULKORDER_IDENTITY_SECRET"
#: Names whose workflow ID a client remembers (a workflow ID never changes).
_KNOWN_NAMES = 10_000


def identity_from_env(environ: Mapping[str, str] | None = None) -> OrderIdentity:
    """The identity secret from ``BULKORDER_IDENTITY_SECRET`` (processes built from
    ``Settings`` pass ``settings.order_identity()``, which also reads its home file)."""
    secret = (os.environ if environ is None else environ).get(IDENTITY_SECRET_VARIABLE, "")
    if len(secret.encode()) < MIN_IDENTITY_KEY_BYTES:
        raise OrderIdentityError(
            f"no identity secret to name orders with: pass identity=settings.order_identity(), or set "
            f"{IDENTITY_SECRET_VARIABLE} (at least {MIN_IDENTITY_KEY_BYTES} bytes, the same in every process)"
        )
    return OrderIdentity(secret.encode())


class NameResolver:
    def __init__(self, client: Client, identity: OrderIdentity) -> None:
        self._client = client
        self._identity = identity
        self._known: OrderedDict[OrderName, str] = OrderedDict()

    def known(self, name: OrderName) -> str | None:
        return self._known.get(name)

    async def workflow_id(self, name: OrderName) -> str:
        known = self._known.get(name)
        if known is not None:
            return known
        v2 = self._identity.workflow_id(name)
        if await self._exists(v2):
            return self._remember(name, v2)
        legacy = legacy_workflow_id(name.reference)
        if await self._customer_of(legacy) == name.customer:
            return self._remember(name, legacy)
        return v2  # not found anywhere: calls on it answer "not found"

    async def stored_order_id(self, name: OrderName) -> str:
        """The order ID the order's workflow, event stream and data key go by: its name,
        or the bare reference of an order from before identities (``order-<reference>``),
        whose batches must be sealed with that order's key, the one its erasure destroys."""
        if await self.workflow_id(name) == legacy_workflow_id(name.reference):
            return name.reference
        return str(name)

    def _remember(self, name: OrderName, workflow_id: str) -> str:
        self._known[name] = workflow_id
        while len(self._known) > _KNOWN_NAMES:
            self._known.popitem(last=False)
        return workflow_id

    async def _exists(self, workflow_id: str) -> bool:
        try:
            await self._client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    async def name_of(self, workflow_id: str) -> str | None:
        """The name of the order whose workflow is ``workflow_id`` (read from its input, a
        payload: no worker needed); None if it is no order's workflow."""
        if not workflow_id.startswith(WORKFLOW_ID_PREFIX):
            return None
        start = await self._input_of(workflow_id)
        if start is None:
            return None
        try:
            name = OrderName.parse(stored_name(start.order_id, start.customer_id))
        except InvalidIdentifierError:
            return None
        self._remember(name, workflow_id)
        return str(name)

    async def _customer_of(self, workflow_id: str) -> str | None:
        """The customer in the input of the workflow's latest run; None if there is none."""
        start = await self._input_of(workflow_id)
        return None if start is None else start.customer_id

    async def _input_of(self, workflow_id: str) -> OrderInput | None:
        try:
            async for event in self._client.get_workflow_handle(workflow_id).fetch_history_events():
                if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                    return None
                payloads = event.workflow_execution_started_event_attributes.input.payloads
                decoded = await self._client.data_converter.decode(list(payloads)[:1], [OrderInput])
                start = decoded[0] if decoded else None
                return start if isinstance(start, OrderInput) else None
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return None
