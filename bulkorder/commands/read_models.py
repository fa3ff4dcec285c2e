"""``project`` and ``report``: the order summaries and per-SKU quantities read model."""

from __future__ import annotations

import argparse
import asyncio
import threading

from bulkorder.analysis import Analyst, Report, RunResult
from bulkorder.commands.arguments import non_negative_int, positive_seconds
from bulkorder.commands.interrupts import thread_stop_on_signals
from bulkorder.commands.output import money, print_json
from bulkorder.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    project = sub.add_parser("project", help="bring the analysts' read models up to date with the event log")
    project.add_argument("--follow", action="store_true", help="keep them up to date until Ctrl-C / SIGTERM")
    project.add_argument("--rebuild", action="store_true", help="empty the read models and rebuild them from the start")
    project.add_argument("--interval", type=positive_seconds, default=0.5, help="seconds between polls with --follow")
    project.set_defaults(handler=run_project)

    report = sub.add_parser("report", help="order summaries and per-SKU quantities (as of the last `project`)")
    report.add_argument("--json", action="store_true", help="print one JSON object")
    report.add_argument("--top", type=non_negative_int, default=20, help="SKUs to show, largest first (0 = all)")
    report.set_defaults(handler=run_report)


async def run_project(args: argparse.Namespace, settings: Settings) -> int:
    with thread_stop_on_signals() as stop:
        results = await asyncio.to_thread(_project, args, settings, stop)
    for result in results:
        print(f"{result.projection}: processed {result.processed:,} events, now at position {result.position}")
    return 0


def _project(args: argparse.Namespace, settings: Settings, stop: threading.Event) -> list[RunResult]:
    def progress(result: RunResult) -> None:
        if args.follow:
            print(f"{result.projection}: at position {result.position}", flush=True)

    with Analyst.from_settings(settings) as analyst:
        if args.follow:
            print("following the event log; Ctrl-C stops", flush=True)
        return analyst.project(
            follow=args.follow, stop=stop, progress=progress, interval=args.interval, rebuild=args.rebuild
        )


async def run_report(args: argparse.Namespace, settings: Settings) -> int:
    report = await asyncio.to_thread(_report, args, settings)
    if args.json:
        print_json(
            {
                "position": report.position,
                "log_position": report.log_position,
                "orders": [row.to_dict() for row in report.orders],
                "skus": [sku.__dict__ for sku in report.skus],
                "skipped_batches": {
                    "count": len(report.skipped),
                    "by_order": report.skipped_by_order(),
                    "batches": [entry.to_dict() for entry in report.skipped],
                },
            }
        )
        return 0
    _print_report(report)
    return 0


def _report(args: argparse.Namespace, settings: Settings) -> Report:
    with Analyst.from_settings(settings) as analyst:
        return analyst.report(sku_limit=args.top or None)


def _print_report(report: Report) -> None:
    behind = report.log_position - report.position
    print(f"read model at log position {report.position}" + (f" ({behind} events behind: run `bulkorder project`)" if behind else ""))
    print(f"\n{'order':<24}  {'status':<10}  {'items':>11}  {'batches':>8}  {'total':<28}  created / submitted / fulfilled")
    for row in report.orders:
        times = " / ".join(t.isoformat(timespec="seconds") if t else "-" for t in (row.created_at, row.submitted_at, row.fulfilled_at or row.cancelled_at))
        print(f"{row.order_id:<24}  {row.status:<10}  {row.item_count:>11,}  {row.batch_count:>8,}  {money(row.totals):<28}  {times}")
    print(f"\n{'sku':<24}  {'quantity':>12}  {'lines':>10}  {'orders':>7}   (orders not cancelled)")
    for sku in report.skus:
        print(f"{sku.sku:<24}  {sku.quantity:>12,}  {sku.lines:>10,}  {sku.orders:>7,}")
    if report.skipped:
        by_order = ", ".join(f"{order or '?'}: {count:,}" for order, count in sorted(report.skipped_by_order().items()))
        print(f"\nskipped {len(report.skipped):,} batches the read model could not count ({by_order}):")
        for entry in report.skipped:
            print(f"  {entry.order_id or '?'}  {entry.batch_id}  at position {entry.position}: {entry.reason}")
