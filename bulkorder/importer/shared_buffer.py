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
file in turn and nothing needs a lock. The file grows to the largest message it carried,
as the pipe's buffers did; a ``bytes`` shorter than :data:`OUT_OF_BAND_MIN` stays in
the pickle.

What goes out of band is chosen by the type pickled: :func:`out_of_band` wraps a large
``bytes`` as a :class:`pickle.PickleBuffer` in a ``__reduce__`` (``RawBatch.data``,
``StageResult.data``). Pickled anywhere else (in band), such a value is plain ``bytes``
again when loaded.
"""

from __future__ import annotations

import mmap
import os
import pickle
import struct
import tempfile
from typing import IO, Any

__all__ = ["OUT_OF_BAND_MIN", "SharedBuffer", "as_bytes", "out_of_band", "read_message", "write_message"]

#: A ``bytes`` at least this long crosses out of band (smaller ones cost more to place
#: than to pickle).
OUT_OF_BAND_MIN = 64 * 1024
#: A message: the pickle's length and the number of out-of-band buffers, then each
#: buffer's length; the buffers lie one after the other from the shared file's start.
_HEADER = struct.Struct("<QI")
_LENGTH = struct.Struct("<Q")
_FIRST_SIZE = 8 << 20


def out_of_band(data: bytes) -> bytes | pickle.PickleBuffer:
    """``data`` as a ``__reduce__`` should return it: large ones as a :class:`pickle.PickleBuffer`."""
    return pickle.PickleBuffer(data) if len(data) >= OUT_OF_BAND_MIN else data


def as_bytes(data: Any) -> bytes:
    """``data`` as ``bytes``, without a copy when it already is (the loader's side of :func:`out_of_band`)."""
    return data if type(data) is bytes else bytes(data)


class EndOfMessages(Exception):
    """The stream ended (the other side closed it or died), or a message does not add up."""


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
            fd = os.memfd_create("bulkorder-encoder", os.MFD_CLOEXEC)  # inherited through pass_fds only
        else:
            handle = tempfile.TemporaryFile()  # noqa: SIM115 - its descriptor is kept, the object dropped
            fd = os.dup(handle.fileno())
            handle.close()
        return cls(fd)

    @classmethod
    def attach(cls, fd: int) -> SharedBuffer:
        return cls(fd)

    def _view(self, size: int, *, grow: bool) -> mmap.mmap:
        """The file mapped, at least ``size`` bytes of it: grown by the side writing, only
        remapped by the side reading (which never grows it for a length it was told)."""
        if self._map is not None and len(self._map) >= size:
            return self._map
        current = os.fstat(self.fd).st_size
        if current < size:
            if not grow:
                raise EndOfMessages(f"a message of {size:,} shared bytes, and the shared file holds {current:,}")
            current = max(size, _FIRST_SIZE, 2 * current)
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
        shared = self._view(sum(lengths), grow=False)
        taken, offset = [], 0
        for length in lengths:
            taken.append(shared[offset : offset + length])
            offset += length
        return taken

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        os.close(self.fd)


def write_message(stream: IO[bytes], value: object, shared: SharedBuffer | None = None) -> None:
    """Send ``value``; its out-of-band ``bytes`` through ``shared`` (in the pickle without one)."""
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(value, protocol=5, buffer_callback=buffers.append if shared is not None else None)
    lengths = shared.put(buffers) if buffers and shared is not None else []
    stream.write(_HEADER.pack(len(data), len(lengths)) + b"".join(_LENGTH.pack(length) for length in lengths))
    stream.write(data)
    stream.flush()


def read_message(stream: IO[bytes], shared: SharedBuffer | None = None) -> Any:
    """The next message; :class:`EndOfMessages` at the end of the stream."""
    header = _read_exactly(stream, _HEADER.size)
    length, count = _HEADER.unpack(header)
    lengths = [_LENGTH.unpack(_read_exactly(stream, _LENGTH.size))[0] for _ in range(count)]
    data = _read_exactly(stream, length)
    if count and shared is None:
        raise EndOfMessages("a message with out-of-band buffers, and no shared buffer to take them from")
    return pickle.loads(data, buffers=shared.take(lengths) if count and shared is not None else None)


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise EndOfMessages(f"the stream ended after {len(data)} of {size} bytes")
    return data
