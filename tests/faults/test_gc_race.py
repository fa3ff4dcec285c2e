"""Garbage collection racing an import, with no grace period at all: nothing in flight is
lost, and the orphans do go.

``bulkorder gc``'s sweep runs in a loop with ``grace=0`` while an import (signals, a batch
per write lease), continue-as-new (small history limits) and fulfilment run. Before the
import, an earlier attempt stored the same file's batches for the same order and never
referenced them (sealed with the order's key, batches are the same bytes only within one
order): every one is an orphan with exactly the bytes the new import writes, and a thread
keeps putting them back while the sweeps delete them, so the sweeps race the import for
the same keys all along (the content-addressed case the gc run fence covers).
Garbage planted before and during the import must be deleted, or the test proves nothing.

``make test`` runs it at 20,000 items; ``BULKORDER_FAULT_SCALE=full`` (``make faults``) at
the issue's 200,000.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from bulkorder.data_lifecycle import collect_garbage
from bulkorder.domain.sample_items import generate_items
from bulkorder.importer.importer import ImportOptions, import_file
from bulkorder.storage.gc import SweepReport
from bulkorder.storage.leases import read_leases
from bulkorder.workflows.messages import OrderLimits
from tests.faults.harness import SCALE
from tests.fixtures.orders import OrderStack

ITEMS = 200_000 if SCALE.name == "full" else 20_000
BATCH_ITEMS = 1_000 if SCALE.name == "full" else 500


@pytest.fixture
def order_limits() -> OrderLimits:
    # Small runs: the import continues-as-new several times while gc sweeps.
    return OrderLimits(max_history_events=60, max_signals=4, max_updates=50, max_refs_per_record=5)


def garbage(stack: OrderStack, start: int, count: int) -> set[str]:
    return {stack.batches.write(list(generate_items(5, start=start + 5 * i))).key for i in range(count)}


async def test_gc_with_no_grace_loses_nothing_of_an_import_in_flight(order_stack: OrderStack, tmp_path: Path) -> None:
    stack = order_stack
    path = tmp_path / "items.ndjson"
    with path.open("w") as out:
        for item in generate_items(ITEMS):
            out.write(json.dumps(item, separators=(",", ":")) + "\n")
    options = ImportOptions(batch_size=BATCH_ITEMS, create_customer="acme", workers=1, upload_threads=4)

    # An earlier, failed import of the same file into the same order: its batches were
    # stored (sealed with the order's key, so the very blobs the import will write) and
    # never referenced: orphans the sweep will go for.
    abandoned = await stack.client.store_items(generate_items(ITEMS), batch_size=BATCH_ITEMS, order_id="acme/race-live")
    reused = {ref.key for ref in abandoned}
    assert reused == set(stack.batches.blobs.iter_keys("batches/"))
    copies = {key: stack.batches.blobs.get(key) for key in reused}
    planted = garbage(stack, 10_000_000, 30)

    sweeps: list[SweepReport] = []
    importing = True

    async def sweep_forever() -> None:
        while importing:
            sweeps.append(await collect_garbage(stack.batches.blobs, stack.orders, stack.client.client, grace=0.0))

    replanted = 0

    def replant() -> None:
        """Another failed import, retried over and over: the orphans keep coming back (until
        the new import leases each: healing its losses would hide them), so the new import
        keeps finding its batches already stored while sweeps delete them."""
        nonlocal replanted
        taken: set[str] = set()  # keys the new import has leased: from then on, its own
        while importing:
            taken |= read_leases(stack.batches.blobs).keys & copies.keys()
            for key, data in copies.items():
                if key not in taken:
                    replanted += stack.batches.blobs.put(key, data)

    sweeper = asyncio.create_task(sweep_forever())
    replanter = asyncio.create_task(asyncio.to_thread(replant))
    started = time.monotonic()
    try:
        summary = await import_file(stack.client, stack.orders, "acme/race-live", path, options)
        planted |= garbage(stack, 20_000_000, 10)  # more garbage while the sweeps go on
        await stack.client.submit("acme/race-live")
        final = await stack.client.wait_closed("acme/race-live")
    finally:
        importing = False
        await sweeper
        await replanter
    last = await collect_garbage(stack.batches.blobs, stack.orders, stack.client.client, grace=0.0)
    sweeps.append(last)

    # Fulfilment read every batch: none missing, none unreadable.
    assert summary.items == ITEMS
    assert final.status == "fulfilled" and final.item_count == ITEMS and final.rejected_items == 0
    assert final.report is not None and final.report.item_count == ITEMS
    runs = (await stack.client.run_histories("acme/race-live"))
    assert len(runs) > 1, "the import should have continued-as-new"
    # Not vacuous: the sweeps ran during the import and deleted the planted garbage.
    assert len(sweeps) >= 3
    left = set(stack.batches.blobs.iter_keys("batches/"))
    assert not planted & left
    assert sum(report.deleted.blobs for report in sweeps) >= len(planted)
    assert reused <= left  # the live order references them all again
    assert replanted > 0
    print(
        f"GC RACE {ITEMS:,} items, {len(reused)} batches reused from orphans ({replanted} replanted), {len(runs)} runs, "
        f"{len(sweeps)} sweeps deleting {sum(r.deleted.blobs for r in sweeps)} blobs in {time.monotonic() - started:.1f}s"
    )
