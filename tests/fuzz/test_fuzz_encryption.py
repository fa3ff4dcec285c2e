"""Fuzz the encryption layer: envelopes and encrypted payloads, mutated or forged.

Whatever bytes a sealed blob, an encrypted Temporal payload or its key-ID metadata hold,
opening them either restores exactly what was sealed or raises one of the encryption
layer's typed errors (``EncryptionError`` and its subclasses: a bad header, a key that
does not exist, a body that does not authenticate), naming the key ID. No other
exception, and nothing decompressed before the body authenticated.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from temporalio.api.common.v1 import Payload

from bulkorder.storage.encryption.data_keys import DataKeys
from bulkorder.storage.encryption.envelope import PURPOSE_BATCH, DataKey, open_sealed, read_header, seal
from bulkorder.storage.encryption.errors import EncryptionError
from bulkorder.storage.encryption.payloads import ENCRYPTED_ENCODING, KEY_ID_METADATA, EncryptionCodec
from tests.storage.encryption.helpers import folder_keys

KEY = DataKey("0123456789abcdef0123456789abcdef", bytes(range(32)))


@st.composite
def mutated(draw: st.DrawFn, sealed: bytes) -> bytes:
    data = bytearray(sealed)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "header"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        else:  # a forged header byte: version, purpose, key-ID length
            index = draw(st.integers(4, 7))
            if index < len(data):
                data[index] = draw(st.integers(0, 255))
    return bytes(data)


SEALED = seal(KEY, PURPOSE_BATCH, b"sku SKU-000001 quantity 3" * 20)


@given(mutated(SEALED))
@example(SEALED[:4])
@example(b"BKOE" + bytes([1, 1, 64]) + b"x" * 10)
def test_opening_a_mutated_envelope_raises_only_encryption_errors(data: bytes) -> None:
    try:
        plain = open_sealed(KEY, data, where="fuzzed blob", purpose=PURPOSE_BATCH)
    except EncryptionError:
        return
    assert plain == b"sku SKU-000001 quantity 3" * 20  # only the unaltered envelope opens


@given(st.binary(max_size=200))
def test_reading_any_header_raises_only_encryption_errors(data: bytes) -> None:
    try:
        header = read_header(b"BKOE" + data, where="fuzzed header")
    except EncryptionError:
        return
    assert 1 <= len(header.key_id) <= 64


@pytest.fixture(scope="module")
def keys() -> Iterator[DataKeys]:
    with tempfile.TemporaryDirectory() as root:
        yield folder_keys(Path(root))


@given(
    st.binary(max_size=600),
    st.one_of(st.none(), st.binary(max_size=80), st.sampled_from([b"payloads", b"index", b"../etc", b"UPPER"])),
)
def test_decoding_a_forged_encrypted_payload_raises_only_encryption_errors(
    keys: DataKeys, body: bytes, key_id: bytes | None
) -> None:
    sealed = asyncio.run(EncryptionCodec(lambda: keys).encode([Payload(metadata={"encoding": b"binary/plain"}, data=os.urandom(8))]))[0]
    forged = Payload(
        metadata={"encoding": ENCRYPTED_ENCODING, KEY_ID_METADATA: sealed.metadata[KEY_ID_METADATA] if key_id is None else key_id},
        data=body if body else sealed.data,
    )
    try:
        [decoded] = asyncio.run(EncryptionCodec(lambda: keys).decode([forged]))
    except EncryptionError:
        return
    assert isinstance(decoded, Payload)
