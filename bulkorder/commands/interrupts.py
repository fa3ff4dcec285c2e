"""Long-running commands (``dev``, ``worker``, ``codec-server``) stop on Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import signal


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (call within the running event loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def until_interrupted() -> None:
    """Return once the process is asked to stop."""
    await stop_on_signals().wait()
