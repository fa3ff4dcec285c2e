"""Seals: only the deployment's writer can mint refs whose counters are believed."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from bulkorder.domain.refs import BatchRef, batch_key
from bulkorder.domain.seal import RefSealer, SealKeyError, key_id


def ref(**changes: object) -> BatchRef:
    sha = hashlib.sha256(b"batch").hexdigest()
    base = BatchRef(batch_id="b-1", key=batch_key(sha), sha256=sha, size=100, item_count=2, quantity=4, totals={"EUR": 400})
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_sealed_ref_verifies_and_any_changed_field_does_not() -> None:
    sealer = RefSealer(b"s" * 32)
    sealed = sealer.seal(ref())
    assert sealed.seal.startswith(f"hs256:{sealer.current_key_id}:")
    assert sealer.check(sealed) is None
    for change in ({"quantity": 2**62}, {"totals": {"EUR": 1_620_100}}, {"item_count": 3}, {"batch_id": "b-2"},
                   {"size": 101}, {"sha256": "0" * 64}, {"key": batch_key("0" * 64)}):
        assert sealer.check(dataclasses.replace(sealed, **change)) == "the ref's seal does not match its fields"


def test_unsealed_foreign_and_malformed_seals_are_named() -> None:
    sealer = RefSealer(b"s" * 32)
    other = RefSealer(b"o" * 32)
    assert sealer.check(ref()) == "the ref is not sealed"
    assert sealer.check(other.seal(ref())) == f"the ref is sealed with an unknown key {other.current_key_id!r}"
    assert sealer.check(ref(seal="md5:x")) == "the ref's seal is not of a known form"
    assert sealer.check(ref(seal=f"hs256:{sealer.current_key_id}:{'0' * 64}")) == "the ref's seal does not match its fields"


def test_rotation_keeps_previous_seals_valid_and_names_keys_not_secrets() -> None:
    old = RefSealer(b"old-secret-16byt")
    rotated = RefSealer(b"new-secret-16byt", previous=[b"old-secret-16byt"])
    assert rotated.check(old.seal(ref())) is None
    assert rotated.seal(ref()).seal.split(":")[1] == key_id(b"new-secret-16byt") != old.current_key_id
    assert "secret" not in repr(rotated)


def test_short_secrets_are_refused() -> None:
    with pytest.raises(SealKeyError, match="at least 16 bytes"):
        RefSealer(b"short")


def test_a_seal_made_for_one_order_proves_nothing_in_another() -> None:
    sealer = RefSealer(b"s" * 32)
    for_a = sealer.seal(ref(), "a" * 32)
    assert sealer.check(for_a, "a" * 32) is None
    assert sealer.check(for_a, "b" * 32) == "the ref's seal does not match its fields"
    assert sealer.check(for_a) == "the ref's seal does not match its fields"  # nor in no order
    # A seal of no order in particular (a batch stored with no order named, or sealed
    # before seals had scopes) verifies in any order; the batch's data key then decides.
    unscoped = sealer.seal(ref())
    assert sealer.check(unscoped, "a" * 32) is None and sealer.check(unscoped, "b" * 32) is None
    with pytest.raises(ValueError, match="ASCII key ID"):
        sealer.seal(ref(), "é")
