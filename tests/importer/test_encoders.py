"""The pool of encoding processes (bulkorder.importer.encoders): a job that fails in any
way fails its own future and never hangs the pool; a child that dies fails every job
waiting, cancelled ones aside, and every one submitted later; a pool that cannot start
all its children leaves none running."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bulkorder.importer import encoders
from bulkorder.importer.encoders import EncoderPool, EncoderPoolError

TIMEOUT = 60


class TwoPartError(Exception):
    """An exception that pickles but does not unpickle: its ``__init__`` wants two arguments
    and its ``args`` hold one."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")


def double(value: int) -> int:
    return value * 2


def raise_two_part(_: object) -> None:
    raise TwoPartError("quantity", "not a number")


def raise_value_error(_: object) -> None:
    raise ValueError("line 7: not an item")


def die(_: object) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def die_when_told(fifo: str) -> None:
    """Blocks until the test writes to ``fifo``, then dies."""
    with open(fifo, "rb") as told:
        told.read(1)
    os.kill(os.getpid(), signal.SIGKILL)


def unpicklable_answer(_: object) -> threading.Lock:
    return threading.Lock()


@pytest.fixture
def pool() -> Any:
    made = EncoderPool(1)
    try:
        yield made
    finally:
        made.shutdown()


@pytest.mark.parametrize(
    ("function", "argument", "error", "message"),
    [
        # The job's own error, raised where it is awaited.
        (raise_value_error, None, ValueError, "line 7"),
        # Before, the thread serving the child died of the TypeError and the job waited forever.
        (raise_two_part, None, EncoderPoolError, "cannot be loaded: TypeError"),
        (double, lambda: None, EncoderPoolError, "cannot be sent"),  # the task does not pickle
        (unpicklable_answer, None, RuntimeError, "cannot be sent back"),  # the answer does not
    ],
    ids=["its-error", "answer-does-not-load", "task-does-not-pickle", "answer-does-not-pickle"],
)
def test_a_job_that_fails_fails_alone_and_the_next_one_runs(
    pool: EncoderPool, function: Any, argument: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        pool.submit(function, argument).result(timeout=TIMEOUT)
    assert pool.submit(double, 21).result(timeout=TIMEOUT) == 42


def test_a_child_that_dies_fails_its_job_and_every_one_after_it(pool: EncoderPool) -> None:
    with pytest.raises(EncoderPoolError, match="died"):
        pool.submit(die, None).result(timeout=TIMEOUT)
    with pytest.raises(EncoderPoolError, match="died"):
        pool.submit(double, 1).result(timeout=TIMEOUT)


def test_a_child_dying_with_a_cancelled_job_queued_fails_the_jobs_behind_it(pool: EncoderPool, tmp_path: Path) -> None:
    # Failing the queued jobs stopped at the cancelled one (InvalidStateError) and the job
    # behind it waited forever.
    fifo = tmp_path / "told"
    os.mkfifo(fifo)
    running = pool.submit(die_when_told, str(fifo))
    deadline = time.monotonic() + TIMEOUT
    while not running.running():  # the child has it: the next two wait in the queue
        assert time.monotonic() < deadline, "the first job never started"
        time.sleep(0.01)
    cancelled, behind = pool.submit(double, 1), pool.submit(double, 2)
    assert cancelled.cancel()
    with open(fifo, "wb") as tell:
        tell.write(b"x")
    with pytest.raises(EncoderPoolError, match="died"):
        running.result(timeout=TIMEOUT)
    with pytest.raises(EncoderPoolError, match="died"):
        behind.result(timeout=TIMEOUT)
    assert cancelled.cancelled()


def test_a_job_submitted_after_shutdown_fails_at_once() -> None:
    pool = EncoderPool(1)
    pool.shutdown()
    with pytest.raises(EncoderPoolError, match="shut down"):
        pool.submit(double, 1).result(timeout=1)


def test_a_pool_that_cannot_start_every_child_leaves_none_running(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        if started:  # the second child: out of file descriptors
            raise OSError(errno.EMFILE, "Too many open files")
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(encoders.subprocess, "Popen", popen)
    descriptors = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError, match="Too many open files"):
        EncoderPool(2)
    assert len(started) == 1
    assert started[0].poll() is not None  # stopped by the failed pool, not left behind
    assert len(os.listdir("/proc/self/fd")) == descriptors  # its pipes and both shared files closed


def test_a_broken_message_ends_the_child_with_its_reason() -> None:
    child = subprocess.run(
        [sys.executable, "-m", "bulkorder.importer.encoder_process"],
        input=b"\xff" * 16 + b"x" * 10,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert child.returncode == 1
    assert b"not a message" in child.stderr
    clean = subprocess.run(
        [sys.executable, "-m", "bulkorder.importer.encoder_process"], input=b"", capture_output=True, timeout=TIMEOUT
    )
    assert (clean.returncode, clean.stderr) == (0, b"")
