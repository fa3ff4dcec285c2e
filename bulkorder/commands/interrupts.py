"""Long-running commands (``dev``, ``worker``, ``codec-server``, ``relay``, ``export
--follow``, ``project --follow``) stop on Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (call within the running event loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    return stop


async def until_interrupted() -> None:
    """Return once the process is asked to stop."""
    await stop_on_signals().wait()


@contextmanager
def thread_stop_on_signals() -> Iterator[threading.Event]:
    """An event for work in a thread (``asyncio.to_thread``), set by SIGINT or SIGTERM while
    the block runs; the handlers go with it."""
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)
