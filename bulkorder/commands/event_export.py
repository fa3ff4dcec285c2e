"""``export``: the whole event log as NDJSON, in notification order, resumable by position;
or, with ``--format parquet --out DIR``, a folder of Parquet parts (events and their items):
one per run, and with ``--follow`` one more per poll that finds new events."""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
from typing import TYPE_CHECKING, BinaryIO

from bulkorder.analysis import Analyst, ExportResult
from bulkorder.commands.arguments import add_processes_argument, decode_in_processes, non_negative_int, positive_seconds
from bulkorder.commands.interrupts import thread_stop_on_signals
from bulkorder.commands.progress import Progress
from bulkorder.settings import Settings

if TYPE_CHECKING:
    from bulkorder.analysis import ParquetExportResult


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    export = sub.add_parser(
        "export",
        help="every event of every order as NDJSON, in log order; prints the last position to resume from",
    )
    export.add_argument("--since", type=non_negative_int, default=0, metavar="POSITION", help="start after this position")
    export.add_argument("--until", type=non_negative_int, default=None, metavar="POSITION", help="stop at this position")
    export.add_argument("--follow", action="store_true", help="keep writing new events until Ctrl-C / SIGTERM (parquet: a new part per poll that finds some)")
    export.add_argument("--interval", type=positive_seconds, default=0.5, help="seconds between polls with --follow")
    export.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output (parquet: a folder)")
    export.add_argument("--append", action="store_true", help="append to FILE (to resume an export with --since)")
    export.add_argument(
        "--format", choices=("ndjson", "parquet"), default="ndjson",
        help="ndjson (default), or parquet: a new part of DIR/events/ and DIR/items/ per run, "
        "resumable with --since (needs the extra 'analysis': pyarrow)",
    )
    export.add_argument(
        "--no-items", dest="items", action="store_false",
        help="with --format parquet: the events only, not the items of their batches",
    )
    add_processes_argument(
        export, "with --format parquet: decode the items in worker processes (the default where there are "
        "several cores; --no-processes: one decoding thread)",
    )
    export.set_defaults(handler=run_export)


async def run_export(args: argparse.Namespace, settings: Settings) -> int:
    if args.until is not None and args.until < args.since:
        print(f"bulkorder export: error: --until {args.until} is before --since {args.since}", file=sys.stderr)
        return 2
    if args.format == "parquet":
        return await _run_parquet_export(args, settings)
    with thread_stop_on_signals() as stop:
        result = await asyncio.to_thread(_export, args, settings, stop)
    where = sys.stdout if args.out else sys.stderr  # stdout may be the export itself
    print(
        f"exported {result.events:,} events; last position {result.last_position} "
        f"(resume with --since {result.last_position})",
        file=where,
    )
    return 0


def _export(args: argparse.Namespace, settings: Settings, stop: threading.Event) -> ExportResult:
    progress = Progress("export", unit="events") if args.out else None
    with Analyst.from_settings(settings) as analyst:
        out: BinaryIO = open(args.out, "ab" if args.append else "wb") if args.out else sys.stdout.buffer
        try:
            result = analyst.export(
                out, since=args.since, until=args.until, follow=args.follow, stop=stop, interval=args.interval,
                on_page=(lambda r: progress.update(r.events)) if progress else None,
            )
        finally:
            if args.out:
                out.close()
    if progress:
        progress.finish()
    return result


async def _run_parquet_export(args: argparse.Namespace, settings: Settings) -> int:
    if not args.out or args.append:
        why = "needs --out DIR" if not args.out else "does not take --append (each run adds a part; resume with --since)"
        print(f"bulkorder export: error: --format parquet {why}", file=sys.stderr)
        return 2
    from bulkorder.analysis.arrow_items import pyarrow

    pyarrow()  # the extra is missing: say so before reading anything
    with thread_stop_on_signals() as stop:
        result = await asyncio.to_thread(_export_parquet, args, settings, stop)
    if result.events == 0:
        print(f"nothing to export after position {args.since}", file=sys.stdout)
        return 0
    if args.follow:
        print(
            f"exported {result.events:,} events and {result.items:,} items in {result.parts:,} part{'' if result.parts == 1 else 's'}; "
            f"last position {result.last_position} (resume with --since {result.last_position})"
        )
        return 0
    print(_part_line(result))
    return 0


def _part_line(part: ParquetExportResult) -> str:
    return (
        f"exported {part.events:,} events and {part.items:,} items to {part.events_file}"
        + (f" and {part.items_file}" if part.items_file else "")
        + f"; last position {part.last_position} (resume with --since {part.last_position})"
    )


def _export_parquet(args: argparse.Namespace, settings: Settings, stop: threading.Event) -> ParquetExportResult:
    progress = Progress("export", unit="events")
    with Analyst.from_settings(settings) as analyst:
        # Following: a new part per poll that finds events, each named as it lands.
        result = analyst.export_parquet(
            args.out, since=args.since, until=args.until, items=args.items,
            on_page=lambda events, _items: progress.update(events),
            follow=args.follow, stop=stop, interval=args.interval,
            processes=decode_in_processes(args.processes, "parquet"),
            on_part=(lambda part: print(_part_line(part), flush=True)) if args.follow else None,
        )
    progress.finish()
    return result
