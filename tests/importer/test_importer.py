"""import_file end to end on a real Temporal dev server, a folder blob store and SQLite."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from bulkorder.domain.application import Orders
from tests.fixtures.orders import OrderStack
from tests.workflows.helpers import store_generated
from tests.importer.files import Expected, write_csv, write_json_array, write_ndjson
from bulkorder.importer import ImportInputError, ImportOptions, ImportRefusedError, import_file

WRITERS = {"ndjson": write_ndjson, "csv": write_csv, "json": write_json_array}


def new_order_id() -> str:
    return f"c-1/imp-{uuid.uuid4().hex[:12]}"


def event_count(orders: Orders, order_id: str) -> int:
    return len(list(orders.events.get(orders.aggregate_id(order_id))))


def assert_order_holds(orders: Orders, order_id: str, expected: Expected) -> None:
    order = orders.get_order(order_id)
    assert (order.item_count, order.quantity, order.totals) == (expected.items, expected.quantity, expected.totals)


def blob_count(stack: OrderStack) -> int:
    """Batches in the blob store (fulfillment reports live elsewhere)."""
    return sum(1 for _ in stack.batches.blobs.iter_keys(stack.batches.key_prefix + "/"))


@pytest.mark.parametrize("format", ["ndjson", "csv", "json"])
async def test_200000_items_from_each_format_and_a_second_run_records_nothing(
    order_stack: OrderStack, tmp_path: Path, format: str
) -> None:
    path = tmp_path / f"items.{format}"
    expected = WRITERS[format](path, 200_000)
    order_id = new_order_id()
    options = ImportOptions(create_customer="c-1")

    summary = await import_file(order_stack.client, order_stack.orders, order_id, path, options)

    assert (summary.format, summary.items, summary.batches, summary.rejected) == (format, 200_000, 40, 0)
    assert (summary.order_items, summary.order_batches) == (200_000, 40)
    assert_order_holds(order_stack.orders, order_id, expected)
    events = event_count(order_stack.orders, order_id)

    again = await import_file(order_stack.client, order_stack.orders, order_id, path, options)
    assert (again.items, again.batches, again.skipped_batches) == (0, 0, 40)
    assert event_count(order_stack.orders, order_id) == events
    assert_order_holds(order_stack.orders, order_id, expected)


async def test_an_invalid_line_stops_before_its_batch_and_fixing_it_resumes(order_stack: OrderStack, tmp_path: Path) -> None:
    path = tmp_path / "items.ndjson"
    expected = write_ndjson(path, 2_500)
    lines = path.read_text().splitlines(keepends=True)
    good = lines[1233]
    item = json.loads(good)
    item["unit_price"]["currency"] = "euro"
    lines[1233] = json.dumps(item) + "\n"  # line 1234, in the third batch of 500
    path.write_text("".join(lines))
    order_id = new_order_id()
    await order_stack.client.create(order_id)
    options = ImportOptions(batch_size=500)

    with pytest.raises(ImportInputError) as caught:
        await import_file(order_stack.client, order_stack.orders, order_id, path, options)

    assert str(caught.value).startswith(f"{path} line 1234: unit_price.currency: String should match pattern")
    assert str(caught.value).endswith(
        "lines 1-1000 are in the order (1,000 items added now); fix line 1234 and run the same command again to resume"
    )
    assert (caught.value.line, caught.value.field) == (1234, "unit_price.currency")
    order = order_stack.orders.get_order(order_id)
    assert (order.item_count, order.batch_count) == (1_000, 2)  # nothing of the bad batch

    lines[1233] = good
    path.write_text("".join(lines))
    resumed = await import_file(order_stack.client, order_stack.orders, order_id, path, options)
    assert (resumed.items, resumed.skipped_batches, resumed.skipped_lines) == (1_500, 2, 1_000)
    assert_order_holds(order_stack.orders, order_id, expected)


async def test_a_syntax_error_in_a_json_array_records_only_the_batches_before_it(
    order_stack: OrderStack, tmp_path: Path
) -> None:
    path = tmp_path / "items.json"
    write_json_array(path, 1_500)
    lines = path.read_text().splitlines(keepends=True)
    lines[1200] = lines[1200].replace('"sku"', "sku", 1)  # element 1200, on line 1201
    path.write_text("".join(lines))
    order_id = new_order_id()

    with pytest.raises(ImportInputError) as caught:
        await import_file(
            order_stack.client, order_stack.orders, order_id, path, ImportOptions(batch_size=500, create_customer="c-1")
        )

    assert f"{path} line 1201: not valid JSON: Expecting property name" in str(caught.value)
    # Elements 0-999 (lines 2-1001) make the two batches before the broken one.
    assert "lines 1-1001 are in the order (1,000 items added now); fix line 1201" in str(caught.value)
    assert order_stack.orders.get_order(order_id).item_count == 1_000


async def test_unknown_and_closed_orders_are_refused_before_any_upload(order_stack: OrderStack, tmp_path: Path) -> None:
    path = tmp_path / "items.ndjson"
    write_ndjson(path, 100)
    unknown = new_order_id()
    with pytest.raises(ImportRefusedError, match=f"order '{unknown}' does not exist: .* or pass --create"):
        await import_file(order_stack.client, order_stack.orders, unknown, path)
    assert blob_count(order_stack) == 0

    closed = new_order_id()
    await order_stack.client.create(closed, refs=store_generated(order_stack.batches, 10, 10, prefix=closed))
    await order_stack.client.submit(closed)
    blobs = blob_count(order_stack)
    with pytest.raises(ImportRefusedError, match=f"order '{closed}' is (submitted|fulfilled): it takes no more items"):
        await import_file(order_stack.client, order_stack.orders, closed, path)
    await order_stack.client.wait_closed(closed)
    with pytest.raises(ImportRefusedError, match=f"order '{closed}' is fulfilled: it takes no more items"):
        await import_file(order_stack.client, order_stack.orders, closed, path)
    with pytest.raises(ImportInputError, match="create_customer 'someone-else' is not the customer of the order"):
        await import_file(
            order_stack.client, order_stack.orders, closed, path, ImportOptions(create_customer="someone-else")
        )
    assert blob_count(order_stack) == blobs


async def test_create_with_an_invalid_first_batch_creates_no_order(order_stack: OrderStack, tmp_path: Path) -> None:
    path = tmp_path / "items.ndjson"
    path.write_text('{"sku": "A-1", "quantity": 0, "unit_price": {"amount": 1, "currency": "EUR"}, "name": "a"}\n')
    order_id = new_order_id()
    with pytest.raises(ImportInputError) as caught:
        await import_file(order_stack.client, order_stack.orders, order_id, path, ImportOptions(create_customer="c-1"))
    assert str(caught.value) == (
        f"{path} line 1: quantity: Input should be greater than or equal to 1 (got 0) — "
        "nothing was imported; fix line 1 and run the command again"
    )
    assert not order_stack.orders.exists(order_id)


async def test_empty_file_and_wrong_format_record_nothing(order_stack: OrderStack, tmp_path: Path) -> None:
    order_id = new_order_id()
    await order_stack.client.create(order_id)
    version = order_stack.orders.get_order(order_id).version
    empty = tmp_path / "empty.ndjson"
    empty.write_text("")
    with pytest.raises(ImportInputError, match="the file is empty"):
        await import_file(order_stack.client, order_stack.orders, order_id, empty)
    items = tmp_path / "items.ndjson"
    write_ndjson(items, 10)
    with pytest.raises(ImportInputError, match="line 1: not a valid CSV header"):
        await import_file(order_stack.client, order_stack.orders, order_id, items, ImportOptions(format="csv"))
    with pytest.raises(ImportInputError, match="line 1: not a JSON array"):
        await import_file(order_stack.client, order_stack.orders, order_id, items, ImportOptions(format="json"))
    csv_file = tmp_path / "items.csv"
    write_csv(csv_file, 10)
    with pytest.raises(ImportInputError, match="line 1: not valid JSON"):
        await import_file(order_stack.client, order_stack.orders, order_id, csv_file, ImportOptions(format="ndjson"))
    assert order_stack.orders.get_order(order_id).version == version
    assert blob_count(order_stack) == 0


async def test_skip_invalid_lists_each_rejected_line_once_across_runs(order_stack: OrderStack, tmp_path: Path) -> None:
    path = tmp_path / "items.ndjson"
    write_ndjson(path, 1_000)
    lines = path.read_text().splitlines(keepends=True)
    lines[10] = "{not json\n"
    lines[500] = lines[500].replace('"quantity":', '"quantity":-', 1)
    lines[999] = lines[999].replace('"sku":"', '"sku":" ', 1)
    path.write_text("".join(lines))
    expected = Expected()
    for number, line in enumerate(lines):
        if number not in (10, 500, 999):
            expected.add(json.loads(line))
    rejects = tmp_path / "rejects.ndjson"
    order_id = new_order_id()
    options = ImportOptions(batch_size=300, create_customer="c-1", skip_invalid=rejects)

    summary = await import_file(order_stack.client, order_stack.orders, order_id, path, options)
    again = await import_file(order_stack.client, order_stack.orders, order_id, path, options)

    assert (summary.items, summary.rejected) == (997, 3)
    assert (again.items, again.skipped_batches) == (0, 4)
    assert_order_holds(order_stack.orders, order_id, expected)
    entries = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(e["line"], e["field"]) for e in entries] == [(11, ""), (501, "quantity"), (1000, "sku")]
    assert entries[0]["record"] == "{not json" and "not valid JSON" in entries[0]["reason"]
    assert entries[1]["reason"].startswith("Input should be greater than or equal to 1")


async def test_a_file_with_no_valid_item_is_an_error(order_stack: OrderStack, tmp_path: Path) -> None:
    path = tmp_path / "items.ndjson"
    path.write_text("{}\n[]\n")
    order_id = new_order_id()
    options = ImportOptions(create_customer="c-1", skip_invalid=tmp_path / "rejects.ndjson")
    with pytest.raises(ImportInputError, match=r"no valid items to import \(2 lines rejected"):
        await import_file(order_stack.client, order_stack.orders, order_id, path, options)
    assert not order_stack.orders.exists(order_id)


async def test_resuming_with_another_batch_size_is_refused(order_stack: OrderStack, tmp_path: Path) -> None:
    path = tmp_path / "items.ndjson"
    write_ndjson(path, 1_000)
    order_id = new_order_id()
    await import_file(
        order_stack.client, order_stack.orders, order_id, path, ImportOptions(batch_size=400, create_customer="c-1")
    )
    with pytest.raises(ImportInputError, match="with --batch-size 400: run it again with --batch-size 400"):
        await import_file(order_stack.client, order_stack.orders, order_id, path, ImportOptions(batch_size=300))
    assert order_stack.orders.get_order(order_id).item_count == 1_000


async def test_acknowledged_updates_instead_of_signals(order_stack: OrderStack, tmp_path: Path) -> None:
    path = tmp_path / "items.ndjson"
    expected = write_ndjson(path, 3_000)
    order_id = new_order_id()
    await order_stack.client.create(order_id)
    summary = await import_file(
        order_stack.client, order_stack.orders, order_id, path, ImportOptions(batch_size=250, acknowledge=True)
    )
    assert (summary.items, summary.batches) == (3_000, 12)
    assert_order_holds(order_stack.orders, order_id, expected)


async def test_one_encoder_pool_serves_file_after_file_and_stays_up(order_stack: OrderStack, tmp_path: Path) -> None:
    """A service importing many files keeps one EncoderPool: every import uses its
    processes (none started per file), and the pool is the caller's to stop."""
    from bulkorder.importer import EncoderPool

    pool = EncoderPool(2)
    try:
        pids = [process.pid for process in pool._processes]
        for index in range(2):
            path = tmp_path / f"items-{index}.ndjson"
            expected = write_ndjson(path, 3_000, start=index * 3_000)
            order_id = new_order_id()
            options = ImportOptions(create_customer="c-1", batch_size=1_000, workers=7)  # workers: the pool's
            summary = await import_file(order_stack.client, order_stack.orders, order_id, path, options, encoders=pool)
            assert (summary.items, summary.batches) == (3_000, 3)
            assert_order_holds(order_stack.orders, order_id, expected)
        assert pool.size == 2
        assert [process.pid for process in pool._processes] == pids
        assert all(process.poll() is None for process in pool._processes)  # still running: not stopped by an import
    finally:
        pool.shutdown()
    assert all(process.poll() is not None for process in pool._processes)
