"""The worker: runs ``OrderWorkflow`` and its activities on one task queue."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker

from bulkorder.domain.application import Orders
from bulkorder.storage.batches import BatchStore
from bulkorder.workflows.activities import OrderActivities
from bulkorder.workflows.order_workflow import OrderWorkflow

DEFAULT_TASK_QUEUE = "bulkorder"


def build_worker(
    client: Client,
    *,
    orders: Orders,
    batches: BatchStore,
    task_queue: str = DEFAULT_TASK_QUEUE,
    max_concurrent_activities: int = 16,
) -> Worker:
    """A worker for order workflows. Activities are synchronous (database and blob I/O)
    and run on a thread pool sized to ``max_concurrent_activities``."""
    activities = OrderActivities(orders, batches)
    executor = ThreadPoolExecutor(max_workers=max_concurrent_activities, thread_name_prefix="bulkorder-activity")
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[OrderWorkflow],
        activities=activities.all(),
        activity_executor=executor,
        max_concurrent_activities=max_concurrent_activities,
    )
