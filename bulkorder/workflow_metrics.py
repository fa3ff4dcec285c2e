"""The history length of the runs a worker served, through Temporal's own metric meter.

A worker interceptor, not workflow code: it records, when a run ends (completes, fails or
continues as new), how many events its history held. Temporal's meter is replay-safe (a
replayed run records nothing) and its figures appear at the SDK's Prometheus endpoint,
which ``bulkorder worker --metrics-port`` serves on its own ``/metrics`` page. Only
temporalio is imported here: the class runs inside Temporal's workflow sandbox.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import FailureError
from temporalio.worker import ExecuteWorkflowInput, Interceptor, WorkflowInboundInterceptor, WorkflowInterceptorClassInput

HISTORY_LENGTH_METRIC = "bulkorder_run_history_length"
#: Events: continue-as-new is due near 4,096 (Temporal Cloud's suggestion); 51,200 is fatal.
HISTORY_LENGTH_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 51200)


class _RunHistoryLength(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        try:
            result = await super().execute_workflow(input)
        except (workflow.ContinueAsNewError, FailureError):
            _record_history_length()
            raise
        _record_history_length()
        return result


def _record_history_length() -> None:
    info = workflow.info()
    workflow.metric_meter().create_histogram(
        HISTORY_LENGTH_METRIC, "Events in the history of each run this worker served, when the run ended", "events"
    ).record(info.get_current_history_length(), {"workflow_type": info.workflow_type})


class HistoryLengthInterceptor(Interceptor):
    """Add to a worker's interceptors to record :data:`HISTORY_LENGTH_METRIC`."""

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _RunHistoryLength
