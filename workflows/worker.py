"""The worker: runs ``OrderWorkflow`` and its activities on one task queue."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Sequence

from temporalio.client import Client
from temporalio.worker import Interceptor, Worker

from bulkorder.domain.application import Orders
from bulkorder.storage.batches import BatchStore
from bulkorder.workflows.activities import OrderActivities, RecordHook
from bulkorder.workflows.order_workflow import OrderWorkflow

DEFAULT_TASK_QUEUE = "bulkorder"


def build_worker(
    client: Client,
    *,
    orders: Orders,
    batches: BatchStore,
    task_queue: str = DEFAULT_TASK_QUEUE,
    max_concurrent_activities: int = 16,
    graceful_shutdown: timedelta = timedelta(0),
    interceptors: Sequence[Interceptor] = (),
    on_recorded: RecordHook | None = None,
) -> Worker:
    """A worker for order workflows. Activities are synchronous (database and blob I/O)
    and run on a thread pool sized to ``max_concurrent_activities``.

    ``graceful_shutdown``: on shutdown the worker stops polling at once, then gives
    in-flight activities this long to finish before cancelling them (Temporal retries a
    cancelled one on another worker; every activity is idempotent).
    ``interceptors``: the worker's own (metrics, tracing: ``bulkorder.metrics``,
    ``bulkorder.tracing``); ``on_recorded`` is told of every change recorded.
    """
    activities = OrderActivities(orders, batches, on_recorded=on_recorded)
    executor = ThreadPoolExecutor(max_workers=max_concurrent_activities, thread_name_prefix="bulkorder-activity")
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[OrderWorkflow],
        activities=activities.all(),
        activity_executor=executor,
        max_concurrent_activities=max_concurrent_activities,
        graceful_shutdown_timeout=graceful_shutdown,
        interceptors=list(interceptors),
    )
