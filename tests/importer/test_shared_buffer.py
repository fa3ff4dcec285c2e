"""The shared memory file between the importer and an encoding process
(bulkorder.importer.shared_buffer), through a real pipe and a real child process."""

from __future__ import annotations

import copy
import io
import os
import pickle
import subprocess
import sys

import pytest

from bulkorder.importer.encoders import EncoderPool
from bulkorder.importer.shared_buffer import (
    OUT_OF_BAND_MIN,
    EndOfMessages,
    SharedBuffer,
    UnreadableMessage,
    UnsendableMessage,
    read_message,
    write_message,
)
from bulkorder.importer.sources import RawBatch
from bulkorder.importer.stage import StageResult
from tests.importer.test_encoders import TwoPartError


def _batch(data: bytes) -> RawBatch:
    return RawBatch(position=3, batch_id="b", first_line=1, last_line=2, nbytes=len(data), data=data)


def test_large_bytes_cross_out_of_band_and_small_ones_in_the_pickle() -> None:
    shared = SharedBuffer.create()
    try:
        large, small = os.urandom(OUT_OF_BAND_MIN), b"x" * (OUT_OF_BAND_MIN - 1)
        stream = io.BytesIO()
        write_message(stream, (_batch(large), _batch(small)), shared)
        # The pickle holds the small batch's bytes and not the large one's.
        assert small in stream.getvalue()
        assert large not in stream.getvalue()
        assert len(stream.getvalue()) < len(small) + 1024
        stream.seek(0)
        got_large, got_small = read_message(stream, shared)
        assert (got_large.data, got_small.data) == (large, small)
        assert type(got_large.data) is bytes
        assert got_large.position == 3 and got_large.nbytes == len(large)
    finally:
        shared.close()


