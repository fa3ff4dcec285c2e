"""Sealing blobs (batches, reports, claim-check payloads) with their order's data key.

:class:`BlobProtection` is what the batch store, the fulfillment report and the
claim-check codec hold: ``seal`` wraps bytes in an envelope
(:mod:`bulkorder.storage.encryption.envelope`) under the data key of the order they
belong to; ``open`` reads the key ID from the envelope's header, fetches that data key
and opens it. Bytes without an envelope are blobs written before encryption (0.1.0
stores, saved fixtures): they are returned as they are, still proven by the sha-256 their
reference carries, which is what makes old stores readable. New writes always seal,
unless ``encrypt=False`` (a setting meant for the encryption-cost benchmark only).
"""

from __future__ import annotations

from bulkorder.storage.encryption.data_keys import SHARED_KEY_ID, DataKeys
from bulkorder.storage.encryption.envelope import DataKey, is_envelope, open_sealed, read_header, seal
from bulkorder.storage.encryption.errors import KeyringError
from bulkorder.storage.errors import ForeignBatchError


class BlobProtection:
    def __init__(self, keys: DataKeys, *, encrypt: bool = True) -> None:
        self.keys = keys
        self.encrypt = encrypt

    def __repr__(self) -> str:
        return f"BlobProtection({self.keys!r}, encrypt={self.encrypt})"

    def key_for(self, order_id: str | None) -> DataKey | None:
        """The data key new blobs of ``order_id`` are sealed with (the shared key when no
        order is named); ``None`` when encryption is off."""
        if not self.encrypt:
            return None
        return self.keys.for_order(order_id) if order_id is not None else self.keys.get_or_create(SHARED_KEY_ID)

    def seal(self, order_id: str | None, purpose: int, data: bytes) -> bytes:
        key = self.key_for(order_id)
        return data if key is None else seal(key, purpose, data)

    def open(self, data: bytes, *, where: str, purpose: int) -> bytes:
        return open_blob(self, data, where=where, purpose=purpose)

    def check_owner(self, data: bytes, order_id: str, *, where: str) -> None:
        """Raise :class:`ForeignBatchError` if ``data`` is sealed with a data key that is
        neither ``order_id``'s nor the shared one. Reads the header only; plaintext (a
        blob of an old store) belongs to no order in particular and passes."""
        if not is_envelope(data):
            return
        head = read_header(data, where=where)
        if head.key_id == SHARED_KEY_ID or head.key_id == self.keys.order_key_id(order_id):
            return
        raise ForeignBatchError(
            f"{where} is sealed with another order's data key ({head.key_id}), not order {order_id!r}'s: "
            "its ref was copied from another order"
        )


def open_blob(protection: BlobProtection | None, data: bytes, *, where: str, purpose: int) -> bytes:
    """``data`` opened if it is an envelope (plaintext of old stores passes as it is)."""
    if not is_envelope(data):
        return data
    head = read_header(data, where=where)
    if protection is None:
        raise KeyringError(f"{where} is sealed with data key {head.key_id}, and no keyring is configured here", head.key_id)
    return open_sealed(protection.keys.get(head.key_id), data, where=where, purpose=purpose)
