"""``bulkorder dev`` (the embedded stack) and ``bulkorder worker``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, AsyncIterator

from bulkorder.commands.arguments import non_negative_int, port_number, positive_int
from bulkorder.commands.codec_server import configured_codec_server
from bulkorder.commands.interrupts import stop_on_signals, until_interrupted
from bulkorder.embedded import (
    EmbeddedTemporal,
    claim_port,
    clear_dev_state,
    free_port,
    refuse_taken_port,
    release_port,
    running_dev_address,
    write_dev_state,
)
from bulkorder.runtime import Runtime, claim_check_codec, open_runtime
from bulkorder.settings import Settings

if TYPE_CHECKING:  # imported when used: aiohttp costs every other command ~0.1 CPU-s at start
    from bulkorder.codec_server import CodecServer
    from bulkorder.ops_server import OpsServer

#: How often ``bulkorder dev`` restarts a Temporal server that died before it gives up.
DEFAULT_MAX_RESTARTS = 3


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dev = sub.add_parser("dev", help="run the embedded stack in the foreground: Temporal dev server + worker")
    dev.add_argument("--port", type=port_number, default=7233, help="Temporal gRPC port (default 7233)")
    dev.add_argument(
        "--ui-port", type=port_number, default=None,
        help="also serve the Temporal Web UI on this port, with a codec server so it shows claim-checked payloads",
    )
    dev.add_argument(
        "--codec-port", type=port_number, default=0,
        help="port of the Web UI's codec server (default: a free one; only with --ui-port)",
    )
    dev.add_argument(
        "--ui-enable-encode", action="store_true",
        help="let the Web UI's codec server encode too (it writes payload blobs; off by default)",
    )
    dev.add_argument(
        "--max-restarts", type=non_negative_int, default=DEFAULT_MAX_RESTARTS,
        help=f"restart a Temporal server that dies at most this often, then exit 1 (default {DEFAULT_MAX_RESTARTS})",
    )
    _operations_arguments(dev)
    dev.set_defaults(handler=run_dev)

    worker = sub.add_parser("worker", help="run a worker for order workflows against the configured Temporal")
    worker.add_argument("--max-concurrent-activities", type=positive_int, default=16)
    _operations_arguments(worker)
    worker.set_defaults(handler=run_worker)


def _operations_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-port", type=port_number, default=None, metavar="PORT",
        help="serve /metrics (Prometheus: bulkorder's and the Temporal SDK's), /healthz and /readyz on PORT "
        "(0: a free one, printed)",
    )
    parser.add_argument(
        "--metrics-host", default="127.0.0.1", metavar="HOST",
        help="address of the metrics port (default 127.0.0.1; 0.0.0.0 for a scraper on another host)",
    )
    parser.add_argument(
        "--graceful-shutdown", type=non_negative_int, default=None, metavar="SECONDS",
        help="on SIGTERM/Ctrl-C, stop polling and give in-flight activities this long to finish "
        "(default BULKORDER_GRACEFUL_SHUTDOWN_SECONDS, else 30)",
    )


async def run_dev(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.temporal.embedded:
        print(f"TEMPORAL_ADDRESS is set ({settings.temporal.address}): running only a worker against it")
        return await run_worker(args, settings)
    if running_dev_address(settings.home):
        print(
            f"bulkorder dev: error: already running for {settings.home} at {running_dev_address(settings.home)}",
            file=sys.stderr,
        )
        return 1
    # Before anything starts: a port in use is another stack's (or a stranger's) server.
    refuse_taken_port(args.port)
    settings.home.mkdir(parents=True, exist_ok=True)
    # With the Web UI, a codec server on loopback: the UI's browser sends it the payloads
    # it shows, and gets claim-checked ones back decoded (docs/claim_check.md).
    codec_server = ui_codec_server(settings, args.ui_port, args.codec_port, args.ui_enable_encode) if args.ui_port else None
    server = EmbeddedTemporal(
        settings.home / "temporal.sqlite", port=args.port, ui_port=args.ui_port,
        ui_codec_endpoint=codec_server.url if codec_server else None,
    )
    try:
        address = await server.start()
        claim_port(server.port, settings.home)
        write_dev_state(settings.home, address, server.pid)
        async with _serving_worker(args, settings) as (runtime, ops):
            for name, value in {"temporal": address, **settings.describe()}.items():
                print(f"{name:<12} {value}")
            if codec_server:
                print(f"{'web ui':<12} http://127.0.0.1:{args.ui_port}")
                print(f"{'ui codec':<12} {codec_server.url}")
            if ops is not None:
                print(f"{'metrics':<12} {ops.url}/metrics (health {ops.url}/healthz, {ops.url}/readyz)")
            print("ready: run bulkorder commands in another terminal; Ctrl-C stops", flush=True)
            return await _supervise(server, settings, args.max_restarts)
    finally:
        clear_dev_state(settings.home)
        release_port(server.port)
        await server.stop()
        if codec_server:
            codec_server.stop()


async def _supervise(server: EmbeddedTemporal, settings: Settings, max_restarts: int) -> int:
    """Until Ctrl-C: 0. A Temporal server that dies is restarted (its state is on disk, the
    worker reconnects) at most ``max_restarts`` times; then 1, never a half-dead stack."""
    stop = stop_on_signals()
    restarts = 0
    while True:
        stopped = asyncio.create_task(stop.wait())
        died = asyncio.create_task(server.exited())
        await asyncio.wait({stopped, died}, return_when=asyncio.FIRST_COMPLETED)
        for task in (stopped, died):
            task.cancel()
        if stop.is_set():
            return 0
        code = died.result()
        if restarts >= max_restarts:
            print(
                f"bulkorder dev: error: the Temporal dev server exited with code {code} and was restarted "
                f"{restarts} time(s) already (--max-restarts {max_restarts}): stopping; its log is "
                f"{server.log_file}",
                file=sys.stderr, flush=True,
            )
            return 1
        restarts += 1
        print(f"the Temporal dev server exited with code {code}: restarting it ({restarts} of {max_restarts})",
              file=sys.stderr, flush=True)
        address = await server.start()
        write_dev_state(settings.home, address, server.pid)
        print(f"restarted: temporal {address}", flush=True)


def ui_codec_server(settings: Settings, ui_port: int, port: int, enable_encode: bool = False) -> CodecServer:
    """A started codec server for the dev stack's Web UI: on loopback, its CORS open to the
    UI's own origins (and any configured ones). A configured token still applies, though
    the UI cannot send one: then only the CLI (``--codec-auth``) can use it."""
    ui_origins = (f"http://127.0.0.1:{ui_port}", f"http://localhost:{ui_port}")
    return configured_codec_server(
        settings, host="127.0.0.1", port=port, extra_origins=ui_origins, enable_encode=enable_encode
    ).start()


@asynccontextmanager
async def _serving_worker(args: argparse.Namespace, settings: Settings) -> AsyncIterator[tuple[Runtime, OpsServer | None]]:
    """A running worker and, with ``--metrics-port``, its operations server. On leaving, the
    operations server first reports not ready, then the worker drains: it stops polling,
    and in-flight activities get ``--graceful-shutdown`` seconds to finish."""
    from bulkorder.health import Readiness
    from bulkorder.metrics import watch_claim_check_cache
    from bulkorder.ops_server import OpsServer
    metrics_port = getattr(args, "metrics_port", None)
    grace = getattr(args, "graceful_shutdown", None)
    grace = settings.graceful_shutdown_seconds if grace is None else grace
    # The SDK's own Prometheus endpoint, on a private loopback port: /metrics folds it in.
    sdk_address = f"127.0.0.1:{free_port()}" if metrics_port is not None else None
    async with open_runtime(settings, sdk_metrics_address=sdk_address) as runtime:
        worker = runtime.worker(
            max_concurrent_activities=getattr(args, "max_concurrent_activities", 16),
            graceful_shutdown=timedelta(seconds=grace),
        )
        ops: OpsServer | None = None
        if metrics_port is not None:
            watch_claim_check_cache(claim_check_codec(settings).cache.stats)
            readiness = Readiness(runtime.client, runtime.orders, runtime.blobs)
            ops = await OpsServer(
                args.metrics_host, metrics_port, readiness=readiness, sdk_metrics_url=f"http://{sdk_address}/metrics"
            ).start()
        try:
            async with worker:
                try:
                    yield runtime, ops
                finally:
                    if ops is not None:
                        ops.stopping = True
                    print(f"stopping: draining the worker (up to {grace} s for in-flight activities)", flush=True)
            print("worker stopped", flush=True)
        finally:
            if ops is not None:
                await ops.stop()


async def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    async with _serving_worker(args, settings) as (_runtime, ops):
        if ops is not None:
            print(f"metrics {ops.url}/metrics, health {ops.url}/healthz, readiness {ops.url}/readyz", flush=True)
        print(f"worker polling task queue {settings.task_queue!r}; Ctrl-C or SIGTERM stops", flush=True)
        await until_interrupted()
    return 0
