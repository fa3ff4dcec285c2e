"""The import the fault cases run: ``bulkorder import`` as a child process, fed through a gate.

A fault must land *mid-import*. Waiting for some batches to be recorded and then injecting
the fault is a race the import can win on a fast machine (it ended before the fault, and
the case proved nothing). So the cases feed the import through its stdin and hold back
the rest of the file until the fault is in place: the import cannot end before its input
does, whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from tests.faults.harness import BulkorderProcess

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
