"""Data keys (DEKs): one random 256-bit key per order, wrapped by the keyring's KEK and
kept as a small object in the blob store.

Every order's batches, reports, claim-check payloads and the personal fields of its
events are sealed with its own data key, so destroying that key (crypto-shredding,
:meth:`DataKeys.destroy_order_key`) makes all of them unreadable for good, wherever
copies lie. A few *named* data keys serve the whole deployment: ``index`` (the secret
that turns order IDs into order key IDs), ``events`` (event bodies) and ``payloads``
(Temporal payloads of no order).

Objects in the blob store (each a JSON document of a few hundred bytes)::

    keys/data/<key id>               the data key, wrapped by the KEK that was active when
                                     it was made; written once (conditional create, so
                                     concurrent writers agree on one key)
    keys/rewrap/<kek id>/<key id>    the same data key wrapped by a newer KEK
                                     (``bulkorder keys rotate``), written once
    keys/destroyed/<key id>          a tombstone: the key was destroyed, never make it again

An order's key ID is the first 128 bits, in hex, of HMAC-SHA256 under the ``index`` key of
the order's aggregate ID: it names the order's key without showing the order's ID.
Unwrapped keys are cached in memory for the life of the process.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from bulkorder.domain.identity import OrderIdentity, aggregate_id_of_key_order
from bulkorder.storage.blob_store import BlobStore
from bulkorder.storage.encryption.envelope import DATA_KEY_BYTES, DataKey
from bulkorder.storage.encryption.errors import (
    DataKeyDestroyedError,
    DataKeyNotFoundError,
    EnvelopeFormatError,
    KeyNotFoundError,
)
from bulkorder.storage.encryption.keyring import Keyring, WrappedKey
from bulkorder.storage.errors import BlobNotFoundError

DATA_PREFIX = "keys/data/"
REWRAP_PREFIX = "keys/rewrap/"
DESTROYED_PREFIX = "keys/destroyed/"
#: The named deployment keys.
INDEX_KEY_ID = "index"
EVENTS_KEY_ID = "events"
PAYLOADS_KEY_ID = "payloads"
#: Blobs written without naming their order (library callers of ``BatchStore.write``
#: without ``order_id``): sealed, but not erasable order by order.
SHARED_KEY_ID = "shared"
NAMED_KEY_IDS = frozenset({INDEX_KEY_ID, EVENTS_KEY_ID, PAYLOADS_KEY_ID, SHARED_KEY_ID})
#: An order's data key ID: 32 hex digits of a keyed hash (``aggregate_key_id``).
_ORDER_KEY_ID = re.compile(r"[0-9a-f]{32}")
#: A wrapped-key object is a few hundred bytes: anything larger is not one.
MAX_KEY_OBJECT_BYTES = 16 * 1024
_FORMAT = 1


@dataclass
class RewrapReport:
    """What ``rewrap_all`` did: data keys now wrapped by ``kek_id``."""

    kek_id: str
    rewrapped: int = 0
    already: int = 0
    data_keys: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"kek_id": self.kek_id, "rewrapped": self.rewrapped, "already": self.already, "data_keys": self.data_keys}


@dataclass
class KeyUsage:
    """For ``bulkorder keys list``: how many data keys each KEK wraps, and how many only
    it wraps (a KEK that wraps none alone can be removed from the keyring)."""

    wraps: dict[str, int] = field(default_factory=dict)
    only: dict[str, int] = field(default_factory=dict)
    data_keys: int = 0


class DataKeys:
    """The data keys of one deployment: ``blobs`` holds them, ``keyring`` wraps them."""

    def __init__(self, blobs: BlobStore, keyring: Keyring) -> None:
        self.blobs = blobs
        self.keyring = keyring
        self._cache: dict[str, DataKey] = {}
        self._lock = threading.Lock()
        self._index: bytes | None = None
        #: Names orders (``customer/reference``) by their aggregate ID: the deployment's
        #: identity secret, set by whoever builds the process's keys from ``Settings``.
        self.identity: OrderIdentity | None = None

    def __repr__(self) -> str:
        return f"DataKeys({self.blobs.location}, {self.keyring.describe()})"

    # Key IDs.

    def order_key_id(self, order_id: str) -> str:
        """The key ID of ``order_id``'s data key (a keyed hash: the order ID is not in it).

        ``order_id`` is the order's name, the ``v2-<hex>`` of its workflow ID (what the
        payload codec sees) or a 0.x order ID: each maps to the order's aggregate ID, so
        blobs, payloads and events of one order share one key."""
        return self.aggregate_key_id(aggregate_id_of_key_order(order_id, self.identity))

    def aggregate_key_id(self, aggregate_id: uuid.UUID) -> str:
        """The key ID of the order whose aggregate (event stream) ID is ``aggregate_id``."""
        if self._index is None:
            self._index = self.get_or_create(INDEX_KEY_ID).material
        return hmac.new(self._index, b"order " + aggregate_id.bytes, hashlib.sha256).hexdigest()[:32]

    # Getting keys.

    def cached(self, key_id: str) -> DataKey | None:
        """The data key if this process has it unwrapped already (no I/O), else ``None``."""
        return self._cache.get(key_id)

    def cached_for_order(self, order_id: str) -> DataKey | None:
        """Like :meth:`cached`, for ``order_id``'s key (no I/O: ``None`` if anything is missing)."""
        if self._index is None:
            return None
        return self._cache.get(self.order_key_id(order_id))

    def for_order(self, order_id: str) -> DataKey:
        """``order_id``'s data key, made on first use; :class:`DataKeyDestroyedError` if erased."""
        return self.get_or_create(self.order_key_id(order_id))

    def get(self, key_id: str) -> DataKey:
        """The data key ``key_id``, unwrapped.

        Raises :class:`DataKeyDestroyedError` / :class:`DataKeyNotFoundError` if it is
        gone, :class:`KeyNotFoundError` if no KEK of the keyring wraps it,
        :class:`DecryptionError` if its wrapping was altered. Each names the key ID.
        """
        cached = self._cache.get(key_id)
        if cached is not None:
            return cached
        if key_id not in NAMED_KEY_IDS and not _ORDER_KEY_ID.fullmatch(key_id):
            # Not a key ID bulkorder makes (a forged envelope or payload metadata): never a
            # path to look up in the store.
            raise DataKeyNotFoundError(f"data key {key_id[:80]!r} is not a key ID bulkorder makes", key_id[:80])
        wrapped = self._read_wrapped(DATA_PREFIX + key_id, key_id)
        if wrapped is None:
            if self.blobs.exists(DESTROYED_PREFIX + key_id):
                raise DataKeyDestroyedError(
                    f"data key {key_id} was destroyed (the order was erased): its data is unreadable for good", key_id
                )
            raise DataKeyNotFoundError(f"data key {key_id} not found in {self.blobs.location}", key_id)
        try:
            material = self.keyring.unwrap(wrapped, key_id)
        except KeyNotFoundError as missing:
            material = self._from_rewraps(key_id, missing)
        return self._remember(DataKey(key_id, material))

    def get_or_create(self, key_id: str) -> DataKey:
        try:
            return self.get(key_id)
        except DataKeyDestroyedError:
            raise
        except DataKeyNotFoundError:
            pass
        material = os.urandom(DATA_KEY_BYTES)
        if self.blobs.put(DATA_PREFIX + key_id, _key_object(key_id, self.keyring.wrap(material, key_id))):
            return self._remember(DataKey(key_id, material))
        return self.get(key_id)  # another writer made it first: its key is the one

    def _remember(self, key: DataKey) -> DataKey:
        with self._lock:
            return self._cache.setdefault(key.key_id, key)

    def _from_rewraps(self, key_id: str, missing: KeyNotFoundError) -> bytes:
        for kek_id in self.keyring.key_ids():
            wrapped = self._read_wrapped(f"{REWRAP_PREFIX}{kek_id}/{key_id}", key_id)
            if wrapped is not None:
                return self.keyring.unwrap(wrapped, key_id)
        raise missing

    def _read_wrapped(self, object_key: str, key_id: str) -> WrappedKey | None:
        try:
            data = self.blobs.get(object_key, max_size=MAX_KEY_OBJECT_BYTES)
        except BlobNotFoundError:
            return None
        return _parse_key_object(data, key_id, object_key)

    # Rotation.

    def rewrap_all(self) -> RewrapReport:
        """Wrap every data key with the keyring's active KEK too (no data is rewritten;
        the older wrappings stay, so processes that do not hold the new KEK yet still
        read). Idempotent: run it again after a failure."""
        active = self.keyring.active_id
        report = RewrapReport(active)
        for object_key in list(self.blobs.iter_keys(DATA_PREFIX)):
            key_id = object_key[len(DATA_PREFIX) :]
            report.data_keys += 1
            genesis = self._read_wrapped(object_key, key_id)
            if genesis is None:
                continue  # destroyed meanwhile
            if genesis.kek_id == active:
                report.already += 1
                continue
            key = self.get(key_id)
            if self.blobs.put(f"{REWRAP_PREFIX}{active}/{key_id}", _key_object(key_id, self.keyring.wrap(key.material, key_id))):
                report.rewrapped += 1
            else:
                report.already += 1
        return report

    def usage(self) -> KeyUsage:
        wrapped_by: dict[str, set[str]] = {}
        for object_key in self.blobs.iter_keys(DATA_PREFIX):
            key_id = object_key[len(DATA_PREFIX) :]
            genesis = self._read_wrapped(object_key, key_id)
            if genesis is not None:
                wrapped_by.setdefault(key_id, set()).add(genesis.kek_id)
        for object_key in self.blobs.iter_keys(REWRAP_PREFIX):
            kek_id, _, key_id = object_key[len(REWRAP_PREFIX) :].partition("/")
            if key_id in wrapped_by:
                wrapped_by[key_id].add(kek_id)
        usage = KeyUsage(data_keys=len(wrapped_by))
        for keks in wrapped_by.values():
            for kek_id in keks:
                usage.wraps[kek_id] = usage.wraps.get(kek_id, 0) + 1
            if len(keks) == 1:
                (only,) = keks
                usage.only[only] = usage.only.get(only, 0) + 1
        return usage

    # Crypto-shredding.

    def destroy_order_key(self, order_id: str) -> str:
        """Destroy ``order_id``'s data key for good (crypto-shredding); returns its key ID.

        Writes a tombstone first (so no writer makes a new key for the order), then
        deletes the wrapped key and its rewraps under every KEK of the keyring. From then
        on, reading anything sealed with it (the order's batches, report, claim-check
        payloads of its workflows, the personal fields of its events) raises
        :class:`DataKeyDestroyedError` naming the key ID, in this process at once. Other
        processes forget it when they restart: the key is cached in memory by whoever
        used it, so an operator erasing an order restarts long-lived workers, or accepts
        that they may read it until then. Idempotent.
        """
        key_id = self.order_key_id(order_id)
        self.destroy(key_id)
        return key_id

    def destroy(self, key_id: str) -> None:
        if key_id in NAMED_KEY_IDS:
            raise ValueError(f"refusing to destroy the deployment key {key_id!r}")
        stamp = json.dumps({"format": _FORMAT, "destroyed_at": datetime.now(timezone.utc).isoformat()}).encode()
        self.blobs.put(DESTROYED_PREFIX + key_id, stamp)
        for kek_id in self.keyring.key_ids():
            self.blobs.delete(f"{REWRAP_PREFIX}{kek_id}/{key_id}")
        self.blobs.delete(DATA_PREFIX + key_id)
        with self._lock:
            self._cache.pop(key_id, None)

    def is_destroyed(self, key_id: str) -> bool:
        return self.blobs.exists(DESTROYED_PREFIX + key_id)


def _key_object(key_id: str, wrapped: WrappedKey) -> bytes:
    return json.dumps({"format": _FORMAT, "data_key_id": key_id, **wrapped.to_json()}, sort_keys=True).encode()


def _parse_key_object(data: bytes, key_id: str, where: str) -> WrappedKey:
    import base64
    import binascii

    try:
        body = json.loads(data)
        if body.get("format") != _FORMAT or body.get("data_key_id") != key_id:
            raise ValueError("wrong format or data key ID")
        kek_id, wrapped = body["kek_id"], base64.b64decode(body["wrapped"], validate=True)
        if not isinstance(kek_id, str) or not kek_id:
            raise ValueError("no KEK ID")
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise EnvelopeFormatError(f"wrapped data key {where} is malformed: {exc}", key_id) from None
    return WrappedKey(kek_id, wrapped)
