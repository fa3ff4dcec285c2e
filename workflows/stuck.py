"""Find every order that is stuck: a step that keeps failing, or a failed fulfillment
waiting for someone to retry or cancel it.

Open orders are found with Temporal's visibility (``ListWorkflowExecutions``, paged), and
each is looked at with :meth:`OrderClient.progress` (a describe for its pending steps, a
query for its status). Memory and load stay bounded whatever the number of open orders:
one page of workflows at a time, at most ``concurrency`` looks in flight, and only the
stuck ones are kept.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any, AsyncIterator

from temporalio.client import WorkflowExecution
from temporalio.service import RPCError

from bulkorder.domain.errors import OrderNotFoundError
from bulkorder.domain.identifiers import WORKFLOW_ID_PREFIX
from bulkorder.domain.summary import OrderStatus
from bulkorder.workflows.client import OrderClient
from bulkorder.workflows.order_workflow import OrderWorkflow
from bulkorder.workflows.pending import PendingStep, safe_error_text
from bulkorder.workflows.workflow_task import FailingCreation

#: Open workflows read per visibility page (and looked at before the next page is read).
PAGE_SIZE = 100
#: Orders looked at (describe and query) at once.
CONCURRENCY = 8

# A task queue name goes into a visibility query as a string literal: refuse what could
# end it rather than guess the server's escaping rules.
_SAFE_QUEUE = re.compile(r"^[A-Za-z0-9._:/@-]{1,200}$")


@dataclass(frozen=True)
class StuckOrder:
    order_id: str
    #: Why it is listed: ``failing step``, ``creation not recorded`` (its record, a local
    #: activity, keeps failing), ``fulfillment failed`` (waiting for a retry or a cancel),
    #: or ``no answer`` (its workflow answers no query: no worker?).
    why: str
    #: The order's status from its workflow (``None`` if it did not answer).
    status: str | None
    failing_step: PendingStep | None
    detail: str = ""
    #: The creation's record retried as a local activity (``why`` is ``creation not recorded``).
    failing_creation: FailingCreation | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "why": self.why,
            "status": self.status,
            "failing_step": None if self.failing_step is None else self.failing_step.to_json(),
            "detail": self.detail,
            "failing_creation": None if self.failing_creation is None else self.failing_creation.to_json(),
        }


def open_orders_query(task_queue: str) -> str:
    """The visibility query for the running order workflows of one task queue."""
    if not _SAFE_QUEUE.match(task_queue):
        raise ValueError(
            f"task queue {task_queue!r} cannot be searched: use letters, digits and ._:/@- (at most 200)"
        )
    workflow_type = getattr(OrderWorkflow, "__temporal_workflow_definition").name
    return f"WorkflowType='{workflow_type}' AND ExecutionStatus='Running' AND TaskQueue='{task_queue}'"


async def find_stuck(
    client: OrderClient,
    *,
    min_attempts: int = 2,
    concurrency: int = CONCURRENCY,
    page_size: int = PAGE_SIZE,
) -> list[StuckOrder]:
    """Every running order of the client's task queue that is stuck, ordered by order ID."""
    if min_attempts < 2:
        raise ValueError(f"min_attempts must be at least 2 (a first attempt has not failed yet), got {min_attempts}")
    if concurrency < 1 or page_size < 1:
        raise ValueError(f"concurrency and page_size must be at least 1, got {concurrency} and {page_size}")
    slots = asyncio.Semaphore(concurrency)
    stuck: list[StuckOrder] = []

    async def look(workflow_id: str) -> None:
        async with slots:
            # The workflow ID is a keyed hash: the order's name is read from its input.
            order_id = await client.name_of(workflow_id)
            found = None if order_id is None else await _look(client, order_id, min_attempts)
        if found is not None:
            stuck.append(found)

    async for page in _pages(client, page_size):
        await asyncio.gather(*(look(workflow_id) for workflow_id in page))
    return sorted(stuck, key=lambda order: order.order_id)


async def _pages(client: OrderClient, page_size: int) -> AsyncIterator[list[str]]:
    """Workflow IDs of the running order workflows, a page at a time (IDs that are not an
    order's are skipped: the task queue may be shared)."""
    page: list[str] = []
    execution: WorkflowExecution
    async for execution in client.client.list_workflows(open_orders_query(client.task_queue), page_size=page_size):
        if not execution.id.startswith(WORKFLOW_ID_PREFIX):
            continue
        page.append(execution.id)
        if len(page) >= page_size:
            yield page
            page = []
    if page:
        yield page


async def _look(client: OrderClient, order_id: str, min_attempts: int) -> StuckOrder | None:
    try:
        progress = await client.progress(order_id)
    except OrderNotFoundError:
        return None  # closed and gone between the listing and the look
    except RPCError as err:
        return StuckOrder(order_id, "no answer", None, None, detail=safe_error_text(f"cannot describe its workflow: {err}"))
    if not progress.running:
        return None  # closed since it was listed: whatever it is, it waits for nobody
    step = progress.failing_step(min_attempts)
    if step is not None:
        return StuckOrder(order_id, "failing step", progress.status, step)
    creation = progress.failing_creation(min_attempts)
    if creation is not None:
        # No pending activity to show: the record runs as a local activity inside the
        # workflow task it keeps open (bulkorder.workflows.workflow_task).
        return StuckOrder(
            order_id, "creation not recorded", progress.status, None, detail=creation.describe(),
            failing_creation=creation,
        )
    if progress.status == OrderStatus.FAILED:
        return StuckOrder(
            order_id, "fulfillment failed", progress.status, None,
            detail="waiting for `bulkorder retry` or `bulkorder cancel`",
        )
    if progress.summary is None:
        return StuckOrder(order_id, "no answer", None, None, detail=safe_error_text(progress.error or ""))
    return None
