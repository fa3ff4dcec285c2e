"""One family of errors: a workflow's refusal is also the domain's class for its reason."""

from __future__ import annotations

import pickle
import uuid

import pytest

import bulkorder
from bulkorder.domain.errors import (
    BulkorderError,
    EmptyOrderError,
    FulfillmentFailedError,
    OrderAlreadyExistsError,
    OrderClosedError,
    OrderConflictError,
    OrderError,
    OrderLimitError,
    OrderNotFoundError,
)
from bulkorder.domain.refs import InvalidRefError
from tests.fixtures.orders import OrderStack
from tests.workflows.helpers import store_generated
from bulkorder.workflows.errors import OrderRefusedError
from bulkorder.workflows.order_rules import FULFILLMENT_FAILED, INVALID_REF, ORDER_CLOSED, ORDER_CONFLICT, ORDER_EXISTS, ORDER_LIMIT
from bulkorder.workflows.outbox import OrderOutbox

REASONS = [
    (ORDER_CLOSED, OrderClosedError),
    ("OrderClosedError", OrderClosedError),
    ("EmptyOrderError", OrderClosedError),
    (ORDER_EXISTS, OrderAlreadyExistsError),
    ("OrderConflictError", OrderConflictError),
    (INVALID_REF, InvalidRefError),
    (ORDER_LIMIT, OrderLimitError),
    (FULFILLMENT_FAILED, FulfillmentFailedError),
    ("OrderNotFoundError", OrderNotFoundError),
]


@pytest.mark.parametrize(("type_", "domain_class"), REASONS)
def test_a_refusal_is_its_reasons_domain_error_and_keeps_type_and_message(type_: str, domain_class: type) -> None:
    refused = OrderRefusedError("order 'o-1': the workflow's words", type=type_, order_id="o-1")
    assert isinstance(refused, OrderRefusedError) and isinstance(refused, domain_class)
    assert isinstance(refused, BulkorderError)
    assert (refused.type, refused.order_id, str(refused)) == (type_, "o-1", "order 'o-1': the workflow's words")
    again = pickle.loads(pickle.dumps(refused))
    assert (type(again), again.type, again.order_id, str(again)) == (type(refused), type_, "o-1", str(refused))


def test_a_refusal_of_another_type_stays_a_plain_refusal() -> None:
    refused = OrderRefusedError("order 'o-1': bad input", type="InvalidOrder", order_id="o-1")
    assert type(refused) is OrderRefusedError
    assert not isinstance(refused, OrderError)
    assert isinstance(refused, BulkorderError)


def test_a_closed_refusal_has_no_status_the_client_cannot_know() -> None:
    refused = OrderRefusedError("order 'o-1' is closed", type=ORDER_CLOSED, order_id="o-1")
    assert isinstance(refused, OrderClosedError) and refused.status is None


def test_an_empty_submit_from_the_outbox_is_a_closed_order_error() -> None:
    empty = EmptyOrderError("o-1")
    assert isinstance(empty, OrderClosedError)
    assert (str(empty), empty.status, empty.order_id) == ("order 'o-1' has no items to submit", "open", "o-1")


def test_every_error_of_the_family_is_exported_by_the_facade() -> None:
    for name in ("BulkorderError", "OrderRefusedError", "OrderClosedError", "OrderAlreadyExistsError",
                 "OrderLimitError", "FulfillmentFailedError", "OrderNotFoundError", "InvalidRefError"):
        assert issubclass(getattr(bulkorder, name), BulkorderError), name


async def test_except_order_closed_error_catches_the_client_and_the_outbox(order_stack: OrderStack) -> None:
    reference = f"t-{uuid.uuid4().hex[:12]}"
    order_id = f"customer-1/{reference}"
    refs = store_generated(order_stack.batches, 300, 100, prefix=reference)
    await order_stack.client.create("customer-1", reference, refs[:1])
    await order_stack.client.submit(order_id)
    await order_stack.client.wait_closed(order_id)

    with pytest.raises(OrderClosedError) as from_client:
        await order_stack.client.add_batches(order_id, refs[1:2])
    assert isinstance(from_client.value, OrderRefusedError) and from_client.value.type == ORDER_CLOSED

    outbox = OrderOutbox(order_stack.orders, order_stack.batches)
    with pytest.raises(OrderClosedError) as from_outbox:
        outbox.add_batches(order_id, refs[1:2])
    assert "cannot add batch" in str(from_outbox.value)
    assert order_stack.orders.summary(order_id).batch_count == 1


async def test_except_order_already_exists_error_catches_the_client_and_the_outbox(order_stack: OrderStack) -> None:
    reference = f"t-{uuid.uuid4().hex[:12]}"
    order_id = f"customer-1/{reference}"
    await order_stack.client.create("customer-1", reference)

    # Another request for the name: a conflict, which is also an OrderAlreadyExistsError.
    with pytest.raises(OrderAlreadyExistsError) as from_client:
        await order_stack.client.create(order_id, idempotency_key="other")
    assert from_client.value.type == ORDER_CONFLICT

    outbox = OrderOutbox(order_stack.orders, order_stack.batches)
    with pytest.raises(OrderAlreadyExistsError, match="already exists with another create request"):
        outbox.create(order_id, idempotency_key="other")
    assert order_stack.orders.summary(order_id).customer_id == "customer-1"
