"""``bulkorder codec-server``: let Temporal's Web UI and CLI show claim-checked payloads."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from bulkorder.codec_server import CodecServer, is_loopback
from bulkorder.commands.arguments import port_number
from bulkorder.runtime import claim_check_codec
from bulkorder.settings import Settings

DEFAULT_PORT = 8081


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "codec-server",
        help="serve the claim-check codec to the Temporal Web UI and `temporal --codec-endpoint`",
        description="Decode (and encode) claim-check payloads for Temporal's Web UI and CLI over Temporal's codec "
        "server protocol. Listens on 127.0.0.1 unless --host says otherwise. Set BULKORDER_CODEC_SERVER_TOKEN to "
        "require a bearer token and BULKORDER_CODEC_SERVER_CORS_ORIGINS for the Web UI's origin.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks one)")
    parser.set_defaults(handler=run_codec_server)


def configured_codec_server(settings: Settings, *, host: str, port: int, extra_origins: tuple[str, ...] = ()) -> CodecServer:
    """A codec server (not started) with the deployment's codec, token, CORS origins (and
    ``extra_origins``) and namespace."""
    claim_check = settings.claim_check
    return CodecServer(
        claim_check_codec(settings),
        host=host,
        port=port,
        token=claim_check.codec_server_token,
        cors_origins=(*extra_origins, *claim_check.codec_server_cors_origins),
        namespace=settings.temporal.namespace,
    )


async def run_codec_server(args: argparse.Namespace, settings: Settings) -> int:
    claim_check = settings.claim_check
    server = configured_codec_server(settings, host=args.host, port=args.port)
    if not is_loopback(args.host) and claim_check.codec_server_token is None:
        print(
            f"warning: listening on {args.host} without a token: anyone who can reach it can read payloads; "
            "set BULKORDER_CODEC_SERVER_TOKEN",
            file=sys.stderr,
        )
    with server:
        auth = ' --codec-auth "Bearer $BULKORDER_CODEC_SERVER_TOKEN"' if claim_check.codec_server_token else ""
        rows = {
            "codec server": server.url,
            "namespace": settings.temporal.namespace,
            "blob store": settings.blob_store.describe(),
            "token": "required" if claim_check.codec_server_token else "none (set BULKORDER_CODEC_SERVER_TOKEN)",
            "cors origins": ", ".join(claim_check.codec_server_cors_origins) or "none",
            "try": f"temporal workflow show -w ORDER_ID --codec-endpoint {server.url}{auth}",
        }
        for name, value in rows.items():
            print(f"{name:<13} {value}")
        print("ready: Ctrl-C stops", flush=True)
        await _until_interrupted()
    return 0


async def _until_interrupted() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
