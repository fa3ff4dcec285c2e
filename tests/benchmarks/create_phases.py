"""Where a ``create`` (Update-With-Start) spends its time, read from its workflow's history.

The server stamps every event, so each probe order's history says how long the create
waited for a workflow task, ran it, waited for the record activity, ran it (the event
store's write), and waited for the workflow task that completes the update. The client's
own figure minus the server's span is the calls' way there and back (gRPC, the client's
codec, Update-With-Start's answer).
"""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

#: (phase, event that starts it, event that ends it); the n-th event of a type when repeated.
PHASES = (
    ("workflow task 1: wait for a poller", ("WORKFLOW_TASK_SCHEDULED", 0), ("WORKFLOW_TASK_STARTED", 0)),
    ("workflow task 1: run on the worker", ("WORKFLOW_TASK_STARTED", 0), ("WORKFLOW_TASK_COMPLETED", 0)),
    ("record activity: wait for a slot/poller", ("ACTIVITY_TASK_SCHEDULED", 0), ("ACTIVITY_TASK_STARTED", 0)),
    ("record activity: run (event store)", ("ACTIVITY_TASK_STARTED", 0), ("ACTIVITY_TASK_COMPLETED", 0)),
    ("workflow task 2: wait for a poller", ("WORKFLOW_TASK_SCHEDULED", 1), ("WORKFLOW_TASK_STARTED", 1)),
    ("workflow task 2: run on the worker", ("WORKFLOW_TASK_STARTED", 1), ("WORKFLOW_TASK_COMPLETED", 1)),
    ("server: started → update completed", ("WORKFLOW_EXECUTION_STARTED", 0), ("WORKFLOW_EXECUTION_UPDATE_COMPLETED", 0)),
)


async def create_phases(client: Client, workflow_ids: list[str]) -> dict[str, list[float]]:
    """Seconds of every phase of ``PHASES`` in each workflow's first events (a phase a
    history lacks, e.g. a local activity's, is left out for that workflow)."""
    phases: dict[str, list[float]] = {name: [] for name, _, _ in PHASES}
    for workflow_id in workflow_ids:
        times: dict[str, list[Any]] = {}
        async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
            kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
            times.setdefault(kind, []).append(event.event_time.ToDatetime())
            if kind == "WORKFLOW_EXECUTION_UPDATE_COMPLETED":
                break
        for name, (start, nth_start), (end, nth_end) in PHASES:
            if len(times.get(start, ())) > nth_start and len(times.get(end, ())) > nth_end:
                phases[name].append((times[end][nth_end] - times[start][nth_start]).total_seconds())
    return phases


async def event_counts(client: Client, workflow_id: str) -> dict[str, int]:
    """How many events of each type the workflow's runs hold (following continue-as-new)."""
    counts: dict[str, int] = {}
    handle = client.get_workflow_handle(workflow_id)
    async for event in handle.fetch_history_events():
        kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        counts[kind] = counts.get(kind, 0) + 1
    return counts


async def event_timeline(client: Client, workflow_id: str, events: int = 16) -> list[tuple[str, float]]:
    """The first ``events`` events of the workflow: (type, ms after the first event)."""
    out: list[tuple[str, float]] = []
    first = None
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        when = event.event_time.ToDatetime()
        first = first or when
        out.append((EventType.Name(event.event_type).removeprefix("EVENT_TYPE_"), (when - first).total_seconds() * 1000))
        if len(out) >= events:
            break
    return out
