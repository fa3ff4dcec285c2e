"""``bulkorder dev`` (the embedded stack) and ``bulkorder worker``."""

from __future__ import annotations

import argparse
import asyncio
import signal

from bulkorder.embedded import EmbeddedTemporal, clear_dev_state, running_dev_address, write_dev_state
from bulkorder.runtime import open_runtime
from bulkorder.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dev = sub.add_parser("dev", help="run the embedded stack in the foreground: Temporal dev server + worker")
    dev.add_argument("--port", type=int, default=7233, help="Temporal gRPC port (default 7233)")
    dev.add_argument("--ui-port", type=int, default=None, help="also serve the Temporal Web UI on this port")
    dev.set_defaults(handler=run_dev)

    worker = sub.add_parser("worker", help="run a worker for order workflows against the configured Temporal")
    worker.add_argument("--max-concurrent-activities", type=int, default=16)
    worker.set_defaults(handler=run_worker)


async def _until_interrupted() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def run_dev(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.temporal.embedded:
        print(f"TEMPORAL_ADDRESS is set ({settings.temporal.address}): running only a worker against it")
        return await run_worker(args, settings)
    if running_dev_address(settings.home):
        print(f"bulkorder dev is already running for {settings.home} at {running_dev_address(settings.home)}")
        return 1
    settings.home.mkdir(parents=True, exist_ok=True)
    server = EmbeddedTemporal(settings.home / "temporal.sqlite", port=args.port, ui_port=args.ui_port)
    address = await server.start()
    write_dev_state(settings.home, address)
    try:
        async with open_runtime(settings) as runtime:
            async with runtime.worker():
                for name, value in {"temporal": address, **settings.describe()}.items():
                    print(f"{name:<12} {value}")
                if args.ui_port:
                    print(f"{'web ui':<12} http://127.0.0.1:{args.ui_port}")
                print("ready: run bulkorder commands in another terminal; Ctrl-C stops", flush=True)
                await _until_interrupted()
    finally:
        clear_dev_state(settings.home)
        await server.stop()
    return 0


async def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    async with open_runtime(settings) as runtime:
        async with runtime.worker(max_concurrent_activities=getattr(args, "max_concurrent_activities", 16)):
            print(f"worker polling task queue {settings.task_queue!r}; Ctrl-C stops", flush=True)
            await _until_interrupted()
    return 0
