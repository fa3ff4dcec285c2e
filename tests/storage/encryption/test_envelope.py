"""The envelope: deterministic per key, authenticated header and body, bounded parsing."""

from __future__ import annotations

import os
import pickle

import pytest

from bulkorder.storage.encryption.envelope import (
    PURPOSE_BATCH,
    PURPOSE_REPORT,
    DataKey,
    is_envelope,
    open_sealed,
    read_header,
    seal,
)
from bulkorder.storage.encryption.errors import DecryptionError, EncryptionError, EnvelopeFormatError

KEY = DataKey("0123456789abcdef0123456789abcdef", os.urandom(32))
OTHER = DataKey("fedcba9876543210fedcba9876543210", os.urandom(32))


def test_the_same_plaintext_seals_the_same_under_one_key_and_differently_under_another() -> None:
    text = b"SKU-000042 " * 100
    first, again, other = seal(KEY, PURPOSE_BATCH, text), seal(KEY, PURPOSE_BATCH, text), seal(OTHER, PURPOSE_BATCH, text)
    assert first == again and first != other
    assert b"SKU-000042" not in first and is_envelope(first)
    assert read_header(first, where="x").key_id == KEY.key_id
    assert open_sealed(KEY, first, where="x", purpose=PURPOSE_BATCH) == text
    # Two plaintexts never share a nonce (the nonce is a MAC of the plaintext).
    assert seal(KEY, PURPOSE_BATCH, b"a")[38:50] != seal(KEY, PURPOSE_BATCH, b"b")[38:50]


@pytest.mark.parametrize("position", [0.0, 0.5, 0.99])
def test_a_flipped_byte_anywhere_in_the_body_is_a_decryption_error_naming_the_key(position: float) -> None:
    sealed = bytearray(seal(KEY, PURPOSE_BATCH, b"customer c-1, SKU-1" * 50))
    index = len(sealed) - 1 - int((len(sealed) - 60) * position)
    sealed[index] ^= 0x01
    with pytest.raises(DecryptionError, match=KEY.key_id) as caught:
        open_sealed(KEY, bytes(sealed), where="batch b-1", purpose=PURPOSE_BATCH)
    assert isinstance(caught.value, EncryptionError) and caught.value.key_id == KEY.key_id
    assert "batch b-1" in str(caught.value)


def test_the_header_is_authenticated_a_changed_purpose_or_key_id_is_refused() -> None:
    sealed = seal(KEY, PURPOSE_BATCH, b"x" * 100)
    with pytest.raises(EnvelopeFormatError, match="expected a report"):
        open_sealed(KEY, sealed, where="r", purpose=PURPOSE_REPORT)
    swapped = bytearray(sealed)
    swapped[5] = PURPOSE_REPORT  # the purpose byte, claimed to match
    with pytest.raises(DecryptionError):
        open_sealed(KEY, bytes(swapped), where="r", purpose=PURPOSE_REPORT)
    with pytest.raises(DecryptionError, match=OTHER.key_id):
        open_sealed(OTHER, sealed, where="r", purpose=PURPOSE_BATCH)


@pytest.mark.parametrize(
    "data, problem",
    [
        (b"BKOE", "too short"),
        (b"BKOX\x01\x01\x01a" + bytes(40), "bad magic"),
        (b"BKOE\x09\x01\x01a" + bytes(40), "unknown envelope version"),
        (b"BKOE\x01\x07\x01a" + bytes(40), "unknown envelope purpose"),
        (b"BKOE\x01\x01\x00" + bytes(40), "key ID length"),
        (b"BKOE\x01\x01\xff" + bytes(40), "key ID length"),
        (b"BKOE\x01\x01\x01a" + bytes(10), "truncated"),
        (b"BKOE\x01\x01\x01\x00" + bytes(40), "not printable"),
    ],
)
def test_malformed_headers_are_refused_before_any_decryption(data: bytes, problem: str) -> None:
    with pytest.raises(EnvelopeFormatError, match=problem):
        read_header(data, where="blob k")


def test_a_data_key_pickles_for_the_encoding_processes_and_never_shows_its_material() -> None:
    copy = pickle.loads(pickle.dumps(KEY))
    assert copy.key_id == KEY.key_id and copy.material == KEY.material
    assert seal(copy, PURPOSE_BATCH, b"abc") == seal(KEY, PURPOSE_BATCH, b"abc")
    assert KEY.material.hex() not in repr(KEY) and KEY.material.hex() not in str(KEY)
    with pytest.raises(ValueError):
        DataKey("k", b"short")
