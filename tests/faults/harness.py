"""What every fault case shares: real processes, an import driver, and the agreement check.

A case runs a real flow (an import, concurrent messages, DB-first orders through the relay),
injects its fault while the flow runs, lets the system recover by itself, then checks that
the event store and the workflow agree exactly and that nothing was recorded twice, and
reports one line (see :func:`report`).
"""

from __future__ import annotations

from tests.fixtures.orders import TEST_IDENTITY_SECRET

import asyncio
import dataclasses
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Sequence, TypeVar

from temporalio.client import Client, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer

from bulkorder.encryption import event_protection
from bulkorder.runtime import data_converter
from bulkorder.settings import Settings
from bulkorder.domain.application import Orders
from bulkorder.domain.refs import BatchRef
from bulkorder.domain.summary import OrderSummary
from bulkorder.storage.errors import TransientStoreError
from bulkorder.workflows.client import OrderClient
from bulkorder.workflows.order_workflow import OrderWorkflow

T = TypeVar("T")


# ---- scale ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultScale:
    """How big each case runs. ``make faults`` runs ``full`` (the figures the issue names);
    ``make test`` runs ``reduced``: the same cases and checks on smaller flows."""

    name: str
    import_items: int
    import_batch_items: int
    worker_kills: int
    messages: int
    message_clients: int
    outage_seconds: float
    relay_orders: int
    relay_batches_per_order: int


FULL = FaultScale("full", 500_000, 1_000, 3, 10_000, 8, 10.0, 40, 5)
REDUCED = FaultScale("reduced", 50_000, 1_000, 1, 2_000, 8, 10.0, 12, 3)
SCALE = FULL if os.environ.get("BULKORDER_FAULT_SCALE", "reduced") == "full" else REDUCED


# ---- the one-line report --------------------------------------------------------------


@dataclass
class FaultLine:
    fault: str
    expected_items: int
    recorded_items: int
    duplicates: int
    seconds: float
    detail: str = ""

    def __str__(self) -> str:
        return (
            f"FAULT {self.fault:<54} expected {self.expected_items:>9,}  recorded {self.recorded_items:>9,}  "
            f"duplicates {self.duplicates}  {self.seconds:7.1f} s  {self.detail}"
        )


#: Every line reported in this session; tests/faults/conftest.py prints them at the end.
REPORTED: list[FaultLine] = []


def report(line: FaultLine) -> None:
    REPORTED.append(line)
    print(line, flush=True)


# ---- waiting on real conditions -------------------------------------------------------


async def wait_until(check: Callable[[], Any], what: str, *, timeout: float = 300.0, interval: float = 0.2) -> None:
    """Poll ``check`` (sync or async) until true; fail naming ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


def recorded_batches(orders: Orders, order_id: str) -> int:
    """Batches of the order in the event store (0 before it exists): the import's real progress."""
    return orders.summary(order_id).batch_count if orders.exists(order_id) else 0


def is_transient_rpc(err: BaseException) -> bool:
    """A Temporal call that failed because the server was briefly away (or the call was
    cut short by it): safe to repeat, since batch IDs make repeats harmless."""
    if isinstance(err, WorkflowUpdateRPCTimeoutOrCancelledError):
        return True
    return isinstance(err, RPCError) and err.status in (
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.CANCELLED,
        RPCStatusCode.UNKNOWN,
        RPCStatusCode.RESOURCE_EXHAUSTED,
    )


