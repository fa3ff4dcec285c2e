from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from bulkorder.domain.refs import BatchRef, InvalidRefError, check_batch_ref, check_batch_refs


def ref(**changes: object) -> BatchRef:
    sha = hashlib.sha256(b"batch").hexdigest()
    base = BatchRef(
        batch_id="order-1-000001", key=f"batches/{sha[:2]}/{sha}", sha256=sha, size=1234,
        item_count=10, quantity=25, totals={"EUR": 10_000},
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_ref_is_small_whatever_its_batch_holds() -> None:
    assert check_batch_ref(ref(item_count=1_000_000, quantity=5_000_000)) is not None
    assert len(json.dumps(ref().to_dict())) < 400
    assert BatchRef.from_dict(ref().to_dict()) == ref()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch_id": "bad id"}, "batch ID"),
        ({"sha256": "XYZ"}, "sha256 must be 64 lower-case hex"),
        ({"key": "batches/../../etc/passwd"}, "not a valid blob key"),
        ({"key": "batches/aa/" + "0" * 64}, "is not the content key of its sha256"),
        # Ends with the hash, but is not the canonical content key: refused (issue 9).
        ({"key": f"batches/1d/v{hashlib.sha256(b'batch').hexdigest()}"}, "is not the content key of its sha256"),
        ({"key": f"tenant/batches/{hashlib.sha256(b'batch').hexdigest()[:2]}/{hashlib.sha256(b'batch').hexdigest()}"},
         "is not the content key"),
        ({"quantity": 2**62}, "quantity must be an integer from 10 to 1000000000000000000"),
        ({"totals": {"EUR": 10**18 + 1}}, r"totals\[EUR\] must be an integer from 0 to 1000000000000000000"),
        ({"totals": {}}, "must name at least one currency"),
        ({"seal": 5}, "seal must be empty or hs256"),
        ({"seal": "hs256:0123456789abcdef:" + "é" * 64}, "seal must be empty or hs256"),
        ({"format_version": True}, "unsupported encoding"),
        ({"format_version": 1.0}, "unsupported encoding"),
        ({"size": 0}, "size must be an integer"),
        ({"item_count": 0}, "item_count must be an integer"),
        ({"quantity": 3}, "quantity must be an integer"),
        ({"totals": {"eur": 1}}, "invalid currency code"),
        ({"totals": {"EUR": -1}}, "must be an integer from 0"),
        ({"encoding": "json"}, "unsupported encoding"),
        ({"format_version": 99}, "unsupported encoding"),
    ],
)
def test_malformed_refs_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRefError, match=message):
        check_batch_ref(ref(**changes))


def test_wrong_fields_in_a_dict_are_refused() -> None:
    with pytest.raises(InvalidRefError, match="wrong fields"):
        BatchRef.from_dict({"batch_id": "x"})


def test_a_list_of_refs_names_the_position_of_the_first_bad_one() -> None:
    good = [ref(batch_id=f"b-{index}") for index in range(3)]
    assert check_batch_refs(iter(good)) == good
    with pytest.raises(InvalidRefError, match=r"^batch ref #2: batch b-bad: sha256 must be"):
        check_batch_refs([*good[:2], ref(batch_id="b-bad", sha256="nope")])


def test_a_key_with_a_trailing_newline_is_refused() -> None:
    sha = hashlib.sha256(b"batch").hexdigest()
    with pytest.raises(InvalidRefError, match="not a valid blob key"):
        check_batch_ref(ref(key=f"batches/{sha[:2]}/{sha}\n"))
