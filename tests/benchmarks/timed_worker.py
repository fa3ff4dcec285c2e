"""``bulkorder worker``, timed from inside: where a create's first workflow task goes.

    python -m tests.benchmarks.timed_worker   (the environment of ``bulkorder worker``;
        BULKORDER_BENCH_TIMINGS=<file.json> receives the timings at exit; SIGUSR1 starts
        them again from nothing)

Benchmark code, not product code: wraps temporalio's worker internals (1.35) to time, for
each new run's activations (the create's workflow task) and each record activity:

- ``decode``: the activation's payloads decoded (the codec: the order's data key, the
  first time this process sees the order, is a GET from the blob store);
- ``instance``: the workflow instance made (the sandbox, when on; the event loop's thread);
- ``activate``: the workflow code run (the workflow-task thread);
- ``encode``: the completion's payloads encoded;
- ``record``: the record activity (the creation's local activity, or a batch record).

Each is measured in wall time, in the thread's CPU time (``time.thread_time``) and in the
time the thread waited on the kernel's run queue (``/proc/self/task/<tid>/schedstat``: a
thread that is ready but no core is free). What is left of the wall time, wall − CPU −
run queue, is time the thread was blocked: for code that does no I/O (``instance``,
``activate``), that is waiting for the GIL held by another thread of this process.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import threading
import time
from typing import Any, Callable

import temporalio.bridge.worker as bridge_worker
import temporalio.worker._workflow as workflow_worker

_lock = threading.Lock()
_samples: dict[str, list[tuple[float, float, float]]] = {}


def _runqueue_seconds() -> float:
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as stat:
            return int(stat.read().split()[1]) / 1e9
    except OSError:
        return 0.0


class _Span:
    """Wall, thread CPU and run-queue seconds of one section run in one thread."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> "_Span":
        self.wall, self.cpu, self.queue = time.perf_counter(), time.thread_time(), _runqueue_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        sample = (time.perf_counter() - self.wall, time.thread_time() - self.cpu, _runqueue_seconds() - self.queue)
        with _lock:
            _samples.setdefault(self.name, []).append(sample)


def _is_new_run(act: Any) -> bool:
    return any(job.HasField("initialize_workflow") for job in act.jobs)


def _install() -> None:
    created = workflow_worker._WorkflowWorker._create_workflow_instance

    def create_instance(self: Any, act: Any, init: Any) -> Any:
        with _Span("instance (the workflow runner, on the event loop thread)"):
            return created(self, act, init)

    workflow_worker._WorkflowWorker._create_workflow_instance = create_instance

    activate = workflow_worker._RunningWorkflow.activate
    first_runs: set[str] = set()

    def timed_activate(self: Any, act: Any) -> Any:
        new = _is_new_run(act)
        if new:
            first_runs.add(act.run_id)
        if new:
            name = "activate, new run: 1st"
        elif act.run_id in first_runs:
            name = "activate, new run: 2nd (local activity resolved)"
            first_runs.discard(act.run_id)
        else:
            name = "activate, other"
        with _Span(name):
            return activate(self, act)

    workflow_worker._RunningWorkflow.activate = timed_activate

    decode = bridge_worker.decode_activation

    async def timed_decode(act: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await decode(act, *args, **kwargs)
        finally:
            name = "decode, new run (wall)" if _is_new_run(act) else "decode, other (wall)"
            with _lock:
                _samples.setdefault(name, []).append((time.perf_counter() - started, 0.0, 0.0))

    bridge_worker.decode_activation = timed_decode
    workflow_worker.temporalio.bridge.worker.decode_activation = timed_decode

    from bulkorder.workflows.activities import OrderActivities

    record = OrderActivities.record_order_change

    def timed_record(self: Any, change: Any) -> Any:
        name = "record: creation (local activity)" if change.create else "record: batches"
        with _Span(name):
            return record(self, change)

    # Keep the activity definition temporalio reads off the function.
    for attribute in ("__temporal_activity_definition",):
        if hasattr(record, attribute):
            setattr(timed_record, attribute, getattr(record, attribute))
    timed_record.__name__ = record.__name__
    timed_record.__qualname__ = record.__qualname__
    OrderActivities.record_order_change = timed_record  # type: ignore[method-assign]


def summary() -> dict[str, dict[str, float]]:
    """Per section: count, and p50 / mean of wall, CPU, run queue and the rest (ms)."""
    out: dict[str, dict[str, float]] = {}
    with _lock:
        items = {name: list(values) for name, values in _samples.items()}
    for name, values in items.items():
        walls = sorted(v[0] for v in values)
        out[name] = {
            "count": len(values),
            "wall_p50_ms": walls[len(walls) // 2] * 1000,
            "wall_p99_ms": walls[min(len(walls) - 1, int(0.99 * len(walls)))] * 1000,
            "wall_mean_ms": sum(walls) / len(walls) * 1000,
            "cpu_mean_ms": sum(v[1] for v in values) / len(values) * 1000,
            "runqueue_mean_ms": sum(v[2] for v in values) / len(values) * 1000,
            "blocked_mean_ms": sum(v[0] - v[1] - v[2] for v in values) / len(values) * 1000,
        }
    return out


def _write() -> None:
    path = os.environ.get("BULKORDER_BENCH_TIMINGS")
    if path:
        with open(path, "w") as out:
            json.dump(summary(), out, indent=1)


def reset(*_: object) -> None:
    """Forget what was timed so far (SIGUSR1: the fleet is about to start)."""
    with _lock:
        _samples.clear()


def _experiment_runner() -> None:
    """BULKORDER_BENCH_RUNNER=unsandboxed: the worker without the sandbox (an experiment)."""
    if os.environ.get("BULKORDER_BENCH_RUNNER") != "unsandboxed":
        return
    import temporalio.worker

    init = temporalio.worker.Worker.__init__

    def unsandboxed(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["workflow_runner"] = temporalio.worker.UnsandboxedWorkflowRunner()
        init(self, *args, **kwargs)

    temporalio.worker.Worker.__init__ = unsandboxed  # type: ignore[method-assign]


def main(run: Callable[[list[str]], int] | None = None) -> int:
    _install()
    _experiment_runner()
    signal.signal(signal.SIGUSR1, reset)
    atexit.register(_write)
    from bulkorder.cli import main as cli_main

    return (run or cli_main)(["worker"])


if __name__ == "__main__":
    raise SystemExit(main())
