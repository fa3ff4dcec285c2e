"""Order names: customer account + the customer's own reference, and their keyed IDs."""

from __future__ import annotations

import re

import pytest

from bulkorder.domain.identifiers import InvalidIdentifierError, aggregate_id_for
from bulkorder.domain.identity import (
    OrderIdentity,
    OrderName,
    check_customer,
    check_idempotency_key,
    legacy_aggregate_id,
    legacy_workflow_id,
    request_difference,
    request_digest,
)

IDENTITY = OrderIdentity(b"k" * 32)


@pytest.mark.parametrize(
    "text",
    ["acme/PO-1001", "alice@example.com/PO-7", "Müller-GmbH/PO-1", "株式会社/R-1", "user+tag@x.io/a:b.c_d-e",
     "Ελληνικά/1", "a/" + "r" * 128, "c" * 128 + "/r"],
)
def test_names_round_trip(text: str) -> None:
    name = OrderName.parse(text)
    assert str(name) == text and OrderName.parse(str(name)) == name


def test_customer_is_nfc_normalised_so_one_customer_is_never_two() -> None:
    decomposed = "Mu\u0308ller"  # u + combining diaeresis
    assert check_customer(decomposed) == "M\u00fcller"
    assert OrderName.parse(decomposed + "/PO-1") == OrderName("Müller", "PO-1")
    assert IDENTITY.workflow_id(decomposed + "/PO-1") == IDENTITY.workflow_id("Müller/PO-1")


@pytest.mark.parametrize(
    "customer",
    ["", "-lead", ".x", "has space", "tab\tx", "a/b", "zero\u200bwidth", "bidi\u202eevil", "nl\n", "nbsp\u00a0x",
     "ctl\x00", "line\u2028sep", "\u0308mark-first", "emoji😀", "c" * 129, None, 7],
)
def test_ambiguous_or_invisible_customers_are_refused_saying_what_is_allowed(customer: object) -> None:
    with pytest.raises(InvalidIdentifierError, match="customer ID .* is invalid: use 1-128 Unicode letters"):
        check_customer(customer)


@pytest.mark.parametrize("text", ["PO-1", "acme/", "/PO-1", "acme/PO 1", "acme/PO/1x y", "acme/PO-1\n", 5])
def test_malformed_names_are_refused(text: object) -> None:
    with pytest.raises(InvalidIdentifierError, match="order name|customer ID|order reference"):
        OrderName.parse(text)


def test_ids_are_keyed_hashes_that_reveal_nothing() -> None:
    name = OrderName("alice@example.com", "PO-7")
    workflow_id = IDENTITY.workflow_id(name)
    assert re.fullmatch(r"order-v2-[0-9a-f]{32}", workflow_id)
    assert "alice" not in workflow_id and "PO-7" not in workflow_id
    assert IDENTITY.workflow_id(name) == workflow_id  # deterministic: retries find the order
    assert OrderIdentity(b"other key......!" * 2).workflow_id(name) != workflow_id
    assert IDENTITY.workflow_id(OrderName("bob", "PO-7")) != workflow_id
    # The separator keeps "a/bc" and "ab/c" apart.
    assert IDENTITY.aggregate_id("a/bc") != IDENTITY.aggregate_id("ab/c")
    assert "<secret>" in repr(IDENTITY) and "k" * 16 not in repr(IDENTITY)


def test_legacy_ids_are_the_0x_ones() -> None:
    assert legacy_workflow_id("PO-1") == "order-PO-1"
    assert IDENTITY.workflow_id_of_stored("PO-1") == "order-PO-1"
    assert IDENTITY.workflow_id_of_stored("acme/PO-1") == IDENTITY.workflow_id("acme/PO-1")
    assert legacy_aggregate_id("o-1") == aggregate_id_for("o-1")  # what 0.x stored


def test_request_digest_and_difference() -> None:
    name = OrderName("acme", "PO-1")
    one = request_digest(name, [("b1", "h1"), ("b2", "h2")])
    assert one == request_digest(name, [("b2", "h2"), ("b1", "h1")])  # order of batches does not matter
    assert one != request_digest(name, [("b1", "h1"), ("b2", "other")])
    assert one != request_digest(OrderName("acme", "PO-2"), [("b1", "h1"), ("b2", "h2")])
    keyed = request_digest(name, [("b1", "h1")], "key-1")
    assert keyed == request_digest(name, [], "key-1") != request_digest(name, [], "key-2")
    assert request_difference(["b1"], "", ["b1", "b2"], "") == "batches not in the original request: 'b2'"
    assert "idempotency key differs" in request_difference([], "k1", [], "k2")
    assert check_idempotency_key(None) == "" and check_idempotency_key("req-1") == "req-1"
    with pytest.raises(InvalidIdentifierError, match="idempotency key"):
        check_idempotency_key("has space")


def test_one_order_has_one_data_key_whichever_way_it_is_named() -> None:
    # Encryption keys an order by its aggregate ID: writers know its name, the payload
    # codec only its workflow ID ("order-" + "v2-<hex>"), old orders their bare ID.
    from bulkorder.domain.identity import aggregate_id_of_key_order

    name = OrderName("alice@example.com", "PO-7")
    from_workflow = IDENTITY.workflow_id(name).removeprefix("order-")
    assert aggregate_id_of_key_order(from_workflow) == IDENTITY.aggregate_id(name)
    assert aggregate_id_of_key_order(str(name), IDENTITY) == IDENTITY.aggregate_id(name)
    assert aggregate_id_of_key_order("o-1") == legacy_aggregate_id("o-1")
