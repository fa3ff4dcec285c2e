"""Batches of items in the blob store, and the :class:`~bulkorder.domain.refs.BatchRef`s naming them.

This is the one place that turns items into a ref and a ref back into items. A batch is
stored under the sha-256 of its bytes, so writing the same batch twice writes it once, and
its default ID derives from that hash too: re-adding identical content is idempotent all
the way up to the ``Order`` aggregate (a batch ID is applied at most once).

With a :class:`~bulkorder.storage.encryption.protection.BlobProtection`, a batch is sealed
with its order's data key before it is hashed: the content address and ``BatchRef.sha256``
are those of the stored (sealed) bytes, checked before anything is opened. Sealing is
deterministic per order (docs/data_protection.md), so a batch written twice by a retried
import is still one blob under one key.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from bulkorder.domain.identifiers import check_batch_id
from bulkorder.domain.items import Item, item_from_dict
from bulkorder.domain.counters import check_batch_sums
from bulkorder.domain.refs import BATCH_ENCODING, BATCH_FORMAT_VERSION, BATCH_KEY_PREFIX, BatchRef, check_batch_ref
from bulkorder.domain.seal import RefSealer
from bulkorder.storage.batch_codec import DEFAULT_LEVEL, decode_batch, encode_batch, frame_batch
from bulkorder.storage.blob_store import BlobStore, content_key, sha256_hex
from bulkorder.storage.encryption.envelope import PURPOSE_BATCH, DataKey, seal
from bulkorder.storage.encryption.protection import BlobProtection, open_blob
from bulkorder.storage.errors import BatchFormatError, BlobIntegrityError, BlobNotFoundError, BlobTooLargeError
from bulkorder.storage.leases import WriteLeases

#: Default batch IDs: this prefix and the first 32 hex digits (128 bits) of the sha-256.
CONTENT_BATCH_ID_PREFIX = "sha256-"


def where_of(ref: BatchRef) -> str:
    """How errors name a batch: its ID and key."""
    return f"batch {ref.batch_id!r} ({ref.key})"


def batch_counters(items: Sequence[Mapping[str, Any]]) -> tuple[int, dict[str, int]]:
    """Total quantity, and sum of quantity x unit price per currency in minor units."""
    quantity = 0
    totals: dict[str, int] = {}
    for item in items:
        count = item["quantity"]
        price = item["unit_price"]
        quantity += count
        currency = price["currency"]
        totals[currency] = totals.get(currency, 0) + count * price["amount"]
    return quantity, totals


def checked_batch_counters(items: Sequence[Mapping[str, Any]], where: str) -> tuple[int, dict[str, int]]:
    """:func:`batch_counters`, refused (ItemValidationError naming ``where``) when a sum
    passes the order bounds: no batch can carry counters an order could not hold."""
    quantity, totals = batch_counters(items)
    check_batch_sums(quantity, totals, where)
    return quantity, totals


def encode_batch_items(
    items: Sequence[Mapping[str, Any]],
    batch_id: str | None = None,
    level: int = DEFAULT_LEVEL,
    data_key: DataKey | None = None,
) -> tuple[BatchRef, bytes]:
    """Encode ``items`` (already validated) into a batch: its unsealed ref and its bytes.

    Pure CPU, no blob store and no secret, so it runs in a thread or another process (the
    importer's encoding processes); whoever stores the bytes seals the ref
    (:meth:`BatchStore.seal`). With ``data_key`` (the order's, :meth:`BatchStore.data_key`)
    the bytes are sealed with it. Raises :class:`ValueError` for an empty batch, an invalid
    ``batch_id``, or a batch beyond the limits of a ref.
    """
    if batch_id is not None:
        check_batch_id(batch_id)
    if not items:
        raise ValueError(f"batch {batch_id or '(unnamed)'} is empty: a batch holds at least one item")
    quantity, totals = checked_batch_counters(items, f"batch {batch_id or '(unnamed)'}")
    return _batch_ref(_sealed(encode_batch(items, level=level), data_key), len(items), quantity, totals, batch_id)


def encode_packed_batch(
    raw: bytes,
    item_count: int,
    quantity: int,
    totals: dict[str, int],
    batch_id: str | None = None,
    level: int = DEFAULT_LEVEL,
    data_key: DataKey | None = None,
) -> tuple[BatchRef, bytes]:
    """Like :func:`encode_batch_items`, for items already validated and packed as one
    msgpack array of item maps (with their counters): the importer's fast path."""
    if batch_id is not None:
        check_batch_id(batch_id)
    if item_count <= 0:
        raise ValueError(f"batch {batch_id or '(unnamed)'} is empty: a batch holds at least one item")
    check_batch_sums(quantity, totals, f"batch {batch_id or '(unnamed)'}")
    framed = frame_batch(raw, item_count, level=level)
    return _batch_ref(_sealed(framed, data_key), item_count, quantity, totals, batch_id)


def _sealed(data: bytes, data_key: DataKey | None) -> bytes:
    return data if data_key is None else seal(data_key, PURPOSE_BATCH, data)


def _batch_ref(
    data: bytes, item_count: int, quantity: int, totals: dict[str, int], batch_id: str | None
) -> tuple[BatchRef, bytes]:
    sha256 = sha256_hex(data)
    ref = BatchRef(
        batch_id=batch_id if batch_id is not None else CONTENT_BATCH_ID_PREFIX + sha256[:32],
        key=content_key(sha256, BATCH_KEY_PREFIX),
        sha256=sha256,
        size=len(data),
        item_count=item_count,
        quantity=quantity,
        totals=totals,
        encoding=BATCH_ENCODING,
        format_version=BATCH_FORMAT_VERSION,
    )
    return check_batch_ref(ref), data


class BatchStore:
    """Writes item batches as content-addressed blobs and reads them back, checked.

    Every batch lives under its content key (``batches/ab/ab12...``, see
    :func:`bulkorder.domain.refs.batch_key`); ``level`` is the zstd compression level. With a
    ``sealer`` (the deployment's secret), the refs it makes are sealed: the worker then
    believes their counters without reading the blob again (``bulkorder.storage.ref_proof``).
    With ``protection`` (the deployment's data keys), every batch it writes is sealed with
    its order's data key, and sealed batches are opened on reading; without it, sealed
    batches cannot be read (a clear :class:`~bulkorder.storage.encryption.errors.KeyringError`).
    """

    key_prefix = BATCH_KEY_PREFIX

    def __init__(
        self,
        blobs: BlobStore,
        *,
        level: int = DEFAULT_LEVEL,
        sealer: RefSealer | None = None,
        protection: BlobProtection | None = None,
    ) -> None:
        self.blobs = blobs
        self.level = level
        self.sealer = sealer
        self.protection = protection

    def __repr__(self) -> str:
        encrypted = self.protection is not None and self.protection.encrypt
        return f"BatchStore({self.blobs!r}, sealed={self.sealer is not None}, encrypted={encrypted})"

    def data_key(self, order_id: str | None) -> DataKey | None:
        """The data key this store seals ``order_id``'s batches with (``None``: plaintext).
        Blob I/O on an order's first use (then cached): call it off the event loop."""
        return None if self.protection is None else self.protection.key_for(order_id)

    def seal_blob(self, order_id: str | None, purpose: int, data: bytes) -> bytes:
        """``data`` (another blob of ``order_id``: a report) sealed with its data key, or
        as it is when this store does not encrypt."""
        return data if self.protection is None else self.protection.seal(order_id, purpose, data)

    def seal_scope(self, order_id: str | None) -> str:
        """What a seal of ``order_id``'s batch is bound to: the order's data key ID ("" with
        no order named, or where this store does not encrypt). Blob I/O on first use."""
        if order_id is None or self.protection is None or not self.protection.encrypt:
            return ""
        return self.protection.keys.order_key_id(order_id)

    def seal(self, ref: BatchRef, *, order_id: str | None = None) -> BatchRef:
        """``ref`` sealed with this store's secret, bound to ``order_id`` (unchanged
        without a secret): the seal proves nothing for any other order."""
        return ref if self.sealer is None else self.sealer.seal(ref, self.seal_scope(order_id))

    def encode(
        self, items: Sequence[Mapping[str, Any]], batch_id: str | None = None, *, order_id: str | None = None
    ) -> tuple[BatchRef, bytes]:
        """Encode ``items`` (already validated) into a batch of ``order_id``: its ref, sealed
        when this store seals, and its bytes (encrypted with the order's data key when this
        store encrypts). See :func:`encode_batch_items`; write the result with :meth:`put_encoded`."""
        ref, data = encode_batch_items(items, batch_id, self.level, self.data_key(order_id))
        return self.seal(ref, order_id=order_id), data

    def encode_packed(
        self,
        raw: bytes,
        item_count: int,
        quantity: int,
        totals: dict[str, int],
        batch_id: str | None = None,
        *,
        order_id: str | None = None,
    ) -> tuple[BatchRef, bytes]:
        """Like :meth:`encode`, for items already packed: see :func:`encode_packed_batch`."""
        ref, data = encode_packed_batch(raw, item_count, quantity, totals, batch_id, self.level, self.data_key(order_id))
        return self.seal(ref, order_id=order_id), data

    def put_encoded(self, ref: BatchRef, data: bytes, *, leases: WriteLeases | None = None) -> None:
        """Store bytes from :meth:`encode` (perhaps made elsewhere); checks they match ``ref``.
        With ``leases`` (a lease on ``ref.key`` taken before), a blob found already stored
        is made sure of after the gc runs under way (``WriteLeases.put_fenced``)."""
        check_batch_ref(ref)
        if len(data) != ref.size:
            raise BatchFormatError(
                f"batch {ref.batch_id!r} ({ref.key}): {len(data)} bytes given, the ref says {ref.size}"
            )
        actual = sha256_hex(data)
        if actual != ref.sha256:
            raise BlobIntegrityError(ref.key, ref.sha256, actual, context=f"batch {ref.batch_id!r}")
        if leases is not None:
            leases.put_fenced(ref.key, data)
        else:
            self.blobs.put(ref.key, data)

    def put_leased(self, ref: BatchRef, data: bytes, leases: WriteLeases) -> str:
        """Take a lease on ``ref.key``, then store the bytes (:meth:`put_encoded`); returns
        the lease's key, to release once the workflow has acknowledged the ref."""
        lease = leases.take([ref.key])
        self.put_encoded(ref, data, leases=leases)
        return lease

    def write(
        self, items: Sequence[Mapping[str, Any]], batch_id: str | None = None, *, order_id: str | None = None
    ) -> BatchRef:
        """Encode and store ``items`` (a batch of ``order_id``: sealed with its data key
        when this store encrypts); returns the ref to hand to the workflow."""
        ref, data = self.encode(items, batch_id, order_id=order_id)
        self.blobs.put(ref.key, data)
        return ref

    def fetch(self, ref: BatchRef, *, order_id: str | None = None) -> bytes:
        """The bytes of the batch ``ref`` names, proven against the ref: its sha-256, and
        never more than its size read (a larger object is refused unread), then opened if
        sealed (the batch's plaintext bytes: header and body). Decode them with
        :func:`~bulkorder.storage.batch_codec.decode_batch` or, re-encoding items,
        :func:`~bulkorder.storage.batch_codec.decode_stored_items`.

        Raises :class:`~bulkorder.domain.refs.InvalidRefError` for a malformed ref,
        :class:`BlobNotFoundError` / :class:`BlobIntegrityError` if the blob is missing
        or corrupt, :class:`BatchFormatError` if its size differs. Each names the batch ID
        and its key.

        With ``order_id`` (the order the batch is read for: fulfillment, the proof of a
        ref, an analyst's replay), a batch sealed with another order's data key is
        refused (:class:`ForeignBatchError`): a ref copied from one order's history into
        another's never brings that order's items with it. Batches sealed with the shared
        key (stored with no order named) and plaintext ones of old stores belong to any order.
        """
        check_batch_ref(ref)
        context = f"batch {ref.batch_id!r}"
        try:
            data = self.blobs.get(ref.key, sha256=ref.sha256, max_size=ref.size)
        except BlobNotFoundError as exc:
            raise BlobNotFoundError(ref.key, exc.location, context=context) from None
        except BlobIntegrityError as exc:
            raise BlobIntegrityError(ref.key, exc.expected, exc.actual, exc.location, context=context) from None
        except BlobTooLargeError as exc:
            raise BlobTooLargeError(ref.key, exc.size, exc.limit, exc.location, context=context) from None
        if len(data) != ref.size:
            raise BatchFormatError(f"{context} ({ref.key}): blob is {len(data)} bytes, the ref says {ref.size}")
        where = f"{context} ({ref.key})"
        if order_id is not None and self.protection is not None:
            self.protection.check_owner(data, order_id, where=where)
        # Sealed with its order's data key: opened only now, after the hash and size checks.
        return open_blob(self.protection, data, where=where, purpose=PURPOSE_BATCH)

    def read(self, ref: BatchRef, *, order_id: str | None = None) -> list[dict[str, Any]]:
        """The items of the batch ``ref`` names, checked against the ref (see :meth:`fetch`,
        also for ``order_id``; :class:`BatchFormatError` also if the bytes do not decode or
        contradict the ref)."""
        return decode_batch(self.fetch(ref, order_id=order_id), where=where_of(ref), item_count=ref.item_count)

    def read_items(self, ref: BatchRef, *, order_id: str | None = None) -> list[Item]:
        """Like :meth:`read`, as :class:`~bulkorder.domain.items.Item` models (slower: one model per item)."""
        return [item_from_dict(item) for item in self.read(ref, order_id=order_id)]
