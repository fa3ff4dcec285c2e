"""The import the fault cases run: ``bulkorder import`` as a child process, fed through a gate.

A fault must land *mid-import*. Waiting for some batches to be recorded and then injecting
the fault is a race the import can win on a fast machine (it ended before the fault, and
the case proved nothing). So the cases feed the import through its stdin and hold back
the rest of the file until the fault is in place: the import cannot end before its input
does, whatever the machine's speed.
"""

from __future__ import annotations

from tests.fixtures.orders import TEST_IDENTITY

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from bulkorder.domain.application import Orders
from tests.faults.harness import (
    SCALE,
    Agreement,
    BulkorderProcess,
    Stopwatch,
    check_agreement,
    check_replays,
    closed,
    deployment_client,
    retrying,
    case_orders,
    stack_env,
    worker_process,
)
from bulkorder.workflows.client import OrderClient

#: Bytes written to the importer's stdin at a time.
CHUNK = 1 << 20


@dataclass(frozen=True)
class ItemsFile:
    """An NDJSON file of generated items, written once per session."""

    path: Path
    items: int


class InputGate:
    """How much of an items file the import may read: whole batches, released by the case.

    Every run of the import (a rerun resumes by reading the input again from the start)
    gets the released part at once and the rest as it is released."""

    def __init__(self, items: ItemsFile, batch_size: int) -> None:
        self.items = items
        self.batch_size = batch_size
        #: Byte offset where each batch starts, plus the file's size.
        self.batch_offsets = _batch_offsets(items.path, batch_size)
        self.size = self.batch_offsets[-1]
        self.released = 0
        self._changed = asyncio.Condition()

    @property
    def batches(self) -> int:
        return len(self.batch_offsets) - 1

    async def release_batches(self, count: int) -> None:
        """Let the import read its first ``count`` batches (and a line of the next, so the
        reader hands the last of them on without waiting for more input)."""
        if count >= self.batches:
            await self.release_all()
            return
        await self._release(self.batch_offsets[count] + 1)

    async def release_all(self) -> None:
        await self._release(self.size)

    async def _release(self, offset: int) -> None:
        async with self._changed:
            self.released = max(self.released, offset)
            self._changed.notify_all()

    async def feed(self, stdin: asyncio.StreamWriter) -> None:
        """Write the released input to one run of the import, then the rest as released;
        close its stdin at the end of the file. Returns quietly if the import exits first."""
        position = 0
        with contextlib.suppress(BrokenPipeError, ConnectionResetError), self.items.path.open("rb") as source:
            while position < self.size:
                async with self._changed:
                    await self._changed.wait_for(lambda: self.released > position)
                    end = self.released
                while position < end:
                    chunk = source.read(min(CHUNK, end - position))
                    stdin.write(chunk)
                    await stdin.drain()
                    position += len(chunk)
            stdin.close()
            await stdin.wait_closed()


def _batch_offsets(path: Path, batch_size: int) -> list[int]:
    """Byte offsets where line ``0, batch_size, 2 * batch_size, ...`` starts, and the file's size."""
    offsets = [0]
    position = 0
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            position += len(line)
            if number % batch_size == 0:
                offsets.append(position)
    if offsets[-1] != position:
        offsets.append(position)
    return offsets


