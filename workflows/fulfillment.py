"""Fulfillment: stream every item of a submitted order back from the blob store.

The order's batches come from its ``ItemsAdded`` events (the workflow never held them);
they are read a few at a time, so memory holds ``concurrency`` batches plus the per-SKU
totals, whatever the order's size. The report is stored as a blob; the ``ReportRef`` is
what the ``FulfillmentCompleted`` event and the workflow carry.
"""

from __future__ import annotations

import hashlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

import msgpack
import zstandard

from domain.application import Orders
from domain.refs import BatchRef, ReportRef, add_totals
from storage.blob_store import content_key
from storage.batches import BatchStore
from workflows.messages import FulfillRequest

REPORT_FORMAT = "bulkorder-fulfillment-report"
REPORT_VERSION = 1
REPORT_PREFIX = "reports"


class FulfillmentMismatch(Exception):
    """The items read back do not add up to what the event store recorded."""


class SkuTotals:
    """Per-SKU quantity and per-currency amount, accumulated item by item."""

    def __init__(self) -> None:
        self.by_sku: dict[str, list[Any]] = {}
        self.item_count = 0
        self.quantity = 0
        self.totals: dict[str, int] = {}

    def add(self, items: list[dict[str, Any]]) -> None:
        by_sku = self.by_sku
        for item in items:
            quantity = item["quantity"]
            price = item["unit_price"]
            amount = quantity * price["amount"]
            entry = by_sku.get(item["sku"])
            if entry is None:
                entry = by_sku[item["sku"]] = [0, {}]
            entry[0] += quantity
            entry[1][price["currency"]] = entry[1].get(price["currency"], 0) + amount
            self.quantity += quantity
            self.totals[price["currency"]] = self.totals.get(price["currency"], 0) + amount
        self.item_count += len(items)

    def encode(self, order_id: str) -> bytes:
        body = {
            "format": REPORT_FORMAT,
            "version": REPORT_VERSION,
            "order_id": order_id,
            "item_count": self.item_count,
            "quantity": self.quantity,
            "totals": self.totals,
            "skus": [[sku, entry[0], entry[1]] for sku, entry in sorted(self.by_sku.items())],
        }
        return zstandard.ZstdCompressor(level=3).compress(msgpack.packb(body, use_bin_type=True))


def decode_report(data: bytes) -> dict[str, Any]:
    """Read a stored fulfillment report (the inverse of :meth:`SkuTotals.encode`)."""
    body: dict[str, Any] = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(data), raw=False)
    if body.get("format") != REPORT_FORMAT or body.get("version") != REPORT_VERSION:
        raise ValueError(f"not a bulkorder fulfillment report (format {body.get('format')!r})")
    return body


def build_report(
    *,
    orders: Orders,
    batches: BatchStore,
    request: FulfillRequest,
    heartbeat: Callable[..., None] = lambda *_: None,
) -> ReportRef:
    refs = list(orders.iter_batch_refs(request.order_id, up_to_version=request.up_to_version))
    if len(refs) != request.expected_batches:
        raise FulfillmentMismatch(
            f"order {request.order_id!r}: event store holds {len(refs)} batches, "
            f"expected {request.expected_batches}"
        )
    totals = SkuTotals()
    window = max(1, request.concurrency)
    with ThreadPoolExecutor(max_workers=window, thread_name_prefix="fulfill") as pool:
        in_flight: deque[Future[list[dict[str, Any]]]] = deque()
        queue: deque[BatchRef] = deque(refs)
        done = 0
        while queue or in_flight:
            # Keep `window` reads in flight; consume in order so the report is deterministic.
            while queue and len(in_flight) < window:
                in_flight.append(pool.submit(batches.read, queue.popleft()))
            totals.add(in_flight.popleft().result())
            done += 1
            heartbeat(done)
    if totals.item_count != request.expected_items:
        raise FulfillmentMismatch(
            f"order {request.order_id!r}: read {totals.item_count} items back, "
            f"the event store recorded {request.expected_items}"
        )
    data = totals.encode(request.order_id)
    sha = hashlib.sha256(data).hexdigest()
    key = content_key(sha, prefix=REPORT_PREFIX)
    batches.blobs.put(key, data)
    return ReportRef(
        key=key,
        sha256=sha,
        size=len(data),
        sku_count=len(totals.by_sku),
        item_count=totals.item_count,
        quantity=totals.quantity,
        totals=add_totals({}, totals.totals),
    )
