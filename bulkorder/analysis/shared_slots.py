"""Record batches from worker processes to the main process through shared memory.

A worker's record batch is ~420 bytes per item of Arrow buffers (sample items: 837 KB for a
batch of 2,000). Returned through ``ProcessPoolExecutor``'s pipe, each batch is pickled,
written into the pipe 64 KiB at a time, read back and unpickled: ~2 CPU-seconds per GB
between the two sides (measured: 1.05 s in the main process and 1.07 s in the workers for
1 GB), a fifth of all the CPU a million items to Parquet took.

Instead, the main process maps one anonymous shared region before the workers are forked
(they inherit it: no file, nothing left behind if a process dies) cut into ``count`` slots.
Each task is given a slot; the worker writes its batch's Arrow IPC stream straight into it
and answers with the length alone; the main process copies the stream out (one memcpy)
before the slot is handed to another task. A slot is reused only after its task's answer
was taken, so no two tasks ever write one slot, and the main process never reads a slot
being written. A stream larger than a slot comes back through the pipe, as before.
"""

from __future__ import annotations

import mmap
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

#: Bytes per slot: the IPC stream of a batch of up to ~19,000 sample items (5,000 is the
#: importer's default batch size: ~2.1 MB). Only the pages a stream touches become memory.
SLOT_BYTES = 8 * 2**20


class SharedSlots:
    """``count`` slots of ``size`` bytes in one shared anonymous mapping; create it
    before forking the workers that write into it."""

    def __init__(self, count: int, size: int | None = None) -> None:
        size = SLOT_BYTES if size is None else size
        if count < 1 or size < 1:
            raise ValueError(f"shared slots need a count and a size of at least 1, got {count} x {size}")
        self.count = count
        self.size = size
        self._map = mmap.mmap(-1, count * size)  # MAP_SHARED | MAP_ANONYMOUS: inherited by a fork

    def _view(self, slot: int) -> memoryview:
        if not 0 <= slot < self.count:
            raise ValueError(f"slot {slot} out of range 0-{self.count - 1}")
        return memoryview(self._map)[slot * self.size : (slot + 1) * self.size]

    def put(self, slot: int, batch: pa.RecordBatch) -> int | bytes:
        """In a worker: ``batch`` as an IPC stream in ``slot``; returns its length, or the
        stream itself when it does not fit in a slot (to go back through the pipe)."""
        import pyarrow as pa

        try:
            sink = pa.FixedSizeBufferWriter(pa.py_buffer(self._view(slot)))
            with pa.ipc.new_stream(sink, batch.schema) as stream:
                stream.write_batch(batch)
            return int(sink.tell())
        except OSError:  # "Write out of bounds": larger than a slot
            return ipc_bytes(batch)

    def take(self, slot: int, answer: int | bytes) -> pa.RecordBatch:
        """In the main process: the record batch a worker put in ``slot`` (its ``answer``,
        the length, or the stream itself), copied out: the slot is free again after this."""
        if isinstance(answer, bytes):
            return batch_from_ipc(answer)
        if type(answer) is not int or not 0 < answer <= self.size:
            raise ValueError(f"slot {slot}: a worker answered {answer!r}, not a stream length up to {self.size}")
        view = self._view(slot)
        try:
            stream = bytes(view[:answer])
        finally:
            view.release()
        return batch_from_ipc(stream)

    def close(self) -> None:
        self._map.close()

    def __enter__(self) -> SharedSlots:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ipc_bytes(batch: pa.RecordBatch) -> bytes:
    """``batch`` as an Arrow IPC stream (one copy of its buffers)."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as stream:
        stream.write_batch(batch)
    return sink.getvalue().to_pybytes()  # type: ignore[no-any-return]


def batch_from_ipc(stream: Any) -> pa.RecordBatch:
    """The one record batch of an IPC stream (its buffers are the stream's: no copy)."""
    import pyarrow as pa

    return pa.ipc.open_stream(stream).read_next_batch()
