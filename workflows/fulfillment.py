"""Fulfillment: stream every item of a submitted order back from the blob store.

The order's batches come from its ``ItemsAdded`` events (the workflow never held them);
they are read a few at a time, so memory holds ``concurrency`` batches plus the per-SKU
totals, whatever the order's size. The report is stored as a blob; the ``ReportRef`` is
what the ``FulfillmentCompleted`` event and the workflow carry.

A batch that cannot be read (its blob is gone, corrupt, does not decode, contradicts its
ref, or lacks the fields fulfillment needs) will not become readable by retrying.
:func:`fulfill` (v2) leaves it out of the report and returns it as a
:class:`~bulkorder.domain.summary.Rejection` with the reason, which the workflow records as a
``BatchRejected`` event; :func:`build_report` (v1) fails on it.
"""

from __future__ import annotations

import hashlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

import msgpack
import zstandard

from bulkorder.domain.application import Orders
from bulkorder.domain.items import ItemValidationError
from bulkorder.domain.refs import BatchRef, InvalidRefError, ReportRef, add_totals, check_report_ref
from bulkorder.domain.summary import Rejection
from bulkorder.storage.blob_store import BlobStore, content_key
from bulkorder.storage.bounded_zstd import decompress_bounded
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.encryption.envelope import PURPOSE_REPORT
from bulkorder.storage.encryption.protection import BlobProtection, open_blob
from bulkorder.storage.errors import BatchFormatError, BlobIntegrityError, BlobNotFoundError, InvalidBlobKeyError
from bulkorder.storage.ref_proof import claims_mismatch
from bulkorder.workflows.messages import FulfillmentResult, FulfillRequest

REPORT_FORMAT = "bulkorder-fulfillment-report"
REPORT_VERSION = 1
REPORT_PREFIX = "reports"


#: Errors that make one batch unreadable for good (retrying reads the same bytes).
UNREADABLE_BATCH_ERRORS = (BlobNotFoundError, BlobIntegrityError, BatchFormatError, InvalidRefError, InvalidBlobKeyError)


class FulfillmentMismatch(Exception):
    """The items read back do not add up to what the event store recorded."""


def check_fulfillable(ref: BatchRef, items: list[dict[str, Any]], where: str) -> None:
    """Check what was read against what the ref (and so the event store) claims: item
    count, quantity and totals, every counted field within the domain's bounds. A batch
    whose content does not bear out its ref is rejected whole, never half added, never
    fulfilled as claimed."""
    try:
        mismatch = claims_mismatch(ref, items)
    except ItemValidationError as exc:
        raise BatchFormatError(f"{where}: {exc}") from None
    if mismatch is not None:
        raise BatchFormatError(f"{where}: content does not match its ref: {mismatch}")


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
        raw = msgpack.packb(body, use_bin_type=True)
        if len(raw) > MAX_REPORT_RAW_SIZE:
            # Refused when written, not stored unreadable: a deterministic failure the
            # workflow records (FulfillmentFailed), with the figure to act on.
            raise ReportFormatError(
                f"order {order_id!r}: its report would be {len(raw):,} bytes for {len(self.by_sku):,} SKUs, "
                f"above the limit of {MAX_REPORT_RAW_SIZE:,}"
            )
        return zstandard.ZstdCompressor(level=3).compress(raw)


#: A report decompresses to at most this much. Measured: 23 bytes per SKU (50,000 SKUs
#: of bulkorder.domain.sample_items, 1.17 MB raw); ~100 with 64-character SKUs priced in several
#: currencies; so 64 MiB holds 670,000 to 2.8 million SKUs.
MAX_REPORT_RAW_SIZE = 64 * 2**20


class ReportFormatError(ValueError):
    """Stored bytes that are not a fulfillment report this version reads (named by key)."""


