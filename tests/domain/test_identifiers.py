from __future__ import annotations

import pytest

from bulkorder.domain.identifiers import (
    InvalidIdentifierError,
    aggregate_id_for,
    check_batch_id,
    check_customer_id,
    check_order_id,
    order_id_from_workflow_id,
    workflow_id_for,
)


@pytest.mark.parametrize("good", ["A", "order-1", "2026.11:batch_7", "x" * 128])
def test_valid_order_ids(good: str) -> None:
    assert check_order_id(good) == good
    assert order_id_from_workflow_id(workflow_id_for(good)) == good


@pytest.mark.parametrize("bad", ["", "-leading", "has space", "../etc", "a/b", "x" * 129, None, 42])
def test_invalid_order_ids_are_refused_with_the_rules(bad: object) -> None:
    with pytest.raises(InvalidIdentifierError, match="order ID .* is invalid: use 1-128 characters"):
        check_order_id(bad)


def test_customer_and_batch_ids() -> None:
    assert check_customer_id("cust-9") == "cust-9"
    assert check_batch_id("order-1/import-abc/000012") == "order-1/import-abc/000012"
    with pytest.raises(InvalidIdentifierError, match="customer ID"):
        check_customer_id("bad customer")
    with pytest.raises(InvalidIdentifierError, match="batch ID"):
        check_batch_id("")


def test_aggregate_id_is_stable_and_distinct() -> None:
    assert aggregate_id_for("o-1") == aggregate_id_for("o-1")
    assert aggregate_id_for("o-1") != aggregate_id_for("o-2")


@pytest.mark.parametrize("value", ["o-nl\n", "o-nl\r\n", "\no-nl", "o-nl\x00", "o-nl\u2028"])
def test_identifiers_are_matched_whole(value: str) -> None:
    for check in (check_order_id, check_customer_id, check_batch_id):
        with pytest.raises(InvalidIdentifierError, match="is invalid"):
            check(value)
    assert check_order_id("o-nl") == "o-nl"