async def retrying(
    call: Callable[[], Awaitable[T]], *, what: str, patience: float = 300.0, on_retry: Callable[[], None] | None = None
) -> T:
    """Repeat ``call`` while it fails transiently (Temporal or the blob store away)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    delay = 0.2
    while True:
        try:
            return await call()
        except (TransientStoreError, WorkflowUpdateRPCTimeoutOrCancelledError, RPCError) as err:
            if isinstance(err, RPCError) and not is_transient_rpc(err):
                raise
            if loop.time() > deadline:
                raise AssertionError(f"{what}: still failing after {patience:.0f} s: {err}") from err
        if on_retry is not None:
            on_retry()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


# ---- data -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedBatch:
    """A batch encoded once per session; each order writes its bytes under its own batch ID."""

    ref: BatchRef
    data: bytes

    def for_order(self, batch_id: str) -> BatchRef:
        return dataclasses.replace(self.ref, batch_id=batch_id)


def order_refs(order_id: str, encoded: Sequence[EncodedBatch]) -> list[BatchRef]:
    return [batch.for_order(f"{order_id}-{index:06d}") for index, batch in enumerate(encoded)]


# ---- processes ------------------------------------------------------------------------


async def deployment_client(env: Mapping[str, str], address: str | None = None) -> Client:
    """A Temporal client as the case's ``bulkorder`` processes build theirs: same address,
    same data converter (with the claim-check codec over the case's blob store), so it can
    read every payload they write."""
    settings = Settings.from_env(env)
    return await Client.connect(address or env["TEMPORAL_ADDRESS"], data_converter=data_converter(settings))


def case_orders(env: Mapping[str, str], orders_env: Mapping[str, str]) -> Orders:
    """The event store at ``orders_env`` as the case's ``bulkorder`` processes (``env``)
    write it: with their encryption (keyring and data keys over the case's blobs)."""
    settings = Settings.from_env(env)
    return Orders(env=dict(orders_env), protection=event_protection(settings.encryption_settings, settings.blob_store))


def stack_env(
    *,
    home: Path,
    temporal_address: str,
    task_queue: str,
    event_store_env: Mapping[str, str],
    blob_env: Mapping[str, str],
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for a ``bulkorder`` child process on the case's own stack."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BULKORDER_", "TEMPORAL_", "PERSISTENCE_", "SQLITE_", "POSTGRES_", "ORDERS_"))}
    env.update(
        BULKORDER_HOME=str(home),
        TEMPORAL_ADDRESS=temporal_address,
        BULKORDER_TASK_QUEUE=task_queue,
        PYTHONUNBUFFERED="1",
        # A hung child can be asked for every thread's stack: kill -ABRT <pid> (into its log).
        PYTHONFAULTHANDLER="1",
        # The tests' identity secret: the child names orders as this process does.
        BULKORDER_IDENTITY_SECRET=TEST_IDENTITY_SECRET,
    )
    env.update(event_store_env)
    env.update(blob_env)
    env.update(extra or {})
    return env


class BulkorderProcess:
    """``python -m bulkorder.cli ARGS`` as a child process, its output appended to ``log``.
    Restartable: ``start`` again after a kill or an exit."""

    def __init__(
        self, args: Sequence[str], env: Mapping[str, str], log: Path, *, ready_line: str | None = None,
        stdin_pipe: bool = False,
    ) -> None:
        self.args = list(args)
        #: Give the child a pipe as its stdin (``process.stdin``), for a caller to write to.
        self.stdin_pipe = stdin_pipe
        self.env = dict(env)
        self.log = log
        self.ready_line = ready_line
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self, timeout: float = 60.0) -> None:
        """Start; with a ``ready_line``, return once this start has printed it."""
        before = self._log_text().count(self.ready_line) if self.ready_line else 0
        out = open(self.log, "ab")  # noqa: SIM115 - the child owns it
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bulkorder.cli", *self.args,
            env=self.env, stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            stdin=asyncio.subprocess.PIPE if self.stdin_pipe else asyncio.subprocess.DEVNULL,
        )
        out.close()
        self.starts += 1
        if self.ready_line is None:
            return
        ready_line = self.ready_line

        def ready() -> bool:
            assert self.process is not None
            if self.process.returncode is not None:
                raise AssertionError(f"bulkorder {self.args[0]} exited with {self.process.returncode}:\n{self.tail()}")
            return self._log_text().count(ready_line) > before

        await wait_until(ready, f"bulkorder {self.args[0]} to print {ready_line!r}", timeout=timeout)

    def _log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def wait(self, timeout: float = 300.0) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye to Temporal, in-flight work abandoned."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except asyncio.TimeoutError:
                await self.kill()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self._log_text().splitlines()[-lines:]) or "(no output)"


def worker_process(env: Mapping[str, str], log: Path) -> BulkorderProcess:
    return BulkorderProcess(["worker"], env, log, ready_line="worker polling task queue")


# ---- the checks -----------------------------------------------------------------------


async def closed(client: OrderClient, order_id: str, *, timeout: float = 300.0) -> OrderSummary:
    """The order's final state once its workflow completes (a case never waits forever)."""
    try:
        return await asyncio.wait_for(client.wait_closed(order_id), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"order {order_id!r}: its workflow did not close within {timeout:.0f} s") from None


