"""A worker's liveness and readiness (``/healthz``, ``/readyz`` on its metrics port).

Liveness: the process answers (its event loop turns). Readiness: it can do its work now:
Temporal answers a health check, the event store takes a write (a rolled-back one,
:mod:`bulkorder.storage.event_store_probe`), and the blob store reads back a small probe
blob it wrote once (:data:`PROBE_KEY`, immutable like every blob). Each check has a
deadline, so a hung database or bucket makes the answer "not ready", never no answer.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from temporalio.client import Client

from bulkorder.domain.application import Orders
from bulkorder.storage.blob_store import BlobStore, sha256_hex
from bulkorder.storage.event_store_probe import check_event_store_writable

PROBE_KEY = "health/probe"
PROBE_BYTES = b"bulkorder readiness probe\n"
DEFAULT_CHECK_TIMEOUT = 5.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "detail": self.detail, "seconds": round(self.seconds, 4)}


def _blob_store_readable(blobs: BlobStore) -> None:
    if not blobs.exists(PROBE_KEY):
        blobs.put(PROBE_KEY, PROBE_BYTES)
    blobs.get(PROBE_KEY, sha256=sha256_hex(PROBE_BYTES), max_size=len(PROBE_BYTES))


class Readiness:
    """The three checks of a worker, run concurrently, each within ``timeout`` seconds."""

    def __init__(self, client: Client, orders: Orders, blobs: BlobStore, *, timeout: float = DEFAULT_CHECK_TIMEOUT):
        self.timeout = timeout
        self.checks: dict[str, Callable[[], Awaitable[object]]] = {
            "temporal": client.service_client.check_health,
            "event_store": lambda: asyncio.to_thread(check_event_store_writable, orders.recorder),
            "blob_store": lambda: asyncio.to_thread(_blob_store_readable, blobs),
        }

    async def _run(self, name: str, check: Callable[[], Awaitable[object]]) -> CheckResult:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(check(), self.timeout)
        except asyncio.TimeoutError:
            return CheckResult(name, False, f"no answer within {self.timeout:g} s", time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; the detail says which
            return CheckResult(name, False, f"{type(exc).__name__}: {exc}", time.perf_counter() - started)
        return CheckResult(name, True, "ok", time.perf_counter() - started)

    async def check(self) -> list[CheckResult]:
        return list(await asyncio.gather(*(self._run(name, check) for name, check in self.checks.items())))
