"""A codec server: Temporal's Web UI and CLI decode claim-check payloads through it.

Temporal's codec server protocol: ``POST /decode`` and ``POST /encode`` (also under a
namespace segment, ``/{namespace}/decode``, for ``--codec-endpoint`` templates), a JSON
body ``{"payloads": [...]}`` of payloads in protobuf's JSON form (metadata values and data
base64), the same shape back, and the namespace in the ``X-Namespace`` header. Browsers
(the Web UI) first send an ``OPTIONS`` preflight.

Safe by default: it listens on 127.0.0.1 unless given another host; when a token is
configured every request must carry ``Authorization: Bearer <token>`` (the CLI's
``--codec-auth``, the Web UI's "pass access token"); CORS headers go only to configured
origins; a request for a namespace other than the deployment's is refused. The codec
refuses references outside its ``payloads/`` keys, so a forged reference cannot read any
other blob.

Standard library only (``http.server``): the codec's async methods run on an event loop
in a thread of their own, so the server works the same inside or outside asyncio code.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterable

from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from storage.errors import ClaimCheckError, StorageError, TransientStoreError

logger = logging.getLogger(__name__)

ROUTES = ("decode", "encode")
#: Largest request body accepted (a payload of 100 MiB is ~134 MiB as base64 JSON).
MAX_REQUEST_BYTES = 512 * 1024 * 1024
#: How long one request may spend in the codec (large blobs from a slow store).
CODEC_TIMEOUT = 300.0
_ALLOWED_HEADERS = "authorization, content-type, x-namespace"


class CodecServerError(RuntimeError):
    """The codec server cannot start (address in use, no such interface, ...)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _HTTPError(Exception):
    def __init__(self, status: HTTPStatus, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class CodecServer:
    """Serves ``codec`` over HTTP until :meth:`stop`; also a context manager.

    ``port=0`` picks a free port (see :attr:`url`). ``namespace``, when given, is the
    only namespace served. ``token`` None means no authentication (loopback use).
    """

    def __init__(
        self,
        codec: PayloadCodec,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        cors_origins: Iterable[str] = (),
        namespace: str | None = None,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self.codec = codec
        self.host = host
        self.port = port
        self.token = token
        self.cors_origins = frozenset(origin.rstrip("/") for origin in cors_origins)
        self.namespace = namespace
        self.max_request_bytes = max_request_bytes
        self._http: ThreadingHTTPServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        if self._http is None:
            raise RuntimeError("the codec server is not running")
        host, port = self._http.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{shown}:{port}"

    def start(self) -> CodecServer:
        server_class = _DualStackServer if ":" in self.host else ThreadingHTTPServer
        try:
            http = server_class((self.host, self.port), _Handler)
        except OSError as exc:
            raise CodecServerError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None
        http.daemon_threads = True
        http.codec_server = self  # type: ignore[attr-defined]
        self._http = http
        self._loop = asyncio.new_event_loop()
        self._threads = [
            threading.Thread(target=self._loop.run_forever, name="codec-server-loop", daemon=True),
            threading.Thread(target=http.serve_forever, name="codec-server-http", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        logger.info("codec server listening on %s", self.url)
        return self

    def stop(self) -> None:
        http, loop, self._http, self._loop = self._http, self._loop, None, None
        if http is not None:
            http.shutdown()
            http.server_close()
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
        if loop is not None:
            loop.close()

    def __enter__(self) -> CodecServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def apply(self, route: str, payloads: Payloads) -> Payloads:
        """Run the codec on ``payloads`` (called from request threads)."""
        loop = self._loop
        if loop is None:
            raise _HTTPError(HTTPStatus.SERVICE_UNAVAILABLE, "the codec server is stopping")
        operation = self.codec.decode if route == "decode" else self.codec.encode
        future = asyncio.run_coroutine_threadsafe(operation(list(payloads.payloads)), loop)
        return Payloads(payloads=future.result(timeout=CODEC_TIMEOUT))


class _DualStackServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bulkorder-codec-server"

    @property
    def codec_server(self) -> CodecServer:
        return self.server.codec_server  # type: ignore[attr-defined,no-any-return]

    # Routing.

    def do_OPTIONS(self) -> None:  # noqa: N802 - http.server's naming
        """CORS preflight: browsers send no credentials here, so no token is asked."""
        try:
            self._route()
            if not self._cors_headers():
                raise _HTTPError(HTTPStatus.FORBIDDEN, f"origin {self.headers.get('Origin')!r} is not allowed")
            self._send(HTTPStatus.NO_CONTENT, b"", {"Access-Control-Max-Age": "600"})
        except _HTTPError as exc:
            self._send_error(exc)

    def do_POST(self) -> None:  # noqa: N802
        try:
            route, namespace = self._route()
            self._authorize()
            self._check_namespace(namespace)
            payloads = self._read_payloads()
            body = json_format.MessageToJson(self._apply(route, payloads), indent=None).encode()
            self._send(HTTPStatus.OK, body, {"Content-Type": "application/json"})
        except _HTTPError as exc:
            self._send_error(exc)
        except Exception as exc:  # noqa: BLE001 - the client gets a reason, the log the traceback
            logger.exception("codec server: %s %s failed", self.command, self.path)
            self._send_error(_HTTPError(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}"))

    def do_GET(self) -> None:  # noqa: N802
        self._method_not_allowed()

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET  # noqa: N815

    def _method_not_allowed(self) -> None:
        try:
            self._route()
            raise _HTTPError(HTTPStatus.METHOD_NOT_ALLOWED, f"use POST for {self.path}", headers={"Allow": "POST, OPTIONS"})
        except _HTTPError as exc:
            self._send_error(exc)

    def _route(self) -> tuple[str, str | None]:
        """(``decode`` or ``encode``, the namespace in the path if any); 404 otherwise."""
        segments = [s for s in self.path.split("?", 1)[0].split("/") if s]
        if len(segments) == 1 and segments[0] in ROUTES:
            return segments[0], None
        if len(segments) == 2 and segments[1] in ROUTES:
            return segments[1], segments[0]
        raise _HTTPError(HTTPStatus.NOT_FOUND, f"no such endpoint {self.path!r}: POST /decode or /encode")

    # Checks.

    def _authorize(self) -> None:
        token = self.codec_server.token
        if token is None:
            return
        given = self.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            reason = "missing" if not given else "wrong"
            raise _HTTPError(
                HTTPStatus.UNAUTHORIZED,
                f"{reason} bearer token: send 'Authorization: Bearer <BULKORDER_CODEC_SERVER_TOKEN>'",
                headers={"WWW-Authenticate": 'Bearer realm="bulkorder codec server"'},
            )

    def _check_namespace(self, in_path: str | None) -> None:
        served = self.codec_server.namespace
        for namespace in (in_path, self.headers.get("X-Namespace")):
            if served is not None and namespace and namespace != served:
                raise _HTTPError(
                    HTTPStatus.FORBIDDEN,
                    f"this codec server serves namespace {served!r}, not {namespace!r}",
                )

    def _read_payloads(self) -> Payloads:
        content_type = self.headers.get("Content-Type", "application/json").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise _HTTPError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"send application/json, not {content_type!r}")
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            raise _HTTPError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
        length = int(length_header)
        if length > self.codec_server.max_request_bytes:
            raise _HTTPError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"request of {length} bytes is over the limit of {self.codec_server.max_request_bytes}",
            )
        body = self.rfile.read(length)
        try:
            return json_format.Parse(body, Payloads())
        except (json_format.ParseError, UnicodeDecodeError) as exc:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, f'body is not {{"payloads": [...]}} in protobuf JSON: {exc}') from None

    def _apply(self, route: str, payloads: Payloads) -> Payloads:
        try:
            return self.codec_server.apply(route, payloads)
        except ClaimCheckError as exc:
            raise _HTTPError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        except TransientStoreError as exc:
            raise _HTTPError(HTTPStatus.SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": "5"}) from None
        except StorageError as exc:
            raise _HTTPError(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc)) from None
        except TimeoutError:
            raise _HTTPError(HTTPStatus.GATEWAY_TIMEOUT, f"the codec took over {CODEC_TIMEOUT:.0f} s") from None

    # Responses.

    def _cors_headers(self) -> dict[str, str]:
        origin = self.headers.get("Origin")
        if not origin or origin.rstrip("/") not in self.codec_server.cors_origins:
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": _ALLOWED_HEADERS,
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }

    def _send(self, status: HTTPStatus, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {**headers, **self._cors_headers()}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _send_error(self, error: _HTTPError) -> None:
        # The body may be unread: close rather than misread it as the next request.
        self.close_connection = True
        body = json.dumps({"error": error.message}).encode()
        self._send(error.status, body, {**error.headers, "Content-Type": "application/json", "Connection": "close"})

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        logger.info("%s %s", self.address_string(), format % args)
