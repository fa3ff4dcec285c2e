"""References to data held in the blob store: what Temporal and the event store carry.

A :class:`BatchRef` is a few hundred bytes however many items its batch holds. It is a
plain frozen dataclass (standard library only) so Temporal's default converter serialises
it and workflow code can import it inside the sandbox. No ``from __future__ import
annotations`` in this module: real (not string) annotations make Temporal's converter
decode a ref about twice as fast, which matters when a workflow task carries thousands of
``add_batches`` signals (Temporal fails a task that runs longer than 2 s).
"""

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

from bulkorder.domain.errors import BulkorderError
from bulkorder.domain.identifiers import InvalidIdentifierError, check_batch_id
from bulkorder.domain.limits import MAX_ORDER_QUANTITY, MAX_ORDER_TOTAL

#: The batch encoding this version of bulkorder writes and reads.
BATCH_ENCODING = "msgpack+zstd"
BATCH_FORMAT_VERSION = 1
SUPPORTED_BATCH_FORMATS: frozenset[tuple[str, int]] = frozenset({(BATCH_ENCODING, 1)})

#: Upper bounds a ref must respect; a batch beyond these is a bug or an attack.
MAX_BATCH_ITEMS = 1_000_000
MAX_BATCH_BYTES = 1 << 30
#: Every batch lives under exactly ``batches/<first two hex digits>/<sha-256>``.
BATCH_KEY_PREFIX = "batches"

_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$")
_CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")
#: A seal is empty (unsealed) or ``hs256:<16 hex key id>:<64 hex mac>`` (``bulkorder.domain.seal``).
_SEAL_PATTERN = re.compile(r"hs256:[0-9a-f]{16}:[0-9a-f]{64}")


class InvalidRefError(BulkorderError, ValueError):
    """A :class:`BatchRef` or :class:`ReportRef` that cannot be right."""


@dataclass(frozen=True)
class BatchRef:
    """One immutable, content-addressed batch of items in the blob store."""

    batch_id: str
    key: str
    sha256: str
    size: int
    item_count: int
    quantity: int
    #: Sum of quantity x unit price per currency, in minor units (cents).
    totals: dict[str, int] = field(default_factory=dict)
    encoding: str = BATCH_ENCODING
    format_version: int = BATCH_FORMAT_VERSION
    #: The writer's seal over every other field (``bulkorder.domain.seal``): proves that bulkorder's
    #: own writer counted this content. Empty on refs from before seals, or from writers
    #: without the deployment's secret: their claims are then checked against the blob.
    seal: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BatchRef":
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise InvalidRefError(f"batch ref {dict(data)!r} has the wrong fields: {exc}") from None


@dataclass(frozen=True)
class ReportRef:
    """The fulfillment report of an order, stored as a blob."""

    key: str
    sha256: str
    size: int
    sku_count: int
    item_count: int
    quantity: int
    totals: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_key(key: object, *, where: str = "key") -> str:
    if not isinstance(key, str) or len(key) > 512 or not _KEY_PATTERN.fullmatch(key) or ".." in key:
        raise InvalidRefError(
            f"{where} {key!r} is not a valid blob key (lower-case path segments of "
            "a-z 0-9 . _ -, no '..', at most 512 characters)"
        )
    return key


