"""``bulkorder codec-server``: let Temporal's Web UI and CLI show claim-checked payloads."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bulkorder.commands.arguments import port_number
from bulkorder.commands.interrupts import until_interrupted
from bulkorder.runtime import payload_codec
from bulkorder.settings import Settings, SettingsError

if TYPE_CHECKING:  # imported when used: aiohttp costs every other command ~0.1 CPU-s at start
    from bulkorder.codec_server import CodecServer

DEFAULT_PORT = 8081


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "codec-server",
        help="serve the claim-check codec to the Temporal Web UI and `temporal --codec-endpoint`",
        description="Decode (and encode) claim-check payloads for Temporal's Web UI and CLI over Temporal's codec "
        "server protocol. Listens on 127.0.0.1 unless --host says otherwise; any other address needs "
        "BULKORDER_CODEC_SERVER_TOKEN (a bearer token). BULKORDER_CODEC_SERVER_CORS_ORIGINS names the Web UI's origin.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks one)")
    parser.add_argument(
        "--enable-encode", action="store_true",
        help="also serve /encode (it writes payload blobs to the blob store; off by default)",
    )
    parser.set_defaults(handler=run_codec_server)


def configured_codec_server(
    settings: Settings, *, host: str, port: int, extra_origins: tuple[str, ...] = (), enable_encode: bool = False
) -> CodecServer:
    """A codec server (not started) with the deployment's codec, token, CORS origins (and
    ``extra_origins``), namespace and limits."""
    from bulkorder.codec_server import CodecServer, is_loopback

    claim_check = settings.claim_check
    if not is_loopback(host) and claim_check.codec_server_token is None:
        raise SettingsError(
            f"the codec server would listen on {host}, which is not loopback, without a token: anyone who can reach "
            "it could read payloads; set BULKORDER_CODEC_SERVER_TOKEN (or listen on 127.0.0.1)"
        )
    return CodecServer(
        payload_codec(settings),
        host=host,
        port=port,
        token=claim_check.codec_server_token,
        cors_origins=(*extra_origins, *claim_check.codec_server_cors_origins),
        namespace=settings.temporal.namespace,
        enable_encode=enable_encode,
        allowed_hosts=claim_check.codec_server_allowed_hosts,
        max_body_bytes=claim_check.codec_server_max_body_bytes,
        max_concurrency=claim_check.codec_server_max_concurrency,
    )


async def run_codec_server(args: argparse.Namespace, settings: Settings) -> int:
    claim_check = settings.claim_check
    server = configured_codec_server(settings, host=args.host, port=args.port, enable_encode=args.enable_encode)
    with server:
        auth = ' --codec-auth "Bearer $BULKORDER_CODEC_SERVER_TOKEN"' if claim_check.codec_server_token else ""
        rows = {
            "codec server": server.url,
            "namespace": settings.temporal.namespace,
            "blob store": settings.blob_store.describe(),
            "token": "required" if claim_check.codec_server_token else "none (set BULKORDER_CODEC_SERVER_TOKEN)",
            "cors origins": ", ".join(claim_check.codec_server_cors_origins) or "none",
            "encode": "on" if args.enable_encode else "off (--enable-encode turns it on)",
            "body limit": f"{claim_check.codec_server_max_body_bytes:,} bytes",
            "try": f"temporal workflow show -w ORDER_ID --codec-endpoint {server.url}{auth}",
        }
        for name, value in rows.items():
            print(f"{name:<13} {value}")
        print("ready: Ctrl-C stops", flush=True)
        await until_interrupted()
    return 0
