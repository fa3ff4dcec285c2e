"""The rule that tells a creation whose record (a local activity) keeps failing from one
merely in progress, on describe responses as the server sends them (protobuf messages
built here with the times a heartbeat chain has; tests/cli/test_stuck_creation.py sees
the same from a real server)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from temporalio.api.enums.v1 import PendingWorkflowTaskState
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionResponse

from bulkorder.workflows.order_rules import RECORD_RETRY, RECORD_TIMEOUT
from bulkorder.workflows.pending import OrderProgress
from bulkorder.workflows.workflow_task import ATTEMPT_PERIOD, failing_creation, read_workflow_task

BEGAN = datetime(2026, 12, 1, 15, 0, tzinfo=timezone.utc)


def described(held: timedelta | None, *, state: int = PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED) -> DescribeWorkflowExecutionResponse:
    """A describe whose pending workflow task has been heartbeated for ``held`` (None: no task)."""
    response = DescribeWorkflowExecutionResponse()
    if held is None:
        return response
    task = response.pending_workflow_task
    task.state = state
    task.attempt = 1
    task.original_scheduled_time.FromDatetime(BEGAN)
    task.scheduled_time.FromDatetime(BEGAN + held)
    task.started_time.FromDatetime(BEGAN + held + timedelta(milliseconds=3))
    return response


def test_an_attempt_period_is_one_timeout_and_the_longest_backoff() -> None:
    assert ATTEMPT_PERIOD == RECORD_TIMEOUT + RECORD_RETRY.maximum_interval == timedelta(seconds=30)


@pytest.mark.parametrize(
    ("held", "attempt"),
    [
        (None, None),  # no workflow task open: nothing runs
        (timedelta(0), None),  # a first workflow task: a creation in progress
        (timedelta(seconds=8), None),  # heartbeated once: slow, perhaps, not proven failing
        (timedelta(seconds=29, milliseconds=999), None),  # every attempt may still be the first
        (timedelta(seconds=30), 2),  # one attempt's longest run and wait: retried at least once
        (timedelta(seconds=95), 4),
    ],
)
def test_a_creation_is_failing_only_once_its_chain_outlasts_an_attempt(held: timedelta | None, attempt: int | None) -> None:
    found = failing_creation(read_workflow_task(described(held)))
    assert (found and found.attempt_at_least) == attempt
    if found is not None:
        assert found.since == BEGAN and found.seconds == held.total_seconds()  # type: ignore[union-attr]
        assert found.describe().startswith("creation not recorded: its record keeps failing (local activity ")


def test_min_attempts_raises_the_bar() -> None:
    task = read_workflow_task(described(timedelta(seconds=95)))
    assert failing_creation(task, min_attempts=4) is not None
    assert failing_creation(task, min_attempts=5) is None


def test_a_task_waiting_for_a_worker_is_read_with_its_state() -> None:
    task = read_workflow_task(described(timedelta(0), state=PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED))
    assert task is not None and (task.state, task.attempt, task.heartbeated_for) == ("scheduled", 1, timedelta(0))
    assert failing_creation(task) is None


def test_only_a_running_workflow_has_a_failing_creation() -> None:
    task = read_workflow_task(described(timedelta(minutes=5)))
    running = OrderProgress("acme/o-1", "running", None, [], workflow_task=task)
    closed = OrderProgress("acme/o-1", "terminated", None, [], workflow_task=task)
    assert running.failing_creation() is not None and closed.failing_creation() is None
    assert running.failing_creation().to_json()["attempt_at_least"] == 11  # type: ignore[union-attr]
