"""``bulkorder demo``: one huge order end to end, on the embedded stack unless configured.

Generates N realistic items, stores them as batches while adding the refs to a new order,
submits it, waits for fulfillment, and reports what Temporal and the event store hold —
history figures read from Temporal itself, not computed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bulkorder.commands.output import money, positive_int, print_json
from bulkorder.runtime import Runtime, open_runtime
from bulkorder.settings import Settings
from bulkorder.domain.identity import OrderName
from bulkorder.domain.items import validate_item_dicts
from bulkorder.domain.refs import BatchRef
from bulkorder.domain.sample_items import generate_items
from bulkorder.workflows.client import OrderClient


DEMO_CUSTOMER = "demo-customer"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = sub.add_parser("demo", help="create, grow, submit and fulfill one generated order end to end")
    demo.add_argument("--items", type=positive_int, default=200_000, help="number of generated items (default 200,000)")
    demo.add_argument("--batch-size", type=positive_int, default=2_000, help="items per stored batch (default 2,000)")
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
    batches = await _add_generated_items(client, runtime, order_id, count, batch_size)
    await client.submit(order_id)
    say("submitted; fulfilling (streaming every item back from the blob store)")
    final = await client.wait_closed(order_id)
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
    )


async def _add_generated_items(client: OrderClient, runtime: Runtime, order_id: str, count: int, batch_size: int) -> int:
    """Generate, validate and store batches on two threads while earlier refs are sent."""
    batch_count = -(-count // batch_size)

    def make_batch(index: int) -> BatchRef:
        start = index * batch_size
        items = list(generate_items(min(batch_size, count - start), start=start))
        return runtime.batches.write(validate_item_dicts(items, f"batch {index}"), batch_id=f"{order_id}-{index:06d}", order_id=order_id)

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [loop.run_in_executor(pool, make_batch, index) for index in range(batch_count)]
        for future in futures:
            await client.add_batches(order_id, [await future])
    return batch_count


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
    ]
    for name, value in rows:
        print(f"{name:<14} {value}")
