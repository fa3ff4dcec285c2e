"""``events`` and ``replay``: one order's history, and the order as it was at a version or time.

Both read the event store (and ``replay --items-out`` the blob store), never Temporal.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from bulkorder.analysis import Analyst, OrderState, parse_instant
from bulkorder.analysis.item_stream import FORMATS as STREAM_FORMATS
from bulkorder.commands.arguments import add_order_argument, add_processes_argument, decode_in_processes, named_order, positive_int
from bulkorder.commands.output import money, print_json
from bulkorder.commands.progress import Progress
from bulkorder.settings import Settings


ITEM_FORMATS = (*STREAM_FORMATS, "parquet")


def item_format(target: Path, chosen: str | None) -> str:
    if chosen:
        return chosen
    suffix = target.suffix.lower()
    return {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(suffix, "ndjson")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    events = sub.add_parser("events", help="an order's events in order (from the event store; items are not read)")
    add_order_argument(events)
    events.add_argument("--json", action="store_true", help="one JSON object per event (NDJSON)")
    events.set_defaults(handler=named_order(run_events))

    replay = sub.add_parser("replay", help="an order as it was at a version or an instant; optionally its items")
    add_order_argument(replay)
    when = replay.add_mutually_exclusive_group()
    when.add_argument("--version", type=int, metavar="N", help="the order after its Nth event")
    when.add_argument("--at", metavar="TIMESTAMP", help="ISO 8601 instant, e.g. 2024-05-01T12:30:00Z (no offset = UTC)")
    replay.add_argument("--items-out", metavar="FILE", help="also write every item of that state to FILE")
    replay.add_argument(
        "--format", choices=ITEM_FORMATS,
        help="items file format (default: from FILE's suffix: .csv, .parquet, else ndjson); parquet needs "
        "the extra 'analysis' (pyarrow)",
    )
    replay.add_argument("--workers", type=positive_int, default=2, help="batches read in parallel (default 2; parquet without --processes: fetched in parallel, decoded by one thread)")
    add_processes_argument(
        replay, "decode in worker processes, one per batch read in parallel (default: for parquet, where "
        "there are several cores; --no-processes: threads)",
    )
    replay.add_argument("--json", action="store_true", help="print the state as one JSON object")
    replay.set_defaults(handler=named_order(run_replay))


async def run_events(args: argparse.Namespace, settings: Settings) -> int:
    return await asyncio.to_thread(_print_events, args, settings)


def _print_events(args: argparse.Namespace, settings: Settings) -> int:
    with Analyst.from_settings(settings) as analyst:
        records = analyst.events(args.order_id)
        if args.json:
            for record in records:
                print_json(record.to_dict())
            return 0
        print(f"{'version':>7}  {'type':<20}  {'timestamp':<32}  {'batch':<24}  {'items':>9}  {'order items':>12}  detail")
        for record in records:
            print(
                f"{record.version:>7}  {record.type:<20}  {record.timestamp.isoformat():<32}  "
                f"{record.batch_id or '-':<24}  {record.items:>9,}  {record.item_count:>12,}  {record.detail}"
            )
    return 0


async def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    at = parse_instant(args.at) if args.at is not None else None
    return await asyncio.to_thread(_replay, args, settings, at)


def _replay(args: argparse.Namespace, settings: Settings, at: object) -> int:
    with Analyst.from_settings(settings) as analyst:
        state = analyst.state(args.order_id, version=args.version, at=at)  # type: ignore[arg-type]
        if args.items_out:
            analyst.check_items_readable(args.order_id)  # purged or erased: say so, write nothing
            _write_items(analyst, args, state)
    if args.json:
        print_json(state.to_dict())
    else:
        _print_state(state)
    return 0


def _write_items(analyst: Analyst, args: argparse.Namespace, state: OrderState) -> None:
    """Stream to a temporary file beside FILE and rename it at the end: FILE is whole or absent."""
    target = Path(args.items_out)
    fmt = item_format(target, args.format)
    processes = decode_in_processes(args.processes, fmt)
    progress = Progress(f"items of {args.order_id} v{state.version}", state.summary.item_count)
    if fmt == "parquet":
        # Row group by row group, under a temporary name renamed at the end (whole or absent).
        written = analyst.write_items_parquet(
            args.order_id, target, version=state.version, progress=progress.update,
            workers=args.workers, processes=processes,
        )
        progress.finish()
        if written.rows != state.summary.item_count:  # pragma: no cover - each batch is checked against its ref
            raise RuntimeError(f"wrote {written.rows} items, the order has {state.summary.item_count}")
        return
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as out:
            result = analyst.stream_items(
                args.order_id, out, version=state.version, fmt=fmt,
                progress=lambda _batches, items: progress.update(items),
                workers=args.workers, processes=processes,
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    progress.finish()
    if result.items != state.summary.item_count:  # pragma: no cover - each batch is checked against its ref
        raise RuntimeError(f"wrote {result.items} items, the order has {state.summary.item_count}")


def _print_state(state: OrderState) -> None:
    summary = state.summary
    rows = [
        ("order", summary.order_id),
        ("customer", summary.customer_id),
        ("version", f"{state.version} (as of {state.as_of.isoformat()})"),
        ("status", summary.status),
        ("items", f"{summary.item_count:,}"),
        ("batches", f"{summary.batch_count:,}"),
        ("quantity", f"{summary.quantity:,}"),
        ("total", money(summary.totals)),
        ("rejected batches", f"{summary.rejected_batches:,}"),
        ("created", state.created_at.isoformat()),
        ("submitted", state.submitted_at.isoformat() if state.submitted_at else "-"),
        ("closed", state.closed_at.isoformat() if state.closed_at else "-"),
    ]
    if state.cancel_reason:
        rows.append(("cancel reason", state.cancel_reason))
    if state.erased_at is not None:
        rows.append(("erased", f"{state.erased_at.isoformat()} by {state.erased_by}: {state.erasure_reason}"))
    elif state.items_purged_at is not None:
        rows.append(("items purged", state.items_purged_at.isoformat()))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
