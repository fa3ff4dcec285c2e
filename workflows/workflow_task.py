"""Whether an order's creation keeps failing, read from its open workflow task.

The creation's record is a local activity (``OrderCreation._record_creation_locally``):
while it is retried it is no pending activity, so ``describe()`` lists no step. What
Temporal does show is the workflow task it keeps open. The worker (sdk-core) runs a local
activity, and every retry whose backoff is under ``local_retry_threshold`` (one minute;
the record's backoff is at most 10 s), inside the workflow task that scheduled it, and
heartbeats that task: at 80 % of the workflow task timeout (8 s of the default 10 s) it
completes the task with no commands and takes a new one at once. The server keeps, in the
pending workflow task's ``original_scheduled_time``, when that chain of heartbeated tasks
began (measured on the dev server, Temporal CLI 1.9.1 / Server 1.32.0: the first
heartbeat's time, kept until the chain ends), and ``scheduled_time`` is the latest link's.
Their difference, both on the server's clock, is how long the local activity has run at
least (it ran 8 s before the chain began, and up to 8 s since the latest link).

Nothing else in an order's workflow is a local activity, so a chain that is long is the
creation's record. One attempt lasts at most ``RECORD_TIMEOUT`` and waits at most the
retry policy's ``maximum_interval`` before the next, so a chain ``T`` long is on attempt
``T // (timeout + maximum interval) + 1`` or later: a chain one such period long has
failed at least once, while a creation that is merely slow (every attempt still within its
timeout) is never counted as failing. The attempts themselves, and the error, are only in
the worker's log and its ``temporal_local_activity_execution_failed`` metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from temporalio.api.enums.v1 import PendingWorkflowTaskState
from temporalio.api.workflow.v1 import PendingWorkflowTaskInfo

from bulkorder.workflows.messages import RECORD_ACTIVITY
from bulkorder.workflows.order_rules import RECORD_RETRY, RECORD_TIMEOUT

#: The longest one attempt of the creation's record and its wait for the next can take:
#: a heartbeat chain this long has seen one failed attempt at least.
ATTEMPT_PERIOD = RECORD_TIMEOUT + (RECORD_RETRY.maximum_interval or timedelta(seconds=100))


@dataclass(frozen=True)
class WorkflowTask:
    """The workflow task an order's workflow has open, as Temporal last saw it."""

    #: ``scheduled`` (waiting for a worker) or ``started`` (a worker runs it).
    state: str
    attempt: int
    #: When this task was scheduled (for a heartbeated task: the chain's latest link).
    scheduled_at: datetime | None
    #: When the chain of heartbeated tasks began (``scheduled_at`` when there is none).
    original_scheduled_at: datetime | None
    started_at: datetime | None

    @property
    def heartbeated_for(self) -> timedelta:
        """How long the worker has kept this task open by heartbeats (0: not heartbeated)."""
        if self.scheduled_at is None or self.original_scheduled_at is None:
            return timedelta(0)
        return max(self.scheduled_at - self.original_scheduled_at, timedelta(0))


@dataclass(frozen=True)
class FailingCreation:
    """The creation's record, a local activity, retried after a failure."""

    #: When Temporal first saw the workflow task the record keeps open.
    since: datetime
    #: How long it has been retried at least (the heartbeat chain's length).
    seconds: float
    #: The attempt it is on, at least (its real attempts are in the worker's log).
    attempt_at_least: int
    activity_type: str = RECORD_ACTIVITY

    def describe(self) -> str:
        return (
            f"creation not recorded: its record keeps failing (local activity {self.activity_type}, "
            f"retried for {self.seconds:.0f} s or more, attempt {self.attempt_at_least} or later), "
            "see the worker log"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "step": "creation",
            "activity_type": self.activity_type,
            "local_activity": True,
            "since": self.since.isoformat().replace("+00:00", "Z"),
            "seconds": round(self.seconds, 1),
            "attempt_at_least": self.attempt_at_least,
        }


def read_workflow_task(raw_description: Any) -> WorkflowTask | None:
    """The pending workflow task of a ``describe()``'s ``raw_description`` (None: none)."""
    if not raw_description.HasField("pending_workflow_task"):
        return None
    info: PendingWorkflowTaskInfo = raw_description.pending_workflow_task
    return WorkflowTask(
        state=_state_name(info.state),
        attempt=max(int(info.attempt), 1),
        scheduled_at=_time(info, "scheduled_time"),
        original_scheduled_at=_time(info, "original_scheduled_time"),
        started_at=_time(info, "started_time"),
    )


def failing_creation(task: WorkflowTask | None, *, min_attempts: int = 2) -> FailingCreation | None:
    """The creation's record if its workflow task shows it retried until attempt
    ``min_attempts`` at least (see the module's docstring for why that is certain)."""
    if task is None or task.original_scheduled_at is None:
        return None
    held = task.heartbeated_for
    attempt = int(held / ATTEMPT_PERIOD) + 1
    if attempt < max(min_attempts, 2):
        return None
    return FailingCreation(since=task.original_scheduled_at, seconds=held.total_seconds(), attempt_at_least=attempt)


def _state_name(state: int) -> str:
    try:
        name = PendingWorkflowTaskState.Name(state)  # type: ignore[arg-type]
    except ValueError:
        return f"unknown({int(state)})"
    return name.removeprefix("PENDING_WORKFLOW_TASK_STATE_").lower()


def _time(info: PendingWorkflowTaskInfo, name: str) -> datetime | None:
    if not info.HasField(name):  # type: ignore[arg-type]
        return None
    return getattr(info, name).ToDatetime(tzinfo=timezone.utc)  # type: ignore[no-any-return]
