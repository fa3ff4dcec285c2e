"""Every Temporal payload encrypted: Temporal's encryption-codec pattern, with per-order keys.

:class:`EncryptionCodec` seals each payload (small ones and ``BatchRef``s included) whole,
metadata and data, into a payload of encoding :data:`ENCRYPTED_ENCODING` whose metadata
names the data key (``encryption-key-id``); the envelope's header names it again, inside
the authenticated data. Temporal's database, and its UI without the codec server, hold
nothing readable.

Which key: temporalio (≥1.2x) gives a codec the *serialization context* of each call
(``WithSerializationContext``): the workflow ID of the workflow whose input, result,
signal, update, query, memo or activity a payload is. For an order's workflow
(``order-<order ID>``) the payload is sealed with that order's data key, so erasing the
order makes its workflows' payloads, and the claim-check blobs holding them, unreadable;
any other payload (no context, another workflow) uses the deployment's ``payloads`` key.

:class:`ProtectedPayloadCodec` is what the data converter holds: encryption first, then
the claim check (:class:`~bulkorder.storage.claim_check.ClaimCheckCodec`), so a claim-check
blob holds a sealed payload and the reference left in Temporal shows only a key and a
hash. Decoding runs the other way. Payloads without encryption (histories from before,
saved test histories) decode as they are. Payloads over :data:`COMPRESS_OVER_BYTES` are
compressed before sealing (sealed bytes do not compress), decompression bounded as the
claim check bounds it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Callable, Sequence

import zstandard
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ActivitySerializationContext,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

from bulkorder.domain.identifiers import InvalidIdentifierError, order_id_from_workflow_id
from bulkorder.storage.bounded_zstd import decompress_bounded
from bulkorder.storage.claim_check import ClaimCheckCodec
from bulkorder.storage.claim_check_ref import MAX_EXPANSION_RATIO, MAX_ORIGINAL_SIZE
from bulkorder.storage.encryption.data_keys import PAYLOADS_KEY_ID, DataKeys
from bulkorder.storage.encryption.envelope import PURPOSE_PAYLOAD, DataKey, open_sealed, read_header, seal
from bulkorder.storage.encryption.errors import EnvelopeFormatError

ENCRYPTED_ENCODING = b"binary/bulkorder-encrypted"
KEY_ID_METADATA = "encryption-key-id"
#: Payloads over this many bytes are sealed in a thread, off Temporal's event loop.
_INLINE_BYTES = 256 * 1024
#: Payloads over this many bytes are compressed (zstd) before they are sealed.
COMPRESS_OVER_BYTES = 1024
_PLAIN = b"\x00"
_ZSTD = b"\x01"
_local = threading.local()


def _workflow_id(context: SerializationContext | None) -> str | None:
    if isinstance(context, (WorkflowSerializationContext, ActivitySerializationContext)):
        return context.workflow_id
    return None


def order_of_workflow(workflow_id: str | None) -> str | None:
    """The order whose workflow this is, or ``None``."""
    if not workflow_id:
        return None
    try:
        return order_id_from_workflow_id(workflow_id)
    except InvalidIdentifierError:
        return None


class EncryptionCodec(PayloadCodec, WithSerializationContext):
    """Seals every payload; ``keys`` opens the deployment's data keys on first use."""

    def __init__(
        self,
        keys: Callable[[], DataKeys],
        *,
        encrypt: bool = True,
        context: SerializationContext | None = None,
        _opened: list[DataKeys] | None = None,
    ) -> None:
        self._open_keys = keys
        #: The opened data keys, shared with every codec made by ``with_context``.
        self._opened: list[DataKeys] = [] if _opened is None else _opened
        self.encrypt = encrypt
        self.context = context
        self.order_id = order_of_workflow(_workflow_id(context))

    def with_context(self, context: SerializationContext) -> EncryptionCodec:
        return EncryptionCodec(self._open_keys, encrypt=self.encrypt, context=context, _opened=self._opened)

    def _keys(self) -> DataKeys:
        """The deployment's data keys (opening them reads the keyring and may build an S3
        client: the first call runs in a thread, see ``_keys_if_open``)."""
        if not self._opened:
            self._opened.append(self._open_keys())
        return self._opened[0]

    def _keys_if_open(self) -> DataKeys | None:
        return self._opened[0] if self._opened else None

    def _key(self) -> DataKey:
        keys = self._keys()
        return keys.for_order(self.order_id) if self.order_id is not None else keys.get_or_create(PAYLOADS_KEY_ID)

    def _cached_key(self) -> DataKey | None:
        keys = self._keys_if_open()
        if keys is None:
            return None
        return keys.cached_for_order(self.order_id) if self.order_id is not None else keys.cached(PAYLOADS_KEY_ID)

    async def make_new_order_key(self, workflow_id: str) -> None:
        """Make the data key of the order whose workflow ``workflow_id`` is about to be
        created (``DataKeys.create_for_order``: one round trip when it is new), so that
        sealing the create's payloads finds it cached. No-op for another workflow, when
        encryption is off, or when this process has the key already."""
        order_id = order_of_workflow(workflow_id)
        if not self.encrypt or order_id is None:
            return
        keys = self._keys_if_open()
        if keys is not None and keys.cached_for_order(order_id) is not None:
            return
        await asyncio.to_thread(lambda: self._keys().create_for_order(order_id))

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if not self.encrypt or not payloads:
            return list(payloads)
        # Blob I/O (in a thread) on the key's first use in this process only.
        key = self._cached_key() or await asyncio.to_thread(self._key)
        if sum(p.ByteSize() for p in payloads) <= _INLINE_BYTES:
            return [_seal(key, p) for p in payloads]
        return await asyncio.to_thread(lambda: [_seal(key, p) for p in payloads])

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        sealed = [p for p in payloads if p.metadata.get("encoding") == ENCRYPTED_ENCODING]
        if not sealed:
            return list(payloads)
        keys = self._keys_if_open()
        small = sum(len(p.data) for p in sealed) <= _INLINE_BYTES
        if keys is not None and small and all(keys.cached(p.metadata.get(KEY_ID_METADATA, b"").decode("ascii", "replace")) for p in sealed):
            return [self._open(p) for p in payloads]  # no I/O, little CPU: on the loop
        return await asyncio.to_thread(lambda: [self._open(p) for p in payloads])

    def _open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCRYPTED_ENCODING:
            return payload
        named = payload.metadata.get(KEY_ID_METADATA, b"").decode("ascii", "replace")
        where = f"encrypted payload (data key {named})"
        head = read_header(payload.data, where=where)
        if head.key_id != named:
            raise EnvelopeFormatError(f"{where}: its envelope names data key {head.key_id}", head.key_id)
        body = open_sealed(self._keys().get(head.key_id), payload.data, where=where, purpose=PURPOSE_PAYLOAD)
        plain = _unframe(body, where, head.key_id)
        original = Payload()
        try:
            original.ParseFromString(plain)
        except DecodeError as exc:
            raise EnvelopeFormatError(f"{where}: does not hold a payload: {exc}", head.key_id) from None
        return original