class CliImportDriver:
    """Imports a file into an order with ``bulkorder import`` (a child process), as a user
    does; if the import stops (an exit code of 1: Temporal, the blob store or the event
    store unreachable), runs the same command again, which resumes it (the importer's
    documented recovery). Bad input (exit 2) fails the case.

    With a :class:`InputGate`, the file reaches the import through its stdin
    (``bulkorder import ORDER /dev/stdin``), only as far as the case has released it."""

    name = "bulkorder import"

    def __init__(self, env: Mapping[str, str], log: Path, *, batch_size: int, max_runs: int = 30) -> None:
        self.env = dict(env)
        self.log = log
        self.batch_size = batch_size
        self.max_runs = max_runs
        self.runs = 0

    def gate(self, items: ItemsFile) -> InputGate:
        return InputGate(items, self.batch_size)

    async def run(self, order_id: str, customer_id: str, items: ItemsFile | InputGate) -> None:
        gate = items if isinstance(items, InputGate) else None
        source = ["/dev/stdin", "--format", "ndjson"] if gate else [str(items.path)]  # type: ignore[union-attr]
        args = [
            "import", order_id, *source, "--create", "--customer", customer_id,
            "--batch-size", str(self.batch_size), "--quiet", "--json",
        ]
        while True:
            self.runs += 1
            process = BulkorderProcess(args, self.env, self.log, stdin_pipe=gate is not None)
            await process.start()
            feeding = None
            if gate is not None:
                assert process.process is not None and process.process.stdin is not None
                feeding = asyncio.create_task(gate.feed(process.process.stdin))
            try:
                code = await process.wait(timeout=900)
            finally:
                if feeding is not None:
                    feeding.cancel()
                    await asyncio.gather(feeding, return_exceptions=True)
            if code == 0:
                return
            if code != 1 or self.runs >= self.max_runs:
                raise AssertionError(f"bulkorder import exited with {code} (run {self.runs}):\n{process.tail()}")
            await asyncio.sleep(1.0)  # then the same command again: it resumes

    @property
    def reruns(self) -> int:
        return max(0, self.runs - 1)


class ImportCase:
    """What every import fault case runs: a ``bulkorder worker`` process and ``bulkorder
    import`` (through an :class:`InputGate`) on the case's own stack, the order's event
    store, and a client with the deployment's data converter.

    A case starts it (:meth:`start`), runs the import (:meth:`import_task`) with its fault,
    then :meth:`finish` submits the order, waits for fulfillment and checks that the store
    and the workflow agree and that every run replays; :meth:`stop` in a ``finally``.
    """

    def __init__(
        self,
        label: str,
        tmp_path: Path,
        items: ItemsFile,
        *,
        temporal_address: str,
        task_queue: str,
        event_store_env: Mapping[str, str],
        blob_env: Mapping[str, str],
        extra: Mapping[str, str] | None = None,
        orders_env: Mapping[str, str] | None = None,
    ) -> None:
        self.order_id = f"customer-1/{label}-{uuid.uuid4().hex[:10]}"
        self.items = items
        self.task_queue = task_queue
        self.env = stack_env(
            home=tmp_path, temporal_address=temporal_address, task_queue=task_queue,
            event_store_env=event_store_env, blob_env=blob_env, extra=extra,
        )
        #: Where the case reads the event store (an admin's view when the fault is the store).
        self.orders_env = dict(orders_env or event_store_env)
        self.worker = worker_process(self.env, tmp_path / "worker.log")
        # The importer waits until the event store has every batch: it reads the case's view.
        self.importer = CliImportDriver(
            {**self.env, **self.orders_env}, tmp_path / "import.log", batch_size=SCALE.import_batch_items
        )
        self.gate = self.importer.gate(items)
        self.watch = Stopwatch()
        self._orders: Orders | None = None
        self._client: OrderClient | None = None

    @property
    def batches(self) -> int:
        return self.gate.batches

    @property
    def orders(self) -> Orders:
        """The event store as the case sees it (opened on first use: after the worker
        started, whose PostgreSQL role creates the tables)."""
        if self._orders is None:
            self._orders = case_orders(self.env, self.orders_env)
        return self._orders

    async def client(self) -> OrderClient:
        if self._client is None:
            self._client = OrderClient(await deployment_client(self.env), task_queue=self.task_queue)
        return self._client

    async def start(self) -> None:
        await self.worker.start()

    def import_task(self) -> asyncio.Task[None]:
        """``bulkorder import`` (run again after each exit 1) as a task, fed through the gate."""
        return asyncio.create_task(self.importer.run(self.order_id, "customer-1", self.gate))

    async def finish(self, *, submit: bool = True) -> tuple[Agreement, int]:
        """Submit (unless done already), wait for the order to close, then check agreement
        and replay every run: (the agreement, runs replayed)."""
        client = await self.client()
        if submit:
            await retrying(lambda: client.submit(self.order_id), what="submit")
        final = await closed(client, self.order_id)
        agreement = check_agreement(
            self.orders, self.order_id, final, expected_items=self.items.items, expected_batches=self.batches
        )
        runs = await check_replays(client.client, [TEST_IDENTITY.workflow_id(self.order_id)])
        return agreement, runs

    async def stop(self) -> None:
        await self.worker.stop()
        if self._orders is not None:
            self._orders.close()

