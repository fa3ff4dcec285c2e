"""The worker: runs ``OrderWorkflow`` and its activities on one task queue."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Sequence

from temporalio.client import Client
from temporalio.worker import Interceptor, PollerBehaviorSimpleMaximum, UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from bulkorder.domain.application import Orders
from bulkorder.storage.batches import BatchStore
from bulkorder.workflows.activities import OrderActivities, RecordHook
from bulkorder.workflows.order_workflow import OrderWorkflow

DEFAULT_TASK_QUEUE = "bulkorder"
#: Local activities at once: the creation's record (patch ``creation-local-activity``).
#: They run on the same thread pool as activity tasks, which has a thread for each, so a
#: create never waits for a thread behind the bulk records.
MAX_CONCURRENT_LOCAL_ACTIVITIES = 8
#: Workflow-task polls at once, and the share of them on the task queue itself (the rest
#: poll this worker's sticky queue). A new order's first workflow task (its create) only
#: comes from the task queue: SDK defaults (5, 0.2) leave one poll there per worker, so
#: under load a create waited for that one poll to come back (docs/benchmarks.md, the fleet).
WORKFLOW_TASK_POLLS = 10
NONSTICKY_POLL_RATIO = 0.5


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
    sandboxed: bool = True,
) -> Worker:
    """A worker for order workflows. Activities are synchronous (database and blob I/O)
    and run on a thread pool sized to ``max_concurrent_activities`` plus the local
    activities' ``MAX_CONCURRENT_LOCAL_ACTIVITIES``.

    ``graceful_shutdown``: on shutdown the worker stops polling at once, then gives
    in-flight activities this long to finish before cancelling them (Temporal retries a
    cancelled one on another worker; every activity is idempotent).
    ``interceptors``: the worker's own (metrics, tracing: ``bulkorder.metrics``,
    ``bulkorder.tracing``); ``on_recorded`` is told of every change recorded.
    ``sandboxed``: run workflow code in temporalio's sandbox (the default, and the tests'),
    which re-imports the workflow's module for every new run (2.6-5.3 ms of CPU on the
    worker's event loop per create) and fails a task that calls a non-deterministic
    function (``datetime.now``, ``random``...) from ``order_workflow.py``; off, the same
    code runs directly (``BULKORDER_WORKFLOW_SANDBOX``, docs/configuration.md).
    """
    activities = OrderActivities(orders, batches, on_recorded=on_recorded)
    threads = max_concurrent_activities + MAX_CONCURRENT_LOCAL_ACTIVITIES
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bulkorder-activity")
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[OrderWorkflow],
        workflow_runner=SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner(),
        activities=activities.all(),
        activity_executor=executor,
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_local_activities=MAX_CONCURRENT_LOCAL_ACTIVITIES,
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(maximum=WORKFLOW_TASK_POLLS),
        nonsticky_to_sticky_poll_ratio=NONSTICKY_POLL_RATIO,
        graceful_shutdown_timeout=graceful_shutdown,
        interceptors=list(interceptors),
    )
