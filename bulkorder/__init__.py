"""bulkorder: orders too big for a workflow engine.

The public facade. A service opens a runtime from the environment and uses its
:class:`~workflows.client.OrderClient`::

    from bulkorder import Settings, open_runtime

    async with open_runtime(Settings.from_env()) as runtime:
        orders = runtime.order_client()
        await orders.create("order-1", "acme")
        await orders.add_items("order-1", items)     # validated, stored, added by reference
        await orders.submit("order-1")
        summary = await orders.wait_closed("order-1")
"""

from __future__ import annotations

from bulkorder.runtime import Runtime, open_runtime
from bulkorder.settings import Settings, SettingsError
from domain.errors import OrderClosedError, OrderConflictError, OrderNotFoundError
from domain.items import Item, ItemValidationError, Money
from domain.refs import BatchRef, InvalidRefError, ReportRef
from domain.summary import OrderStatus, OrderSummary
from workflows.client import OrderClient
from workflows.errors import OrderRefusedError
from workflows.messages import OrderLimits

__all__ = [
    "BatchRef",
    "InvalidRefError",
    "Item",
    "ItemValidationError",
    "Money",
    "OrderClient",
    "OrderClosedError",
    "OrderConflictError",
    "OrderLimits",
    "OrderNotFoundError",
    "OrderRefusedError",
    "OrderStatus",
    "OrderSummary",
    "ReportRef",
    "Runtime",
    "Settings",
    "SettingsError",
    "open_runtime",
]
