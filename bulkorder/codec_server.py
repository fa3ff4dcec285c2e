"""A codec server: Temporal's Web UI and CLI decode claim-check payloads through it.

Temporal's codec server protocol: ``POST /decode`` and ``POST /encode`` (also under a
namespace segment, ``/{namespace}/decode``, for ``--codec-endpoint`` templates), a JSON
body ``{"payloads": [...]}`` of payloads in protobuf's JSON form (metadata values and data
base64), the same shape back, and the namespace in the ``X-Namespace`` header. Browsers
(the Web UI) first send an ``OPTIONS`` preflight.

Served with aiohttp, as Temporal's samples do, and bounded everywhere (docs/security.md):

- time: a connection that sends no complete request within ``idle_timeout`` is closed
  (aiohttp's keep-alive timer runs from the connection's start, headers included); a
  body must arrive within ``body_timeout``; the codec gets ``codec_timeout``;
- memory: a body over ``max_body_bytes`` is refused with 413 before it is read (by its
  ``Content-Length``) or as soon as it passes the cap (chunked); header lines are capped
  by aiohttp (8 KiB);
- work: at most ``max_concurrency`` requests are read and coded at once; more get 503.

And careful with what it trusts: the ``Host`` header must name an address it serves (DNS
rebinding); ``Content-Type`` must be ``application/json`` (so a cross-site page cannot
post without a CORS preflight); with a token every request needs ``Authorization: Bearer``;
``/encode`` writes blobs, so it is off unless ``enable_encode``; CORS headers go only to
configured origins; a namespace other than the deployment's is refused. Error bodies are
generic: what was wrong, never a file system path or an exception's text; the details go to
the server's log.

The server runs on an event loop in a thread of its own, so it works the same inside or
outside asyncio code (the CLI's ``bulkorder dev``, tests, a plain script).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from http import HTTPStatus
from typing import Iterable

from aiohttp import web
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from bulkorder.codec_protocol import (
    CodecRequestError,
    HostPolicy,
    check_bearer,
    check_content_type,
    is_loopback,
    parse_payloads,
    parse_route,
    payloads_json,
)
from bulkorder.server_errors import CodecServerError
from bulkorder.storage.claim_check import ClaimCheck, is_reference
from bulkorder.storage.errors import BlobIntegrityError, BlobNotFoundError, ClaimCheckError, StorageError, TransientStoreError

__all__ = ["CodecServer", "CodecServerError", "is_loopback"]

logger = logging.getLogger(__name__)

#: Largest request body accepted by default (a decode request carries references of ~300 bytes).
DEFAULT_MAX_BODY_BYTES = 8 * 2**20
#: Most bytes one /decode answer may hold (what the references say they restore to).
DEFAULT_MAX_RESPONSE_BYTES = 64 * 2**20
DEFAULT_MAX_CONCURRENCY = 8
#: Seconds a connection may stay without a complete request (from its start, or its last response).
IDLE_TIMEOUT = 5.0
#: Seconds a request body may take to arrive.
BODY_TIMEOUT = 10.0
#: Seconds the codec may take for one request (large blobs from a slow store).
CODEC_TIMEOUT = 120.0
_ALLOWED_HEADERS = "authorization, content-type, x-namespace"
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/])/[^\s'\"]*")


class CodecServer:
    """Serves ``codec`` over HTTP until :meth:`stop`; also a context manager.

    ``port=0`` picks a free port (see :attr:`url`). ``namespace``, when given, is the
    only namespace served. ``token`` None means no authentication, allowed on loopback only.
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
        enable_encode: bool = False,
        allowed_hosts: Iterable[str] = (),
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        idle_timeout: float = IDLE_TIMEOUT,
        body_timeout: float = BODY_TIMEOUT,
        codec_timeout: float = CODEC_TIMEOUT,
    ) -> None:
        if token is None and not is_loopback(host):
            raise CodecServerError(
                f"a codec server on {host} (not loopback) needs a token: set BULKORDER_CODEC_SERVER_TOKEN"
            )
        self.codec = codec
        self.host = host
        self.port = port
        self.token = token
        self.cors_origins = frozenset(origin.rstrip("/") for origin in cors_origins)
        self.namespace = namespace
        self.enable_encode = enable_encode
        self.hosts = HostPolicy.serving(host, allowed_hosts)
        self.max_body_bytes = max_body_bytes
        self.max_response_bytes = max_response_bytes
        self.max_concurrency = max_concurrency
        self.idle_timeout = idle_timeout
        self.body_timeout = body_timeout
        self.codec_timeout = codec_timeout
        self._bound: tuple[str, int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._in_flight: asyncio.Semaphore | None = None

    def __repr__(self) -> str:
        token = "***" if self.token else None
        return f"CodecServer(host={self.host!r}, port={self.port}, token={token}, namespace={self.namespace!r})"

    @property
    def url(self) -> str:
        if self._bound is None:
            raise RuntimeError("the codec server is not running")
        host, port = self._bound
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    # Life cycle.

    def start(self) -> CodecServer:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="codec-server", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self._serve(), loop).result(timeout=60)
        except OSError as exc:
            self.stop()
            raise CodecServerError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None
        except BaseException:
            self.stop()
            raise
        logger.info("codec server listening on %s", self.url)
        return self

    async def _serve(self) -> None:
        self._in_flight = asyncio.Semaphore(self.max_concurrency)
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app,
            access_log=None,
            keepalive_timeout=self.idle_timeout,
            handler_cancellation=True,  # a client gone mid-request frees its slot
            lingering_time=0,  # an unread body is not drained: the connection closes
            max_line_size=8190,
            max_field_size=8190,
            max_headers=64,
        )
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.host, self.port, backlog=128)
        await site.start()
        address = runner.addresses[0]  # with port 0, the port the system picked
        self._bound = (str(address[0]), int(address[1]))

    def stop(self) -> None:
        loop, thread, runner = self._loop, self._thread, self._runner
        self._loop = self._thread = self._runner = None
        self._bound = None
        if loop is None:
            return
        if runner is not None:
            try:
                asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
            except Exception:  # noqa: BLE001 - stopping anyway
                logger.exception("codec server: clean-up failed")
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        loop.close()

    def __enter__(self) -> CodecServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Requests.

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            self.hosts.check(request.headers.get("Host"))
            route, namespace = parse_route(request.path)
            if request.method == "OPTIONS":
                return self._preflight(request)
            if request.method != "POST":
                raise CodecRequestError(HTTPStatus.METHOD_NOT_ALLOWED, "use POST", headers={"Allow": "POST, OPTIONS"})
            if self.token is not None:
                check_bearer(request.headers.get("Authorization"), self.token)
            if route == "encode" and not self.enable_encode:
                raise CodecRequestError(
                    HTTPStatus.FORBIDDEN, "encode is off on this codec server (it writes blobs): start it with --enable-encode"
                )
            self._check_namespace(namespace, request.headers.get("X-Namespace"))
            check_content_type(request.headers.get("Content-Type"))
            self._check_length(request.content_length)
            body = await self._coded(route, request)
            return self._response(request, HTTPStatus.OK, body)
        except CodecRequestError as exc:
            return self._error(request, exc)

    def _preflight(self, request: web.Request) -> web.Response:
        """CORS preflight: browsers send no credentials here, so no token is asked."""
        if not self._cors_headers(request):
            raise CodecRequestError(HTTPStatus.FORBIDDEN, "that origin is not allowed")
        response = web.Response(status=HTTPStatus.NO_CONTENT, headers={"Access-Control-Max-Age": "600"})
        response.headers.update(self._cors_headers(request))
        return response

    def _check_namespace(self, in_path: str | None, in_header: str | None) -> None:
        for namespace in (in_path, in_header):
            if self.namespace is not None and namespace and namespace != self.namespace:
                raise CodecRequestError(
                    HTTPStatus.FORBIDDEN, f"this codec server serves namespace {self.namespace!r}, not {namespace[:100]!r}"
                )

    def _check_length(self, length: int | None) -> None:
        if length is not None and length > self.max_body_bytes:
            raise self._too_large()

    def _too_large(self) -> CodecRequestError:
        return CodecRequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"request body over the limit of {self.max_body_bytes} bytes (BULKORDER_CODEC_SERVER_MAX_BODY_BYTES)",
        )

    async def _coded(self, route: str, request: web.Request) -> bytes:
        """Read, parse and code the body within the concurrency and time bounds."""
        assert self._in_flight is not None
        if self._in_flight.locked():
            raise CodecRequestError(HTTPStatus.SERVICE_UNAVAILABLE, "busy: retry shortly", headers={"Retry-After": "1"})
        async with self._in_flight:
            try:
                async with asyncio.timeout(self.body_timeout):
                    body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise self._too_large() from None
            except TimeoutError:
                raise CodecRequestError(HTTPStatus.REQUEST_TIMEOUT, f"the body took over {self.body_timeout:g} s") from None
            payloads = parse_payloads(body)
            del body
            if route == "decode":
                self._check_response_size(payloads)
            operation = self.codec.decode if route == "decode" else self.codec.encode
            try:
                async with asyncio.timeout(self.codec_timeout):
                    return payloads_json(await operation(payloads))
            except Exception as exc:  # noqa: BLE001 - every failure gets a generic answer
                raise _public_error(request, exc, self.codec_timeout) from None

    def _check_response_size(self, payloads: list[Payload]) -> None:
        """Refuse (413) a decode whose answer would pass ``max_response_bytes``, from the
        sizes the references state, before any blob is read: a 120 KB body of one
        reference repeated must not make the server build gigabytes."""
        total = 0
        for payload in payloads:
            if is_reference(payload):
                try:
                    total += ClaimCheck.from_payload(payload).original_size
                except ClaimCheckError:
                    total += len(payload.data)  # the codec refuses it, with its reason
            else:
                total += len(payload.data)
            if total > self.max_response_bytes:
                raise CodecRequestError(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    f"the decoded payloads would pass the response limit of {self.max_response_bytes} bytes: "
                    "ask for fewer at a time",
                )

    # Responses.

    def _cors_headers(self, request: web.Request) -> dict[str, str]:
        origin = request.headers.get("Origin")
        if not origin or origin.rstrip("/") not in self.cors_origins:
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": _ALLOWED_HEADERS,
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }

    def _response(self, request: web.Request, status: HTTPStatus, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
        response = web.Response(status=status, body=body, content_type="application/json")
        response.headers.update({**(headers or {}), **self._cors_headers(request)})
        return response

    def _error(self, request: web.Request, error: CodecRequestError) -> web.Response:
        response = self._response(request, error.status, json.dumps({"error": error.message}).encode(), error.headers)
        # The body may be unread: close rather than misread it as the next request.
        response.force_close()
        return response


def _public_error(request: web.Request, exc: Exception, codec_timeout: float) -> CodecRequestError:
    """What the client is told about a failed codec call: the class of failure and the key,
    never the store's location (a folder path) or an exception's text from a library."""
    if isinstance(exc, TimeoutError):
        return CodecRequestError(HTTPStatus.GATEWAY_TIMEOUT, f"the codec took over {codec_timeout:g} s")
    if isinstance(exc, BlobNotFoundError):
        return CodecRequestError(HTTPStatus.NOT_FOUND, f"claim-check blob {exc.key!r} not found")
    if isinstance(exc, BlobIntegrityError):
        logger.error("codec server: %s %s: %s", request.method, request.path, exc)
        return CodecRequestError(HTTPStatus.BAD_GATEWAY, f"claim-check blob {exc.key!r} is corrupt in the blob store")
    if isinstance(exc, ClaimCheckError):
        return CodecRequestError(HTTPStatus.BAD_REQUEST, _without_paths(str(exc)))
    if isinstance(exc, TransientStoreError):
        logger.warning("codec server: %s %s: %s", request.method, request.path, exc)
        return CodecRequestError(HTTPStatus.SERVICE_UNAVAILABLE, "the blob store is unavailable: retry", headers={"Retry-After": "5"})
    if isinstance(exc, StorageError):
        logger.error("codec server: %s %s: %s", request.method, request.path, exc)
        return CodecRequestError(HTTPStatus.INTERNAL_SERVER_ERROR, "the blob store failed: see the codec server's log")
    logger.error("codec server: %s %s failed", request.method, request.path, exc_info=exc)
    return CodecRequestError(HTTPStatus.INTERNAL_SERVER_ERROR, "the codec failed: see the codec server's log")


def _without_paths(text: str) -> str:
    """A claim-check error names the reference; anything like an absolute path is the store's."""
    return _ABSOLUTE_PATH.sub("<path>", text)[:500]
