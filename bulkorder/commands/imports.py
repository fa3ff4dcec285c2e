"""``bulkorder import``: a file of items (NDJSON, CSV or a JSON array) into one order.

While the import waits for its batches to be recorded, a recording step that keeps
failing is shown on stderr. ``--timeout`` bounds the whole import: when it passes, the
import stops (running it again resumes), prints the order's state and exits 3.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TextIO

from temporalio.service import RPCError

from bulkorder.commands.arguments import duration
from bulkorder.commands.output import print_json
from bulkorder.commands.waiting import TIMED_OUT
from bulkorder.metrics import IMPORT_BATCHES, IMPORT_ITEMS, IMPORT_REJECTED_LINES, IMPORT_SECONDS, write_metrics_file
from bulkorder.tracing import span
from bulkorder.runtime import Runtime, open_runtime
from bulkorder.settings import Settings
from bulkorder.domain.errors import OrderNotFoundError
from bulkorder.domain.identifiers import check_customer_id, check_order_id
from bulkorder.workflows.client import OrderClient
from bulkorder.workflows.pending import OrderProgress, safe_error_text
from bulkorder.importer import FORMATS, ImportOptions, ImportSummary, import_file
from bulkorder.importer.progress import PlainLines, ProgressView, TerminalBar


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "import",
        help="import a file of items into an order: streamed, parallel, resumable",
        description=(
            "Import every item of FILE into the order ORDER_ID. Running the same command again "
            "after a crash or an error resumes: batches already in the order are skipped."
        ),
    )
    parser.add_argument("order_id", metavar="ORDER_ID")
    parser.add_argument("file", metavar="FILE", help="NDJSON (one item per line), CSV, or a JSON array")
    parser.add_argument("--format", choices=FORMATS, help="the file's format (default: from its name and content)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N", help="items per batch (default 5000)")
    parser.add_argument("--create", action="store_true", help="create the order if it does not exist")
    parser.add_argument("--customer", metavar="C", help="customer of the order (with --create)")
    parser.add_argument(
        "--skip-invalid", metavar="REJECTS", help="write refused lines with their reasons to REJECTS and go on"
    )
    parser.add_argument(
        "--acknowledge", action="store_true", help="send refs as updates the workflow acknowledges (default: signals)"
    )
    parser.add_argument(
        "--max-line-bytes",
        type=int,
        default=None,
        metavar="N",
        help="longest line, CSV row or JSON element accepted (default BULKORDER_MAX_LINE_BYTES, 1 MiB)",
    )
    parser.add_argument("--workers", type=int, default=0, metavar="N", help="encoding processes (default: one per CPU)")
    parser.add_argument(
        "--timeout", type=duration, metavar="DURATION",
        help="give up after DURATION in all (90s, 10m, 2h): exit 3 with the order's state; run again to resume",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    parser.add_argument(
        "--metrics-out", metavar="FILE",
        help="write the import's figures to FILE in Prometheus text (items, batches, blob store requests; "
        "for node_exporter's textfile collector or a pushgateway), also when it fails",
    )
    parser.set_defaults(handler=run_import)


def _options(args: argparse.Namespace, settings: Settings) -> ImportOptions:
    if args.create and not args.customer:
        raise argparse.ArgumentTypeError("--create needs --customer C")
    if args.customer and not args.create:
        raise argparse.ArgumentTypeError("--customer is only used with --create")
    if args.customer:
        check_customer_id(args.customer)
    if args.workers < 0:
        raise argparse.ArgumentTypeError(f"--workers must be 0 (one per CPU) or more, got {args.workers}")
    if args.max_line_bytes is not None and args.max_line_bytes < 1:
        raise argparse.ArgumentTypeError(f"--max-line-bytes must be at least 1, got {args.max_line_bytes}")
    return ImportOptions(
        max_line_bytes=settings.max_line_bytes if args.max_line_bytes is None else args.max_line_bytes,
        format=args.format,
        batch_size=settings.batch_size if args.batch_size is None else args.batch_size,
        create_customer=args.customer if args.create else None,
        skip_invalid=args.skip_invalid,
        acknowledge=args.acknowledge,
        workers=args.workers,
    )


async def run_import(args: argparse.Namespace, settings: Settings) -> int:
    check_order_id(args.order_id)
    try:
        options = _options(args, settings)
    except argparse.ArgumentTypeError as exc:
        print(f"bulkorder import: error: {exc}", file=sys.stderr)
        return 2
    view: ProgressView | None = None
    if not args.quiet:
        view = TerminalBar(sys.stderr) if sys.stderr.isatty() else PlainLines(sys.stderr)
    try:
        return await _import(args, settings, options, view)
    finally:
        if args.metrics_out:
            write_metrics_file(args.metrics_out)


async def _import(args: argparse.Namespace, settings: Settings, options: ImportOptions, view: ProgressView | None) -> int:
    async with open_runtime(settings) as runtime:
        client = runtime.order_client()
        watcher = asyncio.create_task(_show_failing_steps(client, args.order_id, sys.stderr))
        importing = asyncio.create_task(
            import_traced(client, runtime, args.order_id, args.file, options, view)
        )
        try:
            done, _ = await asyncio.wait({importing}, timeout=args.timeout)
            if not done:
                # Not wait_for: a call cut short may end in its own error rather than
                # CancelledError (temporalio raises WorkflowUpdateRPCTimeoutOrCancelledError).
                importing.cancel()
                await asyncio.gather(importing, return_exceptions=True)
                return await _timed_out(runtime, args)
            summary = importing.result()
        finally:
            importing.cancel()
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
    record_import(summary)
    if args.json:
        print_json(summary)
    else:
        _print(summary)
    return 0


async def import_traced(
    client: OrderClient, runtime: Runtime, order_id: str, file: str, options: ImportOptions, view: ProgressView | None
) -> ImportSummary:
    # The root of the import's trace (when tracing is on): the importer's stages, the
    # signals or updates it sends, the workflow and the record activity are its children.
    with span("bulkorder import", order_id=order_id, file=str(file)):
        return await import_file(client, runtime.orders, order_id, file, options, view=view)


def record_import(summary: ImportSummary) -> None:
    """The import's figures in the process's metrics (``--metrics-out``)."""
    IMPORT_ITEMS.set(summary.items)
    IMPORT_BATCHES.set(summary.batches)
    IMPORT_REJECTED_LINES.set(summary.rejected)
    IMPORT_SECONDS.set(summary.seconds)


def _print(summary: ImportSummary) -> None:
    if summary.items or not summary.skipped_batches:
        print(
            f"imported {summary.items:,} items in {summary.batches:,} batches into order {summary.order_id} "
            f"in {summary.seconds:,.1f} s ({summary.items_per_second:,.0f} items/s)"
        )
    if summary.skipped_batches:
        what = "nothing new: all" if not summary.items else "skipped"
        print(f"{what} {summary.skipped_batches:,} batches ({summary.skipped_lines:,} lines) already in the order")
    if summary.rejected:
        print(f"rejected {summary.rejected:,} lines (see the --skip-invalid file)")
    print(f"order {summary.order_id} now holds {summary.order_items:,} items in {summary.order_batches:,} batches")


#: Seconds between two looks at the order's pending steps while an import runs.
WATCH_SECONDS = 2.0


async def _show_failing_steps(client: OrderClient, order_id: str, stream: TextIO) -> None:
    """Print a step of the order that keeps failing (recording, while the import waits
    for its batches), once when it appears or its error changes."""
    shown: tuple[str, str | None, str | None] | None = None
    while True:
        await asyncio.sleep(WATCH_SECONDS)
        try:
            step = await client.failing_step(order_id)
        except (OrderNotFoundError, RPCError):
            continue  # not created yet, or Temporal briefly away: the import reports that
        key = None if step is None else (step.step, step.error_type, step.last_error)
        if step is not None and key != shown:
            print(f"\norder {order_id}: {step.describe()}", file=stream, flush=True)
        shown = key


async def _timed_out(runtime: Runtime, args: argparse.Namespace) -> int:
    progress: OrderProgress | None = None
    try:
        progress = await asyncio.wait_for(runtime.order_client().progress(args.order_id), 15)
    except (asyncio.TimeoutError, OrderNotFoundError, RPCError):
        pass
    if progress is not None and progress.summary is not None:
        summary = progress.summary
        state = (
            f"status {summary.status}, {summary.item_count:,} items in {summary.batch_count:,} batches"
            + (f" ({summary.pending_batches:,} not yet recorded)" if summary.pending_batches else "")
        )
    elif progress is not None:
        state = f"workflow {progress.workflow_status}" + (f": {safe_error_text(progress.error)}" if progress.error else "")
    else:
        state = "not created, or Temporal did not answer"
    step = None if progress is None else progress.failing_step()
    if args.json:
        print_json({
            "order_id": args.order_id,
            "timed_out": True,
            "summary": None if progress is None else progress.summary,
            "failing_step": None if step is None else step.to_json(),
        })
    message = f"timed out after {args.timeout:,.0f} s: order {args.order_id}: {state}"
    if step is not None:
        message += f"; {step.describe()}"
    print(f"bulkorder import: error: {message}; running the same import again resumes", file=sys.stderr)
    return TIMED_OUT
