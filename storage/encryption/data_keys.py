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
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from bulkorder.domain.identity import OrderIdentity, aggregate_id_of_key_order
from bulkorder.storage.blob_store import BlobStore
from bulkorder.storage.encryption.envelope import DATA_KEY_BYTES, DataKey
from bulkorder.storage.encryption.errors import DataKeyNotFoundError, KeyNotFoundError
from bulkorder.storage.encryption.key_objects import (  # noqa: F401 - the key IDs are this module's API too
    EVENTS_KEY_ID,
    FORMAT,
    INDEX_KEY_ID,
    MAX_KEY_OBJECT_BYTES,
    NAMED_KEY_IDS,
    PAYLOADS_KEY_ID,
    SHARED_KEY_ID,
    check_key_id,
    destroyed_error,
    key_object,
    parse_key_object,
)
from bulkorder.storage.encryption.keyring import Keyring, WrappedKey
from bulkorder.storage.errors import BlobNotFoundError

DATA_PREFIX = "keys/data/"
REWRAP_PREFIX = "keys/rewrap/"
DESTROYED_PREFIX = "keys/destroyed/"


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

    def create_for_order(self, order_id: str) -> DataKey:
        """``order_id``'s data key, for a caller that expects the order to be new (the
        create path): made in one round trip when it is (see :meth:`get_or_create`)."""
        return self.get_or_create(self.order_key_id(order_id), expect_new=True)

    def get(self, key_id: str) -> DataKey:
        """The data key ``key_id``, unwrapped.

        Raises :class:`DataKeyDestroyedError` / :class:`DataKeyNotFoundError` if it is
        gone, :class:`KeyNotFoundError` if no KEK of the keyring wraps it,
        :class:`DecryptionError` if its wrapping was altered. Each names the key ID.
        """
        cached = self._cache.get(key_id)
        if cached is not None:
            return cached
        check_key_id(key_id)
        key = self._read(key_id)
        if key is not None:
            return key
        if self.blobs.exists(DESTROYED_PREFIX + key_id):
            raise destroyed_error(key_id)
        raise DataKeyNotFoundError(f"data key {key_id} not found in {self.blobs.location}", key_id)

    def get_or_create(self, key_id: str, *, expect_new: bool = False) -> DataKey:
        """The data key ``key_id``, made if it does not exist yet (exactly one key per ID,
        whoever races); :class:`DataKeyDestroyedError` if it was destroyed.

        By default the key is read first (one GET when it exists, the common case of a
        process's first use); when it is missing, :meth:`_create` makes it in one more
        round trip. ``expect_new`` (the create path of a new order) skips the read:
        ``_create`` alone, one round trip when the key is new, two when it exists after
        all (a retried create: the conditional put is refused, then the key is read).
        """
        cached = self._cache.get(key_id)
        if cached is not None:
            return cached
        check_key_id(key_id)
        if not expect_new:
            key = self._read(key_id)
            if key is not None:
                return key
        return self._create(key_id)

    def _read(self, key_id: str) -> DataKey | None:
        """The stored key ``key_id`` unwrapped and cached (one GET; more only when its
        KEK is not in the keyring and a rewrap is looked for), ``None`` if not stored."""
        wrapped = self._read_wrapped(DATA_PREFIX + key_id, key_id)
        if wrapped is None:
            return None
        try:
            material = self.keyring.unwrap(wrapped, key_id)
        except KeyNotFoundError as missing:
            material = self._from_rewraps(key_id, missing)
        return self._remember(DataKey(key_id, material))

    def _create(self, key_id: str) -> DataKey:
        """Make the data key ``key_id`` unless it exists or was destroyed: a conditional
        put (``If-None-Match: *``) of a new wrapped key and the HEAD of its tombstone, sent
        at once, so one round trip (the longer of the two) when the key is new.

        - put written, no tombstone: the new key is the order's.
        - put refused (the key exists: another writer won, or a retried create), no
          tombstone: the stored key is read (a GET, its wrapping verified by unwrapping)
          and used. Should it have vanished meanwhile, an erasure deleted it: ``get``
          finds the tombstone and raises.
        - a tombstone, whatever the put did: the order was erased. The data key object is
          deleted (ours if the put was written; else one an erasure is deleting anyway,
          or one a past race left beside its tombstone: a data key beside a tombstone is
          never valid), and :class:`DataKeyDestroyedError` is raised. Nothing is left.
        - the HEAD failed (a store error) after the put was written: the key stays (it
          may be in use already by a writer that lost to it) and the error is raised; a
          retry's put is refused and its HEAD asked again, so no key is used unchecked.

        Interleavings with an erasure (:meth:`destroy`: put the tombstone, delete the
        rewraps, delete the data key, each request after the previous one's answer):

        - the erasure is over before our two requests are answered: the HEAD sees the
          tombstone: refused, our key (if written) deleted.
        - the erasure starts after both were answered: our key (new or read) is an
          ordinary key in use, destroyed with the rest by the erasure.
        - overlapping: if the HEAD is answered after the tombstone was written, refused
          as above. If it was answered before, our put was either answered before the
          erasure's delete of the data key (refused if an order's key was stored, as it
          is for any order that was created; or written: then that delete removes it),
          or after it: only then does a new key stay beside the tombstone. That needs the
          put to reach the store later than the HEAD by the erasure's two or more round
          trips (it is sent at the same moment; a retried put, after a backoff, could),
          for an order that an operator is erasing while a create of it is repeated (the
          order is closed: the create changes nothing). What it leaves is a key with
          new random material: the erased data stays unreadable (sealed with the
          destroyed key), and the event store refuses every change to an erased order.
          The next ``create_for_order`` of the order deletes it (it sees the
          tombstone), and so does running ``bulkorder erase`` again. The sequential
          order this replaced (GET, HEAD, put) had the same window, a full round trip
          wide. Closing it for good would take a tombstone written *at* the data key's
          own path (the conditional put would then be the one point of decision): a
          change of the store's format, not made.
        """
        object_key = DATA_PREFIX + key_id
        tombstone = _Concurrently(self.blobs.exists, DESTROYED_PREFIX + key_id)
        try:
            material = os.urandom(DATA_KEY_BYTES)
            written = self.blobs.put(object_key, key_object(key_id, self.keyring.wrap(material, key_id)))
        except BaseException:
            tombstone.join()
            raise
        if tombstone.result():
            self.blobs.delete(object_key)
            raise destroyed_error(key_id)
        if written:
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
        return parse_key_object(data, key_id, object_key)

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
            if self.blobs.put(f"{REWRAP_PREFIX}{active}/{key_id}", key_object(key_id, self.keyring.wrap(key.material, key_id))):
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
        stamp = json.dumps({"format": FORMAT, "destroyed_at": datetime.now(timezone.utc).isoformat()}).encode()
        self.blobs.put(DESTROYED_PREFIX + key_id, stamp)
        for kek_id in self.keyring.key_ids():
            self.blobs.delete(f"{REWRAP_PREFIX}{kek_id}/{key_id}")
        self.blobs.delete(DATA_PREFIX + key_id)
        with self._lock:
            self._cache.pop(key_id, None)

    def isdestroyed_error(self, key_id: str) -> bool:
        return self.blobs.exists(DESTROYED_PREFIX + key_id)


class _Concurrently:
    """``function(*args)`` run in a thread of its own, started at once: a request sent
    beside the caller's own. A fresh thread per call, not a pool: a pool's threads would
    not survive a fork (importers fork encoding processes), and this runs once per new
    key per process."""

    def __init__(self, function: Callable[..., bool], *args: Any) -> None:
        self._function, self._args = function, args
        self._value: bool | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bulkorder-data-key", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._function(*self._args)
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc

    def join(self) -> None:
        self._thread.join()

    def result(self) -> bool:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value