def _seal(key: DataKey, payload: Payload) -> Payload:
    if payload.metadata.get("encoding") == ENCRYPTED_ENCODING:
        return payload  # never sealed twice
    raw = payload.SerializeToString(deterministic=True)
    body = _PLAIN + raw
    if len(raw) > COMPRESS_OVER_BYTES:
        # Compressed before sealing (ciphertext does not compress): what the claim check
        # then sees is as small as it would have made it.
        compressed = _compressor().compress(raw)
        if len(compressed) < len(raw) and len(raw) <= MAX_EXPANSION_RATIO * len(compressed):
            body = _ZSTD + compressed
    return Payload(
        metadata={"encoding": ENCRYPTED_ENCODING, KEY_ID_METADATA: key.key_id.encode("ascii")},
        data=seal(key, PURPOSE_PAYLOAD, body),
    )


def _compressor() -> zstandard.ZstdCompressor:
    compressor: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstandard.ZstdCompressor(level=3, write_content_size=True)
    return compressor


def _unframe(body: bytes, where: str, key_id: str) -> bytes:
    flag, rest = body[:1], memoryview(body)[1:]
    if flag == _PLAIN:
        return bytes(rest)
    if flag == _ZSTD:
        # Bounded as the claim check bounds what it restores: the expansion ratio, the most
        # a payload may be.
        limit = min(MAX_ORIGINAL_SIZE, MAX_EXPANSION_RATIO * len(rest))
        return decompress_bounded(rest, limit, where=where, error=lambda m: EnvelopeFormatError(m, key_id))
    raise EnvelopeFormatError(f"{where}: unknown payload framing {flag!r}", key_id)


class ProtectedPayloadCodec(PayloadCodec, WithSerializationContext):
    """Encryption, then the claim check (the data converter's codec)."""

    def __init__(self, encryption: EncryptionCodec, claim_check: ClaimCheckCodec) -> None:
        self.encryption = encryption
        self.claim_check = claim_check

    def with_context(self, context: SerializationContext) -> ProtectedPayloadCodec:
        return ProtectedPayloadCodec(self.encryption.with_context(context), self.claim_check)

    async def make_new_order_key(self, workflow_id: str) -> None:
        await self.encryption.make_new_order_key(workflow_id)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        # Scoped by the workflow, so gc can reclaim an order's payloads after retention.
        workflow_id = _workflow_id(self.encryption.context)
        return await self.claim_check.encode_for(await self.encryption.encode(payloads), workflow_id)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self.encryption.decode(await self.claim_check.decode(payloads))


async def make_new_order_key(codec: PayloadCodec | None, workflow_id: str) -> None:
    """What a client calls before creating an order's workflow: its data converter's
    codec (when it is bulkorder's) makes the new order's data key in one round trip,
    rather than the codec's read-then-make (three) when it seals the create's input."""
    if isinstance(codec, (ProtectedPayloadCodec, EncryptionCodec)):
        await codec.make_new_order_key(workflow_id)