def _check_count(value: object, name: str, where: str, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:
        raise InvalidRefError(f"{where}: {name} must be an integer from {low} to {high}, got {value!r}")


def _check_totals(totals: object, where: str) -> None:
    if not isinstance(totals, dict):
        raise InvalidRefError(f"{where}: totals must be a mapping of currency to minor units")
    if len(totals) > 200:
        raise InvalidRefError(f"{where}: totals names {len(totals)} currencies, at most 200")
    for currency, amount in totals.items():
        if not isinstance(currency, str) or not _CURRENCY_PATTERN.fullmatch(currency):
            raise InvalidRefError(f"{where}: totals has an invalid currency code {currency!r}")
        if type(amount) is not int or not 0 <= amount <= MAX_ORDER_TOTAL:
            raise InvalidRefError(
                f"{where}: totals[{currency}] must be an integer from 0 to {MAX_ORDER_TOTAL}, got {amount!r}"
            )


def batch_key(sha256: str) -> str:
    """The one key a batch with this sha-256 may live under: ``batches/ab/ab12...``."""
    return f"{BATCH_KEY_PREFIX}/{sha256[:2]}/{sha256}"


def check_batch_ref(ref: object) -> BatchRef:
    """Return ``ref`` if it is a well-formed :class:`BatchRef`, else raise :class:`InvalidRefError`.

    Checks the shape only (no I/O): IDs, key and hash format, that the key is the one the
    content hash implies, sizes and counts in range, and a supported encoding.
    """
    if not isinstance(ref, BatchRef):
        raise InvalidRefError(f"expected a BatchRef, got {type(ref).__name__}")
    try:
        check_batch_id(ref.batch_id)
    except InvalidIdentifierError as exc:
        raise InvalidRefError(str(exc)) from None
    where = f"batch {ref.batch_id}"
    check_key(ref.key, where=f"{where}: key")
    if not isinstance(ref.sha256, str) or not _SHA256_PATTERN.fullmatch(ref.sha256):
        raise InvalidRefError(f"{where}: sha256 must be 64 lower-case hex digits, got {ref.sha256!r}")
    if ref.key != batch_key(ref.sha256):
        # Exactly the content key, not one that merely ends with the hash: readers check
        # the bytes against ``sha256``, and nothing else may live under a batch's name.
        raise InvalidRefError(
            f"{where}: key {ref.key!r} is not the content key of its sha256 (expected {batch_key(ref.sha256)!r})"
        )
    _check_count(ref.size, "size", where, 1, MAX_BATCH_BYTES)
    _check_count(ref.item_count, "item_count", where, 1, MAX_BATCH_ITEMS)
    _check_count(ref.quantity, "quantity", where, ref.item_count, MAX_ORDER_QUANTITY)
    _check_totals(ref.totals, where)
    if not ref.totals:
        raise InvalidRefError(f"{where}: totals must name at least one currency (every item has a price)")
    if len(ref.totals) > ref.item_count:
        raise InvalidRefError(f"{where}: totals name {len(ref.totals)} currencies for {ref.item_count} items")
    if (
        type(ref.encoding) is not str
        or type(ref.format_version) is not int  # True == 1 == 1.0 would pass the set lookup
        or (ref.encoding, ref.format_version) not in SUPPORTED_BATCH_FORMATS
    ):
        raise InvalidRefError(
            f"{where}: unsupported encoding {ref.encoding!r} version {ref.format_version!r}"
        )
    if type(ref.seal) is not str or (ref.seal and not _SEAL_PATTERN.fullmatch(ref.seal)):
        raise InvalidRefError(f"{where}: seal must be empty or hs256:<16 hex>:<64 hex>")
    return ref


def check_batch_refs(refs: Iterable[object]) -> list[BatchRef]:
    """``refs`` as a list if every one is well formed; else the first problem, naming its
    position (``batch ref #3: ...``), as :func:`check_batch_ref` would raise it."""
    checked = list(refs)
    for index, ref in enumerate(checked):
        try:
            check_batch_ref(ref)
        except ValueError as exc:
            raise type(exc)(f"batch ref #{index}: {exc}") from None
    return checked  # type: ignore[return-value]


def check_report_ref(ref: object) -> ReportRef:
    if not isinstance(ref, ReportRef):
        raise InvalidRefError(f"expected a ReportRef, got {type(ref).__name__}")
    check_key(ref.key, where="report key")
    if not isinstance(ref.sha256, str) or not _SHA256_PATTERN.fullmatch(ref.sha256):
        raise InvalidRefError(f"report: sha256 must be 64 lower-case hex digits, got {ref.sha256!r}")
    if not ref.key.endswith("/" + ref.sha256):
        raise InvalidRefError(f"report: key {ref.key!r} is not the content key of its sha256")
    _check_totals(ref.totals, "report")
    return ref


def totals_over_limit(
    quantity: int, totals: Mapping[str, int], more_quantity: int = 0, more: Mapping[str, int] | None = None
) -> str | None:
    """Why adding ``more_quantity``/``more`` to ``quantity``/``totals`` would pass the order
    bounds (``MAX_ORDER_QUANTITY``, ``MAX_ORDER_TOTAL`` per currency), else ``None``."""
    if quantity + more_quantity > MAX_ORDER_QUANTITY:
        return f"the order's quantity would be {quantity + more_quantity}, above the limit of {MAX_ORDER_QUANTITY}"
    for currency, amount in (more or {}).items():
        total = totals.get(currency, 0) + amount
        if total > MAX_ORDER_TOTAL:
            return f"the order's {currency} total would be {total} minor units, above the limit of {MAX_ORDER_TOTAL}"
    return None


def add_totals(into: dict[str, int], more: Mapping[str, int]) -> dict[str, int]:
    """Add per-currency totals into ``into`` (in place) and return it."""
    for currency, amount in more.items():
        into[currency] = into.get(currency, 0) + amount
    return into