def test_the_file_grows_to_the_largest_message_and_the_other_side_follows() -> None:
    writer = SharedBuffer.create()
    reader = SharedBuffer.attach(os.dup(writer.fd))  # as the child holds it: the same file, its own mapping
    try:
        for size in (OUT_OF_BAND_MIN, 20 << 20, 1 << 20, 40 << 20):
            data = os.urandom(16) * (size // 16)
            stream = io.BytesIO()
            write_message(stream, _batch(data), writer)
            stream.seek(0)
            assert read_message(stream, reader).data == data
        assert os.fstat(writer.fd).st_size >= 40 << 20
    finally:
        writer.close()
        reader.close()


def test_without_a_shared_buffer_everything_stays_in_the_pickle() -> None:
    data = os.urandom(OUT_OF_BAND_MIN * 2)
    stream = io.BytesIO()
    write_message(stream, _batch(data), None)
    assert data in stream.getvalue()
    stream.seek(0)
    assert read_message(stream, None).data == data


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_batches_and_results_pickle_as_before_anywhere_else(protocol: int) -> None:
    # Only a message with a buffer_callback moves bytes out of band; pickled otherwise
    # (or copied), a batch and a result hold plain bytes again.
    data = os.urandom(OUT_OF_BAND_MIN * 2)
    batch = pickle.loads(pickle.dumps(_batch(data), protocol=protocol))
    result = pickle.loads(pickle.dumps(StageResult(1, "b", 1, 2, 3, data=data), protocol=protocol))
    assert type(batch.data) is bytes and batch.data == data
    assert type(result.data) is bytes and result.data == data
    assert copy.deepcopy(_batch(data)).data == data


def test_a_message_cut_short_is_the_end_of_messages() -> None:
    stream = io.BytesIO()
    write_message(stream, b"x" * 100, None)
    for cut in (0, 5, len(stream.getvalue()) - 1):
        with pytest.raises(EndOfMessages):
            read_message(io.BytesIO(stream.getvalue()[:cut]), None)


def test_out_of_band_bytes_without_a_shared_buffer_are_refused() -> None:
    shared = SharedBuffer.create()
    try:
        stream = io.BytesIO()
        write_message(stream, _batch(os.urandom(OUT_OF_BAND_MIN)), shared)
        stream.seek(0)
        with pytest.raises(EndOfMessages, match="no shared buffer"):
            read_message(stream, None)
    finally:
        shared.close()


def _reversed(batch: RawBatch) -> StageResult:
    return StageResult(batch.position, batch.batch_id, 1, 1, len(batch.data), data=batch.data[::-1])


def test_a_pool_sends_large_bytes_both_ways_through_its_children() -> None:
    pool = EncoderPool(2)
    try:
        payloads = [os.urandom(n) for n in (10, OUT_OF_BAND_MIN, 3 << 20, 12 << 20)]
        futures = [pool.submit(_reversed, _batch(data)) for data in payloads]
        for data, future in zip(payloads, futures):
            result = future.result(timeout=60)
            assert result.data == data[::-1] and result.nbytes == len(data)
    finally:
        pool.shutdown()


def test_the_shared_file_is_no_other_child_s() -> None:
    # Made close-on-exec: a process the importer starts for another reason does not inherit it.
    shared = SharedBuffer.create()
    try:
        probe = subprocess.run(
            [sys.executable, "-c", f"import os; os.fstat({shared.fd})"], capture_output=True, text=True, check=False
        )
        assert probe.returncode != 0 and "Bad file descriptor" in probe.stderr
    finally:
        shared.close()


def test_a_length_beyond_the_shared_file_is_refused_not_grown_into() -> None:
    # The side reading maps what the writer wrote; a message claiming more is broken.
    writer = SharedBuffer.create()
    reader = SharedBuffer.attach(os.dup(writer.fd))
    try:
        stream = io.BytesIO()
        write_message(stream, _batch(os.urandom(OUT_OF_BAND_MIN)), writer)
        size = os.fstat(writer.fd).st_size
        forged = bytearray(stream.getvalue())
        forged[16:24] = (size + 1).to_bytes(8, "little")  # the first buffer's length, after the header
        with pytest.raises(EndOfMessages, match="shared file holds"):
            read_message(io.BytesIO(bytes(forged)), reader)
        assert os.fstat(writer.fd).st_size == size
    finally:
        writer.close()
        reader.close()


def test_bytes_that_are_no_message_are_refused_before_any_length_is_believed() -> None:
    # Something else writing into the pipe (a C library printing to stdout) must not make
    # the importer try to read 2**64 bytes, or wait for bytes that never come.
    with pytest.raises(EndOfMessages, match="not a message"):
        read_message(io.BytesIO(b"\xff" * 16 + b"x" * 100), None)
    with pytest.raises(EndOfMessages, match="not a message"):
        read_message(io.BytesIO(b"warning: something\n" + b"x" * 100), None)
    stream = io.BytesIO()
    write_message(stream, "x", None)
    forged = bytearray(stream.getvalue())
    forged[4:12] = (1 << 40).to_bytes(8, "little")  # a marked header claiming a terabyte
    with pytest.raises(EndOfMessages, match="not a message"):
        read_message(io.BytesIO(bytes(forged)), None)


def test_a_value_that_does_not_pickle_writes_nothing() -> None:
    stream = io.BytesIO()
    with pytest.raises(UnsendableMessage):
        write_message(stream, lambda: None, None)
    assert stream.getvalue() == b""


def test_the_pages_of_a_large_message_are_given_back_once_it_is_read() -> None:
    writer = SharedBuffer.create()
    reader = SharedBuffer.attach(os.dup(writer.fd))
    try:
        data = os.urandom(1 << 20) * 40  # 40 MiB: the file grows past 8 MiB for it
        stream = io.BytesIO()
        write_message(stream, _batch(data), writer)
        held = os.fstat(writer.fd).st_blocks * 512
        assert held >= len(data)
        stream.seek(0)
        assert read_message(stream, reader).data == data
        # The file keeps its size (the writer's mapping is that long); its memory is gone
        # but for the first 8 MiB.
        assert os.fstat(writer.fd).st_size >= len(data)
        assert os.fstat(writer.fd).st_blocks * 512 <= (8 << 20) + (1 << 20)
        # And it is written into again as before.
        small = os.urandom(OUT_OF_BAND_MIN * 3)
        again = io.BytesIO()
        write_message(again, _batch(data[:1000] + small), writer)
        again.seek(0)
        assert read_message(again, reader).data == data[:1000] + small
    finally:
        writer.close()
        reader.close()


def test_a_message_that_does_not_load_leaves_the_stream_in_step() -> None:
    stream = io.BytesIO()
    write_message(stream, TwoPartError("quantity", "not a number"), None)
    write_message(stream, "next", None)
    stream.seek(0)
    with pytest.raises(UnreadableMessage, match="TypeError"):
        read_message(stream, None)
    assert read_message(stream, None) == "next"
