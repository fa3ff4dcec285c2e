"""``bulkorder create / add / submit / cancel / show`` against a real dev server, run as a
separate process sharing the test worker's blob folder and SQLite event store."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from bulkorder.domain.sample_items import generate_items
from bulkorder.storage.encryption.envelope import read_header
from tests.cli.helpers import cli_env, run_cli, write_ndjson
from tests.fixtures.orders import OrderStack


@pytest.fixture
def env(order_stack: OrderStack, temporal_address: str, tmp_path: Path) -> dict[str, str]:
    # order_stack keeps its event store at tmp_path/events.sqlite and blobs at
    # tmp_path/blobs: exactly the defaults for BULKORDER_HOME=tmp_path.
    return cli_env(tmp_path, {"TEMPORAL_ADDRESS": temporal_address, "BULKORDER_TASK_QUEUE": order_stack.task_queue})


def new_reference() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


async def test_create_add_submit_show(env: dict[str, str], tmp_path: Path, order_stack: OrderStack) -> None:
    reference = new_reference()
    order_id = f"acme/{reference}"
    first = write_ndjson(tmp_path / "first.ndjson", list(generate_items(3_000)))
    more = tmp_path / "more.json"
    more.write_text(json.dumps(list(generate_items(2_000, start=3_000))))

    created = await run_cli("create", reference, "--customer", "acme", "--items", str(first), "--batch-size", "1000", "--json", env=env)
    assert created.code == 0, created.stderr
    assert created.json()["item_count"] == 3_000 and created.json()["status"] == "open"
    assert created.json()["order_id"] == order_id  # the name every other command takes
    # Its items are the order's own: sealed with its data key, which erasure destroys.
    own_key = order_stack.batches.protection.keys.order_key_id(order_id)
    for ref in order_stack.orders.iter_batch_refs(order_id):
        assert read_header(order_stack.batches.blobs.get(ref.key), where=ref.key).key_id == own_key

    added = await run_cli("add", order_id, str(more), "--json", env=env)
    assert added.code == 0, added.stderr
    assert added.json()["summary"]["item_count"] == 5_000 and added.json()["accepted"] == 1

    shown = await run_cli("show", order_id, "--json", env=env)
    assert shown.code == 0 and shown.json()["source"] == "workflow" and shown.json()["item_count"] == 5_000
    assert shown.json()["failing_step"] is None  # nothing is being retried

    submitted = await run_cli("submit", order_id, "--wait", "--json", env=env)
    assert submitted.code == 0, submitted.stderr
    assert submitted.json()["status"] == "fulfilled" and submitted.json()["report"]["item_count"] == 5_000
    # Progress while waiting: plain lines on stderr (not a terminal), none failing.
    assert f"order {order_id}: " in submitted.stderr and "failing" not in submitted.stderr
    assert all(line.startswith(f"order {order_id}: ") for line in submitted.stderr.splitlines())

    again = await run_cli("submit", order_id, "--wait", "--timeout", "10s", "--json", env=env)
    assert again.code == 0 and again.json()["status"] == "fulfilled"  # a repeat: the current state

    after = await run_cli("show", order_id, env=env)
    assert after.code == 0 and "fulfilled" in after.stdout and "event store" in after.stdout
    assert order_stack.orders.summary(order_id).item_count == 5_000


async def test_invalid_item_names_file_line_and_field_and_records_nothing(env: dict[str, str], tmp_path: Path, order_stack: OrderStack) -> None:
    reference = new_reference()
    order_id = f"acme/{reference}"
    items = list(generate_items(10))
    items[6]["quantity"] = 0
    bad = write_ndjson(tmp_path / "bad.ndjson", items)
    result = await run_cli("create", reference, "--customer", "acme", "--items", str(bad), env=env)
    assert result.code == 2
    assert f"{bad} line 7: quantity: Input should be greater than or equal to 1" in result.stderr
    assert not order_stack.orders.exists(order_id)

    created = await run_cli("create", reference, "--customer", "acme", env=env)
    assert created.code == 0
    (tmp_path / "broken.ndjson").write_text('{"sku": "A"\n')
    result = await run_cli("add", order_id, str(tmp_path / "broken.ndjson"), env=env)
    assert result.code == 2 and "broken.ndjson line 1: not valid JSON" in result.stderr
    assert order_stack.orders.summary(order_id).batch_count == 0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["create", "bad id!", "--customer", "acme"], 2, "order reference 'bad id!' is invalid"),
        (["create", "ok-id", "--customer", "bad customer"], 2, "customer ID 'bad customer' is invalid: use 1-128 Unicode"),
        (["create", "ok-id", "--customer", "zero\u200bwidth"], 2, "no spaces, control, format or invisible"),
        (["create", "ok-id", "--customer", "acme", "--idempotency-key", "a b"], 2, "idempotency key 'a b' is invalid"),
        (["add", "acme/ok-id", "/nonexistent/items.ndjson"], 2, "/nonexistent/items.ndjson: no such file"),
        (["show", "never-created-order"], 2, "order name 'never-created-order' has no customer"),
        (["show", "acme/never-created-order"], 1, "order 'acme/never-created-order' does not exist"),
        (["submit", "acme/never-created-order"], 1, "order 'acme/never-created-order' does not exist"),
    ],
)
async def test_bad_input_and_unknown_orders(env: dict[str, str], args: list[str], code: int, message: str) -> None:
    result = await run_cli(*args, env=env)
    assert result.code == code, result.stderr
    assert message in result.stderr
    assert result.stderr.startswith(f"bulkorder {args[0]}: error:")


async def test_empty_file_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "empty.ndjson").write_text("\n")
    result = await run_cli("create", new_reference(), "--customer", "acme", "--items", str(tmp_path / "empty.ndjson"), env=env)
    assert result.code == 2 and "the file is empty" in result.stderr


async def test_retried_and_conflicting_creates_and_a_closed_order(env: dict[str, str], tmp_path: Path) -> None:
    reference = new_reference()
    order_id = f"acme/{reference}"
    items = write_ndjson(tmp_path / "items.ndjson", list(generate_items(100)))
    create = ["create", reference, "--customer", "acme", "--idempotency-key", "req-1", "--json"]
    first = await run_cli(*create, "--items", str(items), env=env)
    assert first.code == 0, first.stderr
    again = await run_cli(*create, env=env)  # a retry (same key): exit 0 with the order
    assert again.code == 0 and again.json()["order_id"] == order_id and again.json()["item_count"] == 100
    other = await run_cli("create", reference, "--customer", "acme", env=env)
    assert other.code == 1 and "already exists with another create request" in other.stderr
    assert "idempotency key; this request carries none" in other.stderr

    cancelled = await run_cli("cancel", order_id, "--reason", "test", "--json", env=env)
    assert cancelled.code == 0 and cancelled.json()["status"] == "cancelled"
    repeated = await run_cli("cancel", order_id, "--reason", "test", "--json", env=env)
    assert repeated.code == 0 and repeated.json()["status"] == "cancelled"
    late = await run_cli("add", order_id, str(items), env=env)
    assert late.code == 1 and "cancelled" in late.stderr
    after_close = await run_cli(*create, env=env)
    assert after_close.code == 0 and after_close.json()["status"] == "cancelled"


async def test_bad_setting_names_the_variable(env: dict[str, str]) -> None:
    result = await run_cli("show", "acme/x", env={**env, "BULKORDER_BATCH_SIZE": "lots"})
    assert result.code == 2 and "BULKORDER_BATCH_SIZE='lots' is not a whole number" in result.stderr


async def test_without_temporal_the_error_says_what_to_do(tmp_path: Path) -> None:
    result = await run_cli("create", new_reference(), "--customer", "acme", env=cli_env(tmp_path / "empty-home"))
    assert result.code == 1 and "set TEMPORAL_ADDRESS, or run `bulkorder dev`" in result.stderr


async def test_unicode_and_e_mail_customers_round_trip_through_every_command_and_export(
    env: dict[str, str], tmp_path: Path, order_stack: OrderStack
) -> None:
    reference = new_reference()
    customer = "jürgen.müller+orders@example.com"
    order_id = f"{customer}/{reference}"
    decomposed = f"ju\u0308rgen.mu\u0308ller+orders@example.com/{reference}"  # NFD: the same customer
    items = write_ndjson(tmp_path / "items.ndjson", list(generate_items(300)))
    created = await run_cli("create", reference, "--customer", customer, "--items", str(items), "--json", env=env)
    assert created.code == 0, created.stderr
    assert (created.json()["order_id"], created.json()["customer_id"]) == (order_id, customer)
    shown = await run_cli("show", decomposed, env=env)
    assert shown.code == 0 and order_id in shown.stdout
    more = write_ndjson(tmp_path / "more.ndjson", list(generate_items(200, start=300)))
    assert (await run_cli("add", order_id, str(more), env=env)).code == 0
    submitted = await run_cli("submit", order_id, "--wait", "--json", env=env)
    assert submitted.code == 0 and submitted.json()["order_id"] == order_id and submitted.json()["item_count"] == 500
    events = await run_cli("events", order_id, "--json", env=env)
    assert events.code == 0 and json.loads(events.stdout.splitlines()[0])["type"] == "Created"
    replayed = await run_cli("replay", order_id, "--json", env=env)
    assert replayed.code == 0 and json.loads(replayed.stdout)["order_id"] == order_id
    exported = await run_cli("export", "--out", str(tmp_path / "log.ndjson"), env=env)
    assert exported.code == 0, exported.stderr
    lines = [json.loads(line) for line in (tmp_path / "log.ndjson").read_text(encoding="utf-8").splitlines()]
    assert {line["order_id"] for line in lines} == {order_id}
    assert (await run_cli("project", env=env)).code == 0
    report = await run_cli("report", "--json", env=env)
    assert [row["order_id"] for row in report.json()["orders"]] == [order_id]

    # Another customer's order with the same reference, cancelled: only its own name answers.
    other = f"Müller-GmbH/{reference}"
    assert (await run_cli("create", reference, "--customer", "Müller-GmbH", env=env)).code == 0
    cancelled = await run_cli("cancel", other, "--json", env=env)
    assert cancelled.code == 0 and (cancelled.json()["order_id"], cancelled.json()["status"]) == (other, "cancelled")
    assert (await run_cli("show", order_id, "--json", env=env)).json()["status"] == "fulfilled"