def decode_report(data: bytes, *, where: str = "fulfillment report") -> dict[str, Any]:
    """Read a stored fulfillment report (the inverse of :meth:`SkuTotals.encode`), its
    decompression bounded by :data:`MAX_REPORT_RAW_SIZE`. :class:`ReportFormatError`
    (naming ``where``) for anything else."""
    raw = decompress_bounded(
        data, MAX_REPORT_RAW_SIZE, where=where, error=ReportFormatError, bound="a report's limit is"
    )
    try:
        body = msgpack.unpackb(raw, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ReportFormatError(f"{where}: not valid msgpack ({type(exc).__name__}: {exc})") from None
    if not isinstance(body, dict) or body.get("format") != REPORT_FORMAT or body.get("version") != REPORT_VERSION:
        shown = body.get("format") if isinstance(body, dict) else type(body).__name__
        raise ReportFormatError(f"{where}: not a bulkorder fulfillment report (format {shown!r})")
    return body


def read_report(blobs: BlobStore, ref: ReportRef, protection: BlobProtection | None = None) -> dict[str, Any]:
    """The report ``ref`` names, proven against the ref (its sha-256, and never more than
    its size read), opened with ``protection`` if it is sealed, and decoded bounded: the
    only way to read a report back."""
    check_report_ref(ref)
    data = blobs.get(ref.key, sha256=ref.sha256, max_size=ref.size)
    if len(data) != ref.size:
        raise ReportFormatError(f"fulfillment report {ref.key}: blob is {len(data)} bytes, the ref says {ref.size}")
    where = f"fulfillment report {ref.key}"
    return decode_report(open_blob(protection, data, where=where, purpose=PURPOSE_REPORT), where=where)


def build_report(
    *,
    orders: Orders,
    batches: BatchStore,
    request: FulfillRequest,
    heartbeat: Callable[..., None] = lambda *_: None,
) -> ReportRef:
    """v1: the report over every batch; raises on the first batch it cannot read."""
    totals, rejections = _read_all(orders, batches, request, heartbeat, reject_unreadable=False)
    assert not rejections
    return _store_report(batches, request.order_id, totals)


def fulfill(
    *,
    orders: Orders,
    batches: BatchStore,
    request: FulfillRequest,
    heartbeat: Callable[..., None] = lambda *_: None,
) -> FulfillmentResult:
    """v2: the report over every readable batch, and a rejection for each unreadable one."""
    totals, rejections = _read_all(orders, batches, request, heartbeat, reject_unreadable=True)
    if rejections and totals.item_count == 0:
        return FulfillmentResult(report=None, rejections=rejections)  # nothing to fulfill
    return FulfillmentResult(report=_store_report(batches, request.order_id, totals), rejections=rejections)


def _read_checked(batches: BatchStore, ref: BatchRef, order_id: str) -> list[dict[str, Any]]:
    items = batches.read(ref, order_id=order_id)  # a batch of another order is refused
    check_fulfillable(ref, items, f"batch {ref.batch_id!r} ({ref.key})")
    return items


def _read_all(
    orders: Orders,
    batches: BatchStore,
    request: FulfillRequest,
    heartbeat: Callable[..., None],
    *,
    reject_unreadable: bool,
) -> tuple[SkuTotals, list[Rejection]]:
    if request.expected_batches == 0:
        # Every batch was rejected before it was recorded (unproven, past the bounds...):
        # an empty report would read as "fulfilled". It is a failure an operator decides on.
        raise FulfillmentMismatch(f"order {request.order_id!r} has no recorded items to fulfill: every batch was rejected")
    refs = list(orders.iter_batch_refs(request.order_id, up_to_version=request.up_to_version))
    if len(refs) != request.expected_batches:
        raise FulfillmentMismatch(
            f"order {request.order_id!r}: event store holds {len(refs)} batches, "
            f"expected {request.expected_batches}"
        )
    totals = SkuTotals()
    rejections: list[Rejection] = []
    window = max(1, request.concurrency)
    with ThreadPoolExecutor(max_workers=window, thread_name_prefix="fulfill") as pool:
        in_flight: deque[tuple[BatchRef, Future[list[dict[str, Any]]]]] = deque()
        queue: deque[BatchRef] = deque(refs)
        done = 0
        while queue or in_flight:
            # Keep `window` reads in flight; consume in order so the report is deterministic.
            while queue and len(in_flight) < window:
                ref = queue.popleft()
                in_flight.append((ref, pool.submit(_read_checked, batches, ref, request.order_id)))
            ref, future = in_flight.popleft()
            try:
                items = future.result()
            except UNREADABLE_BATCH_ERRORS as exc:
                if not reject_unreadable:
                    raise
                rejections.append(
                    Rejection(
                        batch_id=ref.batch_id,
                        reason=f"unreadable at fulfillment: {exc}",
                        key=ref.key,
                        at_fulfillment=True,
                        item_count=ref.item_count,
                    )
                )
            else:
                totals.add(items)
            done += 1
            heartbeat(done)
    expected_items = request.expected_items - sum(rejection.item_count for rejection in rejections)
    if totals.item_count != expected_items:
        raise FulfillmentMismatch(
            f"order {request.order_id!r}: read {totals.item_count} items back, "
            f"the event store recorded {expected_items} in its readable batches"
        )
    return totals, rejections


def _store_report(batches: BatchStore, order_id: str, totals: SkuTotals) -> ReportRef:
    data = batches.seal_blob(order_id, PURPOSE_REPORT, totals.encode(order_id))
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
