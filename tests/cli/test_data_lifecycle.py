"""``bulkorder gc``, ``retention`` and ``erase`` as a user runs them: a separate process
sharing the test worker's blob folder, SQLite event store and Temporal dev server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from bulkorder.domain.sample_items import generate_items
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.gc import KEPT_RECORDED
from tests.cli.helpers import cli_env, run_cli, write_ndjson
from tests.fixtures.orders import OrderStack


@pytest.fixture
def env(order_stack: OrderStack, temporal_address: str, tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path, {"TEMPORAL_ADDRESS": temporal_address, "BULKORDER_TASK_QUEUE": order_stack.task_queue})


def batch_keys(batches: BatchStore) -> set[str]:
    return set(batches.blobs.iter_keys("batches/"))


async def fulfilled_order(stack: OrderStack, order_id: str, start: int = 0) -> None:
    """Create, fill and fulfill the order named ``order_id`` (customer/reference)."""
    await stack.client.create(order_id)
    await stack.client.add_items(order_id, generate_items(300, start=start), batch_size=100)
    await stack.client.submit(order_id)
    await stack.client.wait_closed(order_id)


async def test_gc_reports_then_reclaims_orphans_and_keeps_what_orders_hold(env: dict[str, str], order_stack: OrderStack) -> None:
    await fulfilled_order(order_stack, "acme/gc-kept")
    kept = batch_keys(order_stack.batches)
    orphans = {order_stack.batches.write(list(generate_items(10, start=10_000 + 10 * i))).key for i in range(5)}

    dry = await run_cli("gc", "--grace", "0", "--dry-run", "--json", env=env)
    assert dry.code == 0, dry.stderr
    assert dry.json()["dry_run"] is True and dry.json()["deleted"]["blobs"] == 5
    assert batch_keys(order_stack.batches) == kept | orphans

    young = await run_cli("gc", env=env)  # the default grace (24 h) keeps them all
    assert young.code == 0 and "deleted 0 blobs" in young.stdout and "younger than the grace period" in young.stdout

    done = await run_cli("gc", "--grace", "0s", "--json", env=env)
    assert done.code == 0, done.stderr
    report = done.json()
    assert report["deleted"]["blobs"] == 5 and report["kept"][KEPT_RECORDED]["blobs"] == len(kept) + 1  # + report
    assert batch_keys(order_stack.batches) == kept


async def test_retention_purges_closed_orders_only_and_replay_says_so(env: dict[str, str], order_stack: OrderStack, tmp_path: Path) -> None:
    await fulfilled_order(order_stack, "acme/ret-old")
    await order_stack.client.create("acme/ret-open")
    await order_stack.client.add_items("acme/ret-open", generate_items(100, start=50_000), batch_size=100)
    before = batch_keys(order_stack.batches)

    dry = await run_cli("retention", "--closed-before", "0", "--dry-run", "--json", env=env)
    assert dry.code == 0, dry.stderr
    assert dry.json()["purged_orders"] == ["acme/ret-old"] and dry.json()["sweep"]["deleted"]["blobs"] == 4  # 3 + report
    assert batch_keys(order_stack.batches) == before

    purged = await run_cli("retention", "--closed-before", "0", "--status", "fulfilled", "--json", env=env)
    assert purged.code == 0, purged.stderr
    assert purged.json()["purged_orders"] == ["acme/ret-old"]
    remaining = batch_keys(order_stack.batches)
    assert len(remaining) == 1 and remaining < before  # the open order's batch only
    summary = order_stack.orders.summary("acme/ret-old")
    assert summary.item_count == 300 and summary.status == "fulfilled"  # counters stay

    again = await run_cli("retention", "--closed-before", "0", "--json", env=env)
    assert again.json()["purged_orders"] == [] and again.json()["already_purged"] == 1

    shown = await run_cli("replay", "acme/ret-old", env=env)
    assert shown.code == 0 and "items purged" in shown.stdout
    items = await run_cli("replay", "acme/ret-old", "--version", "3", "--items-out", str(tmp_path / "items.ndjson"), env=env)
    assert items.code == 1 and "its items were purged by retention at" in items.stderr
    assert not (tmp_path / "items.ndjson").exists()


async def test_erase_refuses_an_open_order_then_erases_it_once_cancelled(env: dict[str, str], order_stack: OrderStack, tmp_path: Path) -> None:
    order_id = f"acme/erase-{uuid.uuid4().hex[:8]}"
    await order_stack.client.create(order_id)
    await order_stack.client.add_items(order_id, generate_items(200, start=70_000), batch_size=100)
    own = batch_keys(order_stack.batches)

    refused = await run_cli("erase", order_id, "--reason", "GDPR request 7", env=env)
    assert refused.code == 1 and "cancel it first" in refused.stderr
    assert batch_keys(order_stack.batches) == own and "OrderErased" not in _types(order_stack, order_id)

    await order_stack.client.cancel(order_id, "customer asked")
    await order_stack.client.wait_closed(order_id)
    erased = await run_cli("erase", order_id, "--reason", "GDPR request 7", "--by", "dpo@example.com", "--json", env=env)
    assert erased.code == 0, erased.stderr
    result = erased.json()
    assert (result["by"], result["reason"], result["newly_erased"], result["key_destroyed"]) == (
        "dpo@example.com", "GDPR request 7", True, True  # crypto-shredded: its data key is gone
    )
    key_id = order_stack.batches.protection.keys.order_key_id(order_id)  # type: ignore[union-attr]
    assert order_stack.batches.blobs.exists(f"keys/destroyed/{key_id}")
    assert not order_stack.batches.blobs.exists(f"keys/data/{key_id}")
    assert result["sweep"]["deleted"]["blobs"] == 2 and batch_keys(order_stack.batches) == set()

    again = await run_cli("erase", order_id, "--reason", "again", env=env)
    assert again.code == 0 and "was already erased" in again.stdout and "by dpo@example.com" in again.stdout
    events = await run_cli("events", order_id, env=env)
    assert "OrderErased" in events.stdout and "erased by dpo@example.com" in events.stdout
    shown = await run_cli("replay", order_id, env=env)
    assert "erased" in shown.stdout and "GDPR request 7" in shown.stdout
    more = write_ndjson(tmp_path / "more.ndjson", list(generate_items(5)))
    add = await run_cli("add", order_id, str(more), env=env)
    assert add.code == 1  # the order is closed, and erased: nothing more is recorded


def _types(stack: OrderStack, order_id: str) -> list[str]:
    return [type(e).__name__ for e in stack.orders.events.get(stack.orders.aggregate_id(order_id))]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gc", "--grace", "soon"], "is not a duration"),
        (["gc", "--grace=-1h"], "is not a duration"),
        (["retention"], "--closed-before"),
        (["retention", "--closed-before", "30d", "--status", "submitted"], "retention purges only"),
        (["erase", "acme/some-order"], "--reason"),
        (["erase", "acme/some-order", "--reason", ""], "must not be empty"),
        (["erase", "Bad Id!", "--reason", "r"], "order"),
    ],
)
async def test_bad_input_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = await run_cli(*args, env=cli_env(tmp_path))
    assert result.code == 2 and message in result.stderr, result.stderr


async def test_erasing_an_unknown_order_fails_naming_it(env: dict[str, str]) -> None:
    result = await run_cli("erase", "acme/no-such-order", "--reason", "r", env=env)
    assert result.code == 1 and "'acme/no-such-order' does not exist" in result.stderr


async def test_gc_without_temporal_runs_when_no_order_is_open(tmp_path: Path) -> None:
    home = tmp_path / "alone"
    orphan = BatchStore(__import__("bulkorder.storage.folder_store", fromlist=["x"]).FolderBlobStore(home / "blobs")).write(
        list(generate_items(3))
    )
    result = await run_cli("gc", "--grace", "0", "--json", env=cli_env(home))
    assert result.code == 0, result.stderr
    assert result.json()["deleted"]["blobs"] == 1 and not (home / "blobs" / orphan.key).exists()
