"""The envelope: how one piece of data is sealed with a data key, and opened again.

Layout (all of it but the ciphertext is the header, authenticated as AES-GCM's
associated data, so no field of it can be changed without failing decryption)::

    magic        4s   b"BKOE"
    version      u8   1
    purpose      u8   what the bytes are (batch, report, payload, event, field)
    key_id_len   u8   length of the key ID, 1-64
    key_id       ...  ASCII: the data key that seals it (an order key ID, or a named key)
    nonce        12s
    ciphertext   ...  AES-256-GCM of the plaintext, with its 16-byte tag

The nonce is synthetic (SIV-style): HMAC-SHA256 of the header and the plaintext under a
nonce key derived from the data key, cut to 96 bits. The same plaintext sealed twice with
the same data key is the same ciphertext (a batch written twice by a retried import is one
blob under one content key), while the same plaintext under two orders' keys differs.
A nonce repeats only for the same plaintext and header, so GCM's nonce-reuse failure
(two different messages under one nonce) cannot happen. The AES key and the nonce key
are derived from the data key with HKDF-SHA256, under different labels.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bulkorder.storage.encryption.errors import DecryptionError, EnvelopeFormatError

MAGIC = b"BKOE"
VERSION = 1
_FIXED = struct.Struct("<4sBBB")
NONCE_BYTES = 12
TAG_BYTES = 16
MAX_KEY_ID_BYTES = 64
DATA_KEY_BYTES = 32

PURPOSE_BATCH = 1
PURPOSE_REPORT = 2
PURPOSE_PAYLOAD = 3
PURPOSE_EVENT = 4
PURPOSE_FIELD = 5
PURPOSES = {PURPOSE_BATCH: "batch", PURPOSE_REPORT: "report", PURPOSE_PAYLOAD: "payload", PURPOSE_EVENT: "event", PURPOSE_FIELD: "field"}


def _derive(material: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"bulkorder " + label).derive(material)


@dataclass(frozen=True, repr=False)
class DataKey:
    """One data key, unwrapped: its ID and the 256-bit secret. Picklable, so the importer's
    encoding processes seal batches themselves; never shown in a repr."""

    key_id: str
    material: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.material) != DATA_KEY_BYTES:
            raise ValueError(f"data key {self.key_id}: {len(self.material)} bytes, expected {DATA_KEY_BYTES}")
        encoded = self.key_id.encode("ascii")
        if not 1 <= len(encoded) <= MAX_KEY_ID_BYTES:
            raise ValueError(f"data key ID {self.key_id!r} must be 1-{MAX_KEY_ID_BYTES} ASCII characters")

    def __repr__(self) -> str:
        return f"DataKey({self.key_id!r})"

    @property
    def _keys(self) -> tuple[AESGCM, bytes]:
        cached = self.__dict__.get("_derived")
        if cached is None:
            cached = (AESGCM(_derive(self.material, b"aes-256-gcm")), _derive(self.material, b"siv nonce"))
            object.__setattr__(self, "_derived", cached)
        return cached

    def __getstate__(self) -> dict[str, object]:
        return {"key_id": self.key_id, "material": self.material}

    def __setstate__(self, state: dict[str, object]) -> None:
        object.__setattr__(self, "key_id", state["key_id"])
        object.__setattr__(self, "material", state["material"])


def header(purpose: int, key_id: str) -> bytes:
    encoded = key_id.encode("ascii")
    return _FIXED.pack(MAGIC, VERSION, purpose, len(encoded)) + encoded


def seal(key: DataKey, purpose: int, plaintext: bytes | memoryview) -> bytes:
    """``plaintext`` sealed with ``key``: deterministic for one key and plaintext."""
    aad = header(purpose, key.key_id)
    aes, nonce_key = key._keys
    mac = hmac.new(nonce_key, aad, hashlib.sha256)
    mac.update(plaintext)
    nonce = mac.digest()[:NONCE_BYTES]
    return aad + nonce + aes.encrypt(nonce, bytes(plaintext), aad)


def is_envelope(data: bytes | memoryview) -> bool:
    return bytes(data[:4]) == MAGIC


@dataclass(frozen=True)
class EnvelopeHeader:
    purpose: int
    key_id: str
    size: int  # bytes up to and including the nonce


def read_header(data: bytes | memoryview, *, where: str) -> EnvelopeHeader:
    """Parse and check an envelope's header (bounded: nothing past it is read)."""
    if len(data) < _FIXED.size:
        raise EnvelopeFormatError(f"{where}: too short for an envelope ({len(data)} bytes)")
    magic, version, purpose, key_id_len = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise EnvelopeFormatError(f"{where}: not an envelope (bad magic {bytes(magic)!r})")
    if version != VERSION:
        raise EnvelopeFormatError(f"{where}: unknown envelope version {version} (this version reads {VERSION})")
    if purpose not in PURPOSES:
        raise EnvelopeFormatError(f"{where}: unknown envelope purpose {purpose}")
    if not 1 <= key_id_len <= MAX_KEY_ID_BYTES:
        raise EnvelopeFormatError(f"{where}: key ID length {key_id_len} out of range 1-{MAX_KEY_ID_BYTES}")
    end = _FIXED.size + key_id_len
    if len(data) < end + NONCE_BYTES + TAG_BYTES:
        raise EnvelopeFormatError(f"{where}: envelope truncated ({len(data)} bytes)")
    raw_id = bytes(data[_FIXED.size : end])
    if not raw_id.isascii() or not all(0x21 <= c < 0x7F for c in raw_id):
        raise EnvelopeFormatError(f"{where}: key ID is not printable ASCII")
    return EnvelopeHeader(purpose, raw_id.decode("ascii"), end + NONCE_BYTES)


def open_sealed(key: DataKey, data: bytes | memoryview, *, where: str, purpose: int) -> bytes:
    """The plaintext of ``data``, sealed with ``key`` for ``purpose``; raises
    :class:`DecryptionError` (naming the key ID and ``where``) if anything was altered."""
    head = read_header(data, where=where)
    if head.key_id != key.key_id:
        raise DecryptionError(f"{where}: sealed with data key {head.key_id}, not {key.key_id}", head.key_id)
    if head.purpose != purpose:
        raise EnvelopeFormatError(
            f"{where}: holds a {PURPOSES[head.purpose]}, expected a {PURPOSES[purpose]}", head.key_id
        )
    view = memoryview(data)
    aad = bytes(view[: head.size - NONCE_BYTES])
    nonce = bytes(view[head.size - NONCE_BYTES : head.size])
    aes, _ = key._keys
    try:
        return aes.decrypt(nonce, bytes(view[head.size :]), aad)
    except InvalidTag:
        raise DecryptionError(
            f"{where}: ciphertext under data key {key.key_id} does not authenticate "
            "(altered, truncated, or sealed with another key)",
            key.key_id,
        ) from None
