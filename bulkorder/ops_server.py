"""The worker's operations port: ``/metrics``, ``/healthz`` and ``/readyz`` (aiohttp).

``/metrics`` is one Prometheus text page: bulkorder's own metrics (:mod:`bulkorder.metrics`,
prometheus-client's registry) followed by the Temporal SDK's, which the SDK serves on a
private loopback port (``PrometheusConfig``) and this server fetches on each scrape, so an
operator scrapes one target per worker. ``/healthz`` answers 200 while the process runs
(draining included); ``/readyz`` answers 503 once a shutdown began, else it runs :class:`~bulkorder.health.Readiness` and
answers 503 naming each check that failed.
"""

from __future__ import annotations

import json
import socket

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from bulkorder.health import Readiness
from bulkorder.server_errors import OpsServerError

_SDK_FETCH_TIMEOUT = aiohttp.ClientTimeout(total=5)


class OpsServer:
    """Serves one worker's operations endpoints on ``host:port`` (port 0: a free one)."""

    def __init__(
        self, host: str, port: int, *, readiness: Readiness | None = None, sdk_metrics_url: str | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.readiness = readiness
        self.sdk_metrics_url = sdk_metrics_url
        self.stopping = False
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> OpsServer:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        # Our own socket: its port is known when 0 asked for a free one.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise OpsServerError(f"the metrics port cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None
        self.port = int(sock.getsockname()[1])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _sdk_metrics(self) -> bytes:
        if self.sdk_metrics_url is None:
            return b""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_SDK_FETCH_TIMEOUT)
        try:
            async with self._session.get(self.sdk_metrics_url) as response:
                response.raise_for_status()
                return await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Our own figures still count: say what is missing, as a comment.
            return f"# Temporal SDK metrics unavailable: {type(exc).__name__}\n".encode()

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(REGISTRY) + await self._sdk_metrics()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        # Alive while draining too: a liveness failure would get a draining worker killed.
        return web.json_response({"status": "stopping" if self.stopping else "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.stopping:
            return web.json_response({"status": "stopping", "checks": {}}, status=503)
        if self.readiness is None:
            return web.json_response({"status": "ready", "checks": {}})
        results = await self.readiness.check()
        failed = [result.name for result in results if not result.ok]
        body = {
            "status": "not ready" if failed else "ready",
            "failed": failed,
            "checks": {result.name: result.to_dict() for result in results},
        }
        return web.Response(
            text=json.dumps(body), status=503 if failed else 200, content_type="application/json"
        )
