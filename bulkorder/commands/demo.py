"""``bulkorder demo``: one huge order end to end, on the embedded stack unless configured.

Generates N realistic items and adds them to a new order the way a service does, through
``OrderClient.add_items`` (the writers' compiled path: validated, packed, sealed and
stored in threads, a few batches at a time, refs added as each group is stored), submits
it, waits for fulfillment, and reports what Temporal and the event store hold — history
figures read from Temporal itself, not computed — and where the time went.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Iterator

from bulkorder.commands.output import money, positive_int, print_json
from bulkorder.runtime import Runtime, open_runtime
from bulkorder.settings import Settings
from bulkorder.domain.identity import OrderName
from bulkorder.domain.sample_items import generate_items
from bulkorder.workflows.client import OrderClient

#: Batches stored per ``add_items`` call: their refs are added while the next group is stored.
GROUP_BATCHES = 8
#: How long the demo waits for the event store to record what the workflow accepted.
RECORD_TIMEOUT = 600.0


DEMO_CUSTOMER = "demo-customer"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = sub.add_parser("demo", help="create, grow, submit and fulfill one generated order end to end")
    demo.add_argument("--items", type=positive_int, default=200_000, help="number of generated items (default 200,000)")
    demo.add_argument("--batch-size", type=positive_int, default=5_000, help="items per stored batch (default 5,000)")
    demo.add_argument("--max-history-events", type=positive_int, default=None, help="continue-as-new past this many events per run")
    demo.add_argument(
        "--order-id", default=None, metavar="REFERENCE",
        help="the order's reference; it is named demo-customer/REFERENCE (default: demo-<time>)",
    )
    demo.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    demo.set_defaults(handler=run_demo)


@dataclass
class DemoFigures:
    order_id: str
    items: int
    batches: int
    runs: int
    max_history_events_per_run: int
    max_history_bytes_per_run: int
    event_store_events: int
    fulfilled_items: int
    seconds: float
    items_per_second: float
    status: str
    total: dict[str, int]
    sku_count: int
    #: Seconds per phase: generating items, storing them (validate, pack, seal, write, add
    #: the refs), recording (what the event store still had to record once the last refs
    #: were added), fulfilment (submit to closed).
    phases: dict[str, float] = field(default_factory=dict)


async def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    if args.max_history_events is not None:
        settings = settings.with_limits(max_history_events=args.max_history_events)
    reference = args.order_id or f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(2).hex()}"
    order_id = str(OrderName(DEMO_CUSTOMER, reference))
    say = (lambda *_: None) if args.json else print
    async with open_runtime(settings, embedded=True) as runtime:
        async with runtime.worker():
            figures = await _run(runtime, order_id, args.items, args.batch_size, say)
    if args.json:
        print_json(figures)
    else:
        _print_figures(figures)
    return 0


async def _run(runtime: Runtime, order_id: str, count: int, batch_size: int, say: Any) -> DemoFigures:
    client = runtime.order_client()
    started = time.perf_counter()
    await client.create(order_id)
    say(f"created order {order_id}; adding {count:,} items in batches of {batch_size:,}")
    generating = _Timed(generate_items(count))
    storing_started = time.perf_counter()
    batches = await _add_items(client, order_id, generating, count, batch_size)
    storing = time.perf_counter() - storing_started - generating.seconds
    recording_started = time.perf_counter()
    await _recorded(runtime, order_id, count)
    recording = time.perf_counter() - recording_started
    fulfilling_started = time.perf_counter()
    await client.submit(order_id)
    say("submitted; fulfilling (streaming every item back from the blob store)")
    final = await client.wait_closed(order_id)
    fulfilment = time.perf_counter() - fulfilling_started
    seconds = time.perf_counter() - started
    runs = await client.run_histories(order_id)
    recorded = runtime.orders.summary(order_id)
    return DemoFigures(
        order_id=order_id,
        items=final.item_count,
        batches=batches,
        runs=len(runs),
        max_history_events_per_run=max(run.events for run in runs),
        max_history_bytes_per_run=max(run.bytes for run in runs),
        event_store_events=recorded.version,
        fulfilled_items=final.report.item_count if final.report else 0,
        seconds=round(seconds, 3),
        items_per_second=round(final.item_count / seconds, 1),
        status=final.status,
        total=final.totals,
        sku_count=final.report.sku_count if final.report else 0,
        phases={
            "generating": round(generating.seconds, 3),
            "storing": round(storing, 3),
            "recording": round(recording, 3),
            "fulfilment": round(fulfilment, 3),
        },
    )


class _Timed:
    """An iterator that keeps the time spent producing its items (the generation phase)."""

    def __init__(self, items: Iterator[dict[str, Any]]) -> None:
        self._items = items
        self.seconds = 0.0

    def __iter__(self) -> _Timed:
        return self

    def __next__(self) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return next(self._items)
        finally:
            self.seconds += time.perf_counter() - started


async def _add_items(client: OrderClient, order_id: str, items: _Timed, count: int, batch_size: int) -> int:
    """Add ``items`` as a service would: ``add_items`` group by group, so the workflow
    records one group while the next is stored."""
    group = GROUP_BATCHES * batch_size
    for index in range(-(-count // group)):
        await client.add_items(order_id, islice(items, group), batch_size=batch_size, batch_id_prefix=f"{order_id}-{index:05d}")
    return -(-count // batch_size)


async def _recorded(runtime: Runtime, order_id: str, count: int) -> None:
    """Until the event store holds every item added (the workflow records as it goes)."""
    deadline = time.monotonic() + RECORD_TIMEOUT
    while runtime.orders.summary(order_id).item_count < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"order {order_id}: the event store did not record every item within {RECORD_TIMEOUT:.0f} s")
        await asyncio.sleep(0.05)


def _print_figures(figures: DemoFigures) -> None:
    rows = [
        ("order", figures.order_id),
        ("status", figures.status),
        ("items", f"{figures.items:,} in {figures.batches:,} batches ({figures.sku_count:,} SKUs)"),
        ("total", money(figures.total)),
        ("workflow runs", f"{figures.runs} (continue-as-new {figures.runs - 1} times)"),
        ("largest run", f"{figures.max_history_events_per_run:,} events, {figures.max_history_bytes_per_run:,} bytes of history"),
        ("event store", f"{figures.event_store_events:,} events"),
        ("fulfilled", f"{figures.fulfilled_items:,} items streamed back from the blob store"),
        ("time", f"{figures.seconds:.1f} s ({figures.items_per_second:,.0f} items/s)"),
        ("where it went", ", ".join(f"{name} {seconds:.1f} s" for name, seconds in figures.phases.items())),
    ]
    for name, value in rows:
        print(f"{name:<14} {value}")
