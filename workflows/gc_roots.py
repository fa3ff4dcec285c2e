"""Garbage collection's roots: the event store, and the pending refs of open workflows.

The open orders come from the event store (an order whose create returned is recorded
there), not from Temporal's visibility, which may lag behind a start by seconds. Each is
asked for its pending refs (query ``pending_keys``) if its workflow runs. An open order
whose workflow runs but does not answer (no worker, an old worker without the query) stops
the sweep: it cannot know what that workflow holds, so it deletes nothing.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Iterable
from uuid import UUID

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from bulkorder.domain.application import Orders
from bulkorder.storage.gc import GcError
from bulkorder.storage.order_refs import OrderIndex, RecordedRoots, index_orders, recorded_roots
from bulkorder.workflows.messages import PENDING_KEYS

#: How long one open workflow may take to answer.
QUERY_TIMEOUT = timedelta(seconds=15)
#: Workflows asked at once.
QUERY_CONCURRENCY = 16


class OrderRoots:
    """:class:`~bulkorder.storage.gc.RootSource` over an event store and a Temporal client
    (``None``: no Temporal; then any open order stops the sweep)."""

    def __init__(self, orders: Orders, client: Client | None) -> None:
        self.orders = orders
        self.client = client

    def index(self) -> OrderIndex:
        return index_orders(self.orders)

    def recorded(self, purged: set[UUID]) -> RecordedRoots:
        return recorded_roots(self.orders, purged)

    async def pending_keys(self, order_ids: list[str]) -> Iterable[str]:
        if not order_ids:
            return []
        if self.client is None:
            raise GcError(
                f"{len(order_ids)} orders are open (first {order_ids[0]!r}) and no Temporal server is "
                "configured to ask their workflows for pending refs: nothing deleted"
            )
        slots = asyncio.Semaphore(QUERY_CONCURRENCY)
        keys: list[str] = []

        async def ask(order_id: str) -> None:
            async with slots:
                keys.extend(await self._pending_of(order_id))

        await asyncio.gather(*(ask(order_id) for order_id in order_ids))
        return keys

    async def _pending_of(self, order_id: str) -> list[str]:
        assert self.client is not None
        # The order ID a Created event holds: a name (keyed hash) or a 0.x bare order ID.
        handle = self.client.get_workflow_handle(self.orders.identity.workflow_id_of_stored(order_id))
        try:
            description = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
            if description.status != WorkflowExecutionStatus.RUNNING:
                return []  # a closed run holds nothing unrecorded
            keys = await handle.query(PENDING_KEYS, result_type=list[str], rpc_timeout=QUERY_TIMEOUT)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return []  # no workflow (a DB-first order the relay has not started)
            raise GcError(f"cannot read the pending refs of open order {order_id!r}: {err.message}") from None
        except WorkflowQueryFailedError as err:
            raise GcError(
                f"cannot read the pending refs of open order {order_id!r} (is a current worker running?): {err}"
            ) from None
        if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
            raise GcError(f"open order {order_id!r} answered its pending refs with something else than keys")
        return keys


async def workflows_gone(client: Client, workflow_ids: list[str]) -> set[str]:
    """The IDs among ``workflow_ids`` Temporal holds no run of (past the namespace's
    retention, or deleted). Any answer but "not found" keeps the ID out: gc only ever
    deletes on Temporal's word that the workflow is gone."""
    slots = asyncio.Semaphore(QUERY_CONCURRENCY)
    gone: set[str] = set()

    async def ask(workflow_id: str) -> None:
        async with slots:
            try:
                await client.get_workflow_handle(workflow_id).describe(rpc_timeout=QUERY_TIMEOUT)
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    gone.add(workflow_id)
                else:
                    raise GcError(f"cannot tell whether workflow {workflow_id!r} still exists: {err}") from None

    await asyncio.gather(*(ask(workflow_id) for workflow_id in workflow_ids))
    return gone