@dataclass
class Agreement:
    expected_items: int
    recorded_items: int
    duplicates: int


def check_agreement(
    orders: Orders,
    order_id: str,
    workflow: OrderSummary,
    *,
    expected_items: int,
    expected_batch_ids: set[str] | None = None,
    expected_batches: int | None = None,
    status: str = "fulfilled",
) -> Agreement:
    """The event store and the workflow's final state agree exactly, and every batch is
    recorded once: the expected batch IDs if known, else the expected number of batches.
    Returns the figures for the report line."""
    counts = Counter(ref.batch_id for ref in orders.iter_batch_refs(order_id))
    duplicates = sum(count - 1 for count in counts.values())
    store = orders.summary(order_id)
    assert duplicates == 0, f"{order_id}: batches recorded more than once: {[b for b, c in counts.items() if c > 1][:5]}"
    if expected_batch_ids is not None:
        assert set(counts) == expected_batch_ids, (
            f"{order_id}: missing {len(expected_batch_ids - set(counts))}, "
            f"unexpected {len(set(counts) - expected_batch_ids)} batches"
        )
    if expected_batches is not None:
        assert len(counts) == expected_batches, f"{order_id}: {len(counts)} batches recorded, expected {expected_batches}"
    assert store.status == status, f"{order_id}: the event store says {store.status}, expected {status}"
    assert (workflow.status, workflow.item_count, workflow.batch_count, workflow.quantity, workflow.totals) == (
        store.status, store.item_count, store.batch_count, store.quantity, store.totals,
    ), f"{order_id}: the workflow ({workflow}) and the event store ({store}) disagree"
    assert workflow.version == store.version, f"{order_id}: workflow saw version {workflow.version}, store has {store.version}"
    assert workflow.pending_batches == 0
    assert store.item_count == expected_items, f"{order_id}: {store.item_count} items recorded, expected {expected_items}"
    if status == "fulfilled":
        assert workflow.report is not None and workflow.report == store.report
        assert workflow.report.item_count == store.item_count - store.rejected_items
    return Agreement(expected_items=expected_items, recorded_items=store.item_count, duplicates=duplicates)


def refs_expectation(refs: Sequence[BatchRef]) -> dict[str, Any]:
    """``check_agreement`` arguments for an order that must hold exactly ``refs``."""
    return {"expected_items": sum(ref.item_count for ref in refs), "expected_batch_ids": {ref.batch_id for ref in refs}}


async def check_replays(client: Client, workflow_ids: Sequence[str]) -> int:
    """Fetch every run of these workflows from the server and replay it on the current
    workflow code (the determinism check), decoding payloads with ``client``'s converter.
    Returns how many runs replayed."""
    # debug_mode turns off the 2 s deadlock timer only (the sandbox stays): a run whose
    # first task carries thousands of signals may take longer than that on a busy machine,
    # which says nothing about determinism.
    replayer = Replayer(workflows=[OrderWorkflow], data_converter=client.data_converter, debug_mode=True)
    replayed = 0
    for workflow_id in workflow_ids:
        async for execution in client.list_workflows(f'WorkflowId = "{workflow_id}"'):
            history = await client.get_workflow_handle(workflow_id, run_id=execution.run_id).fetch_history()
            result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
            assert result.replay_failure is None, f"{workflow_id} run {execution.run_id}: {result.replay_failure}"
            replayed += 1
    return replayed


async def failed_attempts(client: Client, workflow_id: str, activity_type: str) -> tuple[int, str]:
    """How many attempts of ``activity_type`` failed and were retried, over every run of
    the workflow, and the last failure seen: read from the history after the fact (each
    ``ActivityTaskStarted`` event holds its attempt number and the previous failure)."""
    failed, failure = 0, ""
    scheduled: dict[int, str] = {}
    async for execution in client.list_workflows(f'WorkflowId = "{workflow_id}"'):
        handle = client.get_workflow_handle(workflow_id, run_id=execution.run_id)
        async for event in handle.fetch_history_events():
            if event.HasField("activity_task_scheduled_event_attributes"):
                scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
            elif event.HasField("activity_task_started_event_attributes"):
                started = event.activity_task_started_event_attributes
                if scheduled.get(started.scheduled_event_id) == activity_type and started.attempt > 1:
                    failed += started.attempt - 1
                    failure = started.last_failure.message or failure
    return failed, failure


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started
