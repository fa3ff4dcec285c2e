"""Fuzzing BatchRef validation, the seal and the workflow's limit check: whatever a hostile
Temporal client sends, only ``InvalidRefError`` comes out of ``check_batch_ref``, a ref
that passes has counters every column holds, and no changed field keeps a valid seal."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkorder.domain.limits import MAX_ORDER_QUANTITY, MAX_ORDER_TOTAL
from bulkorder.domain.refs import BatchRef, InvalidRefError, batch_key, check_batch_ref
from bulkorder.domain.seal import RefSealer
from bulkorder.workflows.order_rules import ClaimedCounters

SEALER = RefSealer(b"fuzzing the ref seal, 32 bytes..")
SHA = hashlib.sha256(b"fuzz").hexdigest()
GOOD = BatchRef(batch_id="b-1", key=batch_key(SHA), sha256=SHA, size=100, item_count=3, quantity=7, totals={"EUR": 700})

ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=80),
    st.binary(max_size=20), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
KEYS = st.one_of(
    st.just(batch_key(SHA)), st.just(f"batches/1d/v{SHA}"), st.just(f"batches/{SHA[:2]}/{SHA}\n"),
    st.just(f"x/batches/{SHA[:2]}/{SHA}"), st.just(f"batches/../{SHA}"), st.text(max_size=100),
)
INTS = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([0, 1, 2**62, 2**63, MAX_ORDER_TOTAL, MAX_ORDER_TOTAL + 1]))


@st.composite
def hostile_refs(draw: Any) -> Any:
    fields = dataclasses.asdict(GOOD)
    for name in draw(st.sets(st.sampled_from(sorted(fields)))):
        if name == "key":
            fields[name] = draw(KEYS)
        elif name in ("size", "item_count", "quantity", "format_version"):
            fields[name] = draw(st.one_of(INTS, ANY_VALUE))
        elif name == "totals":
            fields[name] = draw(st.one_of(ANY_VALUE, st.dictionaries(st.sampled_from(["EUR", "USD", "eur", "E\nUR", ""]), INTS, max_size=4)))
        else:
            fields[name] = draw(ANY_VALUE)
    return BatchRef(**fields)


@given(ref=hostile_refs())
def test_check_batch_ref_raises_only_invalid_ref_error_and_passes_only_bounded_refs(ref: BatchRef) -> None:
    try:
        checked = check_batch_ref(ref)
    except InvalidRefError:
        return
    assert checked.key == batch_key(checked.sha256)
    assert 0 < checked.quantity <= MAX_ORDER_QUANTITY
    assert all(0 <= amount <= MAX_ORDER_TOTAL for amount in checked.totals.values())
    # Whatever passes, the workflow's running counters stay within 64 bits after the check.
    claimed = ClaimedCounters()
    if claimed.over_limit([checked, checked]) is None:
        claimed.add(checked)
        claimed.add(checked)
        assert claimed.quantity < 2**63 and all(v < 2**63 for v in claimed.totals.values())


def _canonical(ref: BatchRef) -> str | None:
    """What the seal covers. Not ``==``: Python holds ``True == 1`` and ``1.0 == 1``, a
    seal does not (fuzzing found the test's own oracle wrong on ``format_version=True``)."""
    try:
        return json.dumps({**dataclasses.asdict(ref), "seal": ""}, sort_keys=True)
    except (TypeError, ValueError):
        return None


@given(ref=hostile_refs())
def test_no_changed_ref_keeps_a_valid_seal(ref: BatchRef) -> None:
    seal = SEALER.seal(GOOD).seal
    changed = dataclasses.replace(ref, seal=seal)
    if _canonical(changed) == _canonical(GOOD):
        assert SEALER.check(changed) is None
    else:
        assert SEALER.check(changed) == "the ref's seal does not match its fields"


def test_a_ref_with_true_for_a_number_is_refused_and_its_seal_does_not_verify() -> None:
    """Regression (found by fuzzing): ``format_version=True`` equals 1 in Python."""
    changed = dataclasses.replace(SEALER.seal(GOOD), format_version=True)
    assert SEALER.check(changed) == "the ref's seal does not match its fields"
    with pytest.raises(InvalidRefError, match="unsupported encoding"):
        check_batch_ref(changed)
