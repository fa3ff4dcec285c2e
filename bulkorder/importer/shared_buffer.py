"""The bytes of a batch between the importer and an encoding process, without a pipe.

A batch's input (~2.4 MB for 5,000 items) went to its encoding process pickled into a
pipe, and its encoded blob came back the same way: four copies of every byte (pickle, the
kernel's pipe in and out, unpickle) and a thread busy writing, 0.5 CPU-s per million
items in the importer's main process alone (measured, docs/benchmarks.md). Now each
encoding process shares one memory file with the importer (``memfd_create``, or an
unlinked temporary file where there is none, handed over as an inherited descriptor, so
nothing is left behind when either dies); the pipe carries a small pickle, and the large
``bytes`` inside it travel out of band (pickle protocol 5): written once into the shared
file, read once out of it.

Only one message is in flight per process at a time (the importer sends a task and
waits for its reply), so the importer's request and the process's reply use the same
file in turn and nothing needs a lock; each side writes the bytes before the header that
tells the other side to read them. The file is 8 MiB at first and doubles when a message
needs more (only the side writing grows it; the side reading refuses a length past its
end); once a message larger than 8 MiB is read, the pages beyond the first 8 MiB are given
back (``MADV_REMOVE``), so an outlier batch does not stay in memory for the pool's life.
The side writing reserves what a message needs (``posix_fallocate``) before it writes, so a
full /dev/shm or memory limit is an error, not a SIGBUS on a page of the mapping. A ``bytes`` shorter than :data:`OUT_OF_BAND_MIN` stays in the pickle.

What goes out of band is chosen by the type pickled: :func:`reduce_out_of_band` is the
``__reduce_ex__`` of a dataclass whose ``data`` field is large ``bytes`` (``RawBatch``,
``StageResult``). Pickled anywhere else (in band), such a value is plain ``bytes`` again
when loaded. A JSON array's batch holds its elements as many small ``bytes`` in
``records``: those stay in the pickle.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import pickle
import struct
import tempfile
from typing import IO, Any

__all__ = [
    "OUT_OF_BAND_MIN", "EndOfMessages", "SharedBuffer", "UnreadableMessage", "UnsendableMessage", "read_message",
    "reduce_out_of_band", "write_message",
]

#: A ``bytes`` at least this long crosses out of band (smaller ones cost more to place
#: than to pickle).
OUT_OF_BAND_MIN = 64 * 1024
#: A message: a mark, the pickle's length and the number of out-of-band buffers, then
#: each buffer's length; the buffers lie one after the other from the shared file's start.
#: The mark tells a message from anything else written into the pipe (a C library
#: printing to the child's stdout), before any length is believed.
_MARK = b"BOm1"
_HEADER = struct.Struct("<4sQI")
_LENGTH = struct.Struct("<Q")
_FIRST_SIZE = 8 << 20


def reduce_out_of_band(value: Any, protocol: Any) -> tuple[Any, ...]:
    """The ``__reduce_ex__`` of a dataclass with a ``data: bytes`` field: every field, and
    with protocol 5 a large ``data`` as a :class:`pickle.PickleBuffer` (out of band when the
    pickler has a ``buffer_callback``, plain ``bytes`` again otherwise)."""
    state = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    data = state["data"]
    if int(protocol) >= 5 and len(data) >= OUT_OF_BAND_MIN:
        state["data"] = pickle.PickleBuffer(data)
    return (_rebuild, (type(value), state))


def _rebuild(cls: type, state: dict[str, Any]) -> Any:
    data = state["data"]
    if type(data) is not bytes:  # a buffer the loader was given: copied once, here
        state["data"] = bytes(data)
    return cls(**state)


class EndOfMessages(Exception):
    """The stream ended (the other side closed it or died), or a message does not add up:
    nothing more can be read from it. ``clean``: it ended between two messages."""

    def __init__(self, reason: str, *, clean: bool = False) -> None:
        super().__init__(reason)
        self.clean = clean


class UnsendableMessage(Exception):
    """A value that cannot be sent (it does not pickle, or the shared file cannot take its
    buffers): nothing was written to the stream, which is still in step."""


class UnreadableMessage(Exception):
    """A message was read whole but its pickle cannot be loaded here (an exception type
    that does not unpickle, say): the stream is still in step, the next message can be read."""


class SharedBuffer:
    """One memory file shared by the importer and one encoding process.

    The importer makes it (:meth:`create`) and passes :attr:`fd` to the child
    (``subprocess.Popen(pass_fds=...)``), which opens it with :meth:`attach`."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._map: mmap.mmap | None = None

    @classmethod
    def create(cls) -> SharedBuffer:
        if hasattr(os, "memfd_create"):
            try:
                return cls(os.memfd_create("bulkorder-encoder", os.MFD_CLOEXEC))  # inherited through pass_fds only
            except OSError:  # a sandbox without memfd (ENOSYS): the file below
                pass
        # An unlinked file, in memory where there is a /dev/shm. Its descriptor, like
        # every one Python opens, is not inherited but through pass_fds.
        folder = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        handle = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 - its descriptor is kept, the object dropped
        fd = os.dup(handle.fileno())
        handle.close()
        return cls(fd)

    @classmethod
    def attach(cls, fd: int) -> SharedBuffer:
        return cls(fd)

    def _view(self, size: int, *, grow: bool) -> mmap.mmap:
        """The file mapped, at least ``size`` bytes of it: grown by the side writing, only
        remapped by the side reading (which never grows it for a length it was told)."""
        if grow and size > _FIRST_SIZE and hasattr(os, "posix_fallocate"):
            # Reserved before writing (again: the reader may have given the pages back), so
            # a full /dev/shm or memory limit is an error here, not a SIGBUS in the copy.
            os.posix_fallocate(self.fd, 0, size)
        if self._map is not None and len(self._map) >= size:
            return self._map
        current = os.fstat(self.fd).st_size
        if current < size:
            if not grow:
                raise EndOfMessages(f"a message of {size:,} shared bytes, and the shared file holds {current:,}")
            current = max(size, _FIRST_SIZE, 2 * current)
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(self.fd, 0, min(current, max(size, _FIRST_SIZE)))
            os.ftruncate(self.fd, current)
        if self._map is not None:
            self._map.close()
        self._map = mmap.mmap(self.fd, current)
        return self._map

    def put(self, buffers: list[pickle.PickleBuffer]) -> list[int]:
        """Copy ``buffers`` in, one after the other; their lengths."""
        views = [buffer.raw() for buffer in buffers]
        lengths = [view.nbytes for view in views]
        shared = self._view(sum(lengths), grow=True)
        offset = 0
        for view, length in zip(views, lengths):
            shared[offset : offset + length] = view
            offset += length
            view.release()
        return lengths

    def take(self, lengths: list[int]) -> list[bytes]:
        """The buffers :meth:`put` placed, as ``bytes`` (copied out: the file is reused)."""
        total = sum(lengths)
        shared = self._view(total, grow=False)
        taken, offset = [], 0
        for length in lengths:
            taken.append(shared[offset : offset + length])
            offset += length
        if total > _FIRST_SIZE:
            self._give_back(shared, total)
        return taken

    @staticmethod
    def _give_back(shared: mmap.mmap, total: int) -> None:
        # The pages past the first 8 MiB go back to the system; the file keeps its size
        # (the other side's mapping may be that long) and reads zeros there until reused.
        if not hasattr(mmap, "MADV_REMOVE"):
            return
        length = min(len(shared), -(-total // mmap.PAGESIZE) * mmap.PAGESIZE) - _FIRST_SIZE
        try:
            shared.madvise(mmap.MADV_REMOVE, _FIRST_SIZE, length)
        except OSError:  # a file system that cannot punch holes: the pages stay
            pass

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        os.close(self.fd)


def write_message(stream: IO[bytes], value: object, shared: SharedBuffer | None = None) -> None:
    """Send ``value``; its out-of-band ``bytes`` through ``shared`` (in the pickle without one).
    :class:`UnsendableMessage` if it cannot be (nothing written); ``OSError`` from the stream."""
    buffers: list[pickle.PickleBuffer] = []
    try:
        data = pickle.dumps(value, protocol=5, buffer_callback=buffers.append if shared is not None else None)
        lengths = shared.put(buffers) if buffers and shared is not None else []
    except Exception as exc:  # noqa: BLE001 - nothing is written yet: the stream stays in step
        raise UnsendableMessage(f"{type(exc).__name__}: {exc}") from exc
    stream.write(_HEADER.pack(_MARK, len(data), len(lengths)) + b"".join(_LENGTH.pack(length) for length in lengths))
    stream.write(data)
    stream.flush()


#: The longest pickle a message may hold: a header claiming more is not one of ours
#: (something else wrote into the pipe), refused before anything is allocated for it.
MAX_PICKLE_BYTES = 1 << 36
#: The most out-of-band buffers one message may name.
MAX_BUFFERS = 1 << 16


def read_message(stream: IO[bytes], shared: SharedBuffer | None = None) -> Any:
    """The next message; :class:`EndOfMessages` at the end of the stream (or when it
    cannot be trusted to be in step any more), :class:`UnreadableMessage` when a whole
    message was read and its pickle does not load."""
    header = stream.read(_HEADER.size)
    if not header:
        raise EndOfMessages("the stream ended", clean=True)
    if len(header) < _HEADER.size:
        raise EndOfMessages(f"the stream ended after {len(header)} of a header's {_HEADER.size} bytes")
    mark, length, count = _HEADER.unpack(header)
    if mark != _MARK:
        raise EndOfMessages(f"not a message: {header[:16]!r} where a message starts")
    if length > MAX_PICKLE_BYTES or count > MAX_BUFFERS:
        raise EndOfMessages(f"not a message: a header claiming {length:,} bytes and {count:,} buffers")
    lengths = [_LENGTH.unpack(_read_exactly(stream, _LENGTH.size))[0] for _ in range(count)]
    data = _read_exactly(stream, length)
    if count and shared is None:
        raise EndOfMessages("a message with out-of-band buffers, and no shared buffer to take them from")
    buffers = shared.take(lengths) if count and shared is not None else None
    try:
        return pickle.loads(data, buffers=buffers)
    except Exception as exc:  # noqa: BLE001 - whatever the pickle raises, the stream is in step
        raise UnreadableMessage(f"{type(exc).__name__}: {exc}") from exc


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise EndOfMessages(f"the stream ended after {len(data)} of {size:,} bytes")
    return data
