"""The encoding processes: where items are parsed, validated and encoded, one batch each.

A small pool of ``python -m bulkorder.importer.encoder_process`` children, fed pickled
:class:`~bulkorder.importer.stage.StageTask`s over their stdin and answering on stdout,
the batches' bytes beside the pipes in a memory file each child shares with the importer
(:mod:`bulkorder.importer.shared_buffer`).
Why not ``multiprocessing``: its ``spawn`` start method re-imports the caller's main
module in every child (a script without an ``if __name__ == "__main__"`` guard then
breaks, and the CLI's children would import all of bulkorder), and ``fork`` would copy
this process's Temporal client threads. A child here imports only the stage module
(~0.2 s), and exits when its stdin closes, so a killed importer leaves no orphans.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from concurrent.futures import Future, InvalidStateError
from typing import Any, Callable

from bulkorder.importer.shared_buffer import (
    EndOfMessages,
    SharedBuffer,
    UnreadableMessage,
    UnsendableMessage,
    read_message,
    write_message,
)

_STOP = object()


class EncoderPoolError(RuntimeError):
    """An encoding process died or could not start."""


class EncoderPool:
    """``workers`` encoding processes; :meth:`submit` returns a ``concurrent.futures.Future``
    (so ``loop.run_in_executor``-style code can await it with ``asyncio.wrap_future``)."""

    def __init__(self, workers: int) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._processes: list[subprocess.Popen[bytes]] = []
        self._threads: list[threading.Thread] = []
        self._broken: str | None = None
        # Held to check _broken and queue a job, and to set it: a job is either queued
        # before the queue is drained, or refused.
        self._lock = threading.Lock()
        env = dict(os.environ)
        # The children must import this very code, wherever it was imported from.
        env["PYTHONPATH"] = os.pathsep.join([path for path in sys.path if path] + [env.get("PYTHONPATH", "")])
        self._shared: list[SharedBuffer | None] = []
        try:
            for index in range(workers):
                self._start(index, env)
        except BaseException:
            self.shutdown()  # the children started before the one that failed
            raise

    def _start(self, index: int, env: dict[str, str]) -> None:
        # The batches' bytes go through a memory file each process shares with this one
        # (bulkorder.importer.shared_buffer); the pipes carry small pickles. Where
        # descriptors cannot be handed to a child (not POSIX), everything goes by pipe.
        shared = SharedBuffer.create() if os.name == "posix" else None
        command = [sys.executable, "-m", "bulkorder.importer.encoder_process"]
        if shared is not None:
            command += ["--shared-fd", str(shared.fd)]
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                pass_fds=(shared.fd,) if shared is not None else (),
            )
        except BaseException:
            if shared is not None:
                shared.close()
            raise
        self._processes.append(process)
        self._shared.append(shared)
        thread = threading.Thread(target=self._serve, args=(process, shared), name=f"bulkorder-encoder-{index}", daemon=True)
        thread.start()
        self._threads.append(thread)

    @property
    def size(self) -> int:
        """How many encoding processes the pool runs."""
        return len(self._processes)

    def submit(self, function: Callable[[Any], Any], argument: object) -> Future[Any]:
        """Run ``function(argument)`` in a child; ``function`` must be importable there."""
        future: Future[Any] = Future()
        with self._lock:
            if not self._broken:
                self._queue.put((function, argument, future))
                return future
        future.set_exception(EncoderPoolError(self._broken))
        return future

    def _serve(self, process: subprocess.Popen[bytes], shared: SharedBuffer | None) -> None:
        assert process.stdin is not None and process.stdout is not None
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            function, argument, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                write_message(process.stdin, (function, argument), shared)
            except UnsendableMessage as exc:  # nothing was written: the next one can be sent
                future.set_exception(EncoderPoolError(f"a task cannot be sent to an encoding process: {exc}"))
                continue
            except Exception as exc:  # noqa: BLE001 - the pipe: the process is gone
                self._break(process, future, _named(exc))
                return
            try:
                reply = read_message(process.stdout, shared)
            except UnreadableMessage as exc:  # read whole: the next one can be read
                future.set_exception(EncoderPoolError(f"an encoding process's answer cannot be loaded: {exc}"))
                continue
            except Exception as exc:  # noqa: BLE001 - the stream is out of step for good
                self._break(process, future, "" if isinstance(exc, EndOfMessages) and exc.clean else _named(exc))
                return
            ok, value = reply if isinstance(reply, tuple) and len(reply) == 2 else (False, reply)
            if ok:
                future.set_result(value)
            elif isinstance(value, BaseException):
                future.set_exception(value)
            else:
                future.set_exception(EncoderPoolError(f"an encoding process answered {type(value).__name__!r}"))

    def _break(self, process: subprocess.Popen[bytes], future: Future[Any], reason: str) -> None:
        """This process's pipes are unusable: fail ``future`` and every job still queued,
        refuse every job submitted from now on, and stop the process if it still runs."""
        with self._lock:
            self._broken = f"an encoding process died (exit code {process.poll()})" + (f": {reason}" if reason else "")
        _fail(future, self._broken)
        self._fail_queued()
        if process.poll() is None:
            process.kill()  # out of step with this side: it must not go on

    def _fail_queued(self) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is _STOP:
                self._queue.put(job)  # for the other threads
                return
            _fail(job[2], self._broken or "encoding processes stopped")

    def shutdown(self) -> None:
        """Stop the children (queued jobs not started are cancelled; a job submitted
        afterwards fails at once)."""
        with self._lock:
            self._broken = self._broken or "the pool of encoding processes was shut down"
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP:
                job[2].cancel()
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join(timeout=30)
        for process in self._processes:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        for index, shared in enumerate(self._shared):
            thread = self._threads[index] if index < len(self._threads) else None
            if thread is not None:
                thread.join(timeout=5)  # its process is gone: its read has ended
            # A thread still reading would read a closed file: its buffer is left to the
            # process's exit instead.
            if shared is not None and (thread is None or not thread.is_alive()):
                shared.close()
        self._shared.clear()


def _named(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _fail(future: Future[Any], reason: str) -> None:
    """``future`` fails with ``reason``, unless it is done already (cancelled while queued)."""
    try:
        future.set_exception(EncoderPoolError(reason))
    except InvalidStateError:
        pass


def default_workers() -> int:
    """Encoding processes by default: one per CPU this process may run on."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)
