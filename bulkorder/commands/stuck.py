"""``bulkorder stuck``: every open order that waits on something that will not come by itself.

Listed: orders with a step that keeps failing (retried at least ``--min-attempts`` times
in all), orders whose creation is not recorded because its record (a local activity, seen
only as the workflow task it keeps open) has been retried that long, orders whose fulfillment failed and that wait for ``bulkorder retry`` or
``bulkorder cancel``, and orders whose workflow answers no query (no worker running?).
Only the configured task queue's orders are searched.

Exit codes: 0 no order is stuck, 1 some are (they are listed), 2 bad input.
"""

from __future__ import annotations

import argparse
import sys

from bulkorder.commands.output import positive_int, print_json
from bulkorder.runtime import open_runtime
from bulkorder.settings import Settings
from bulkorder.workflows.stuck import CONCURRENCY, StuckOrder, find_stuck, open_orders_query

SOME_STUCK = 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    stuck = sub.add_parser(
        "stuck",
        help="list every open order whose steps (its creation included) keep failing or whose fulfillment failed (exit 1 if any)",
    )
    stuck.add_argument(
        "--min-attempts", type=_attempts, default=2, metavar="N",
        help="list a failing step once it is on attempt N or later (default 2: failed once, retrying)",
    )
    stuck.add_argument(
        "--concurrency", type=positive_int, default=CONCURRENCY, metavar="N",
        help=f"orders looked at at once (default {CONCURRENCY})",
    )
    stuck.add_argument("--json", action="store_true", help="one JSON object: {count, orders: [...]}")
    stuck.set_defaults(handler=run_stuck)


def _attempts(text: str) -> int:
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: must be 2 or more (attempt 1 has not failed yet)")
    return value


async def run_stuck(args: argparse.Namespace, settings: Settings) -> int:
    try:
        open_orders_query(settings.task_queue)
    except ValueError as exc:  # a task queue name no visibility query can carry
        print(f"bulkorder stuck: error: {exc}", file=sys.stderr)
        return 2
    async with open_runtime(settings) as runtime:
        orders = await find_stuck(runtime.order_client(), min_attempts=args.min_attempts, concurrency=args.concurrency)
    if args.json:
        print_json({"count": len(orders), "orders": [order.to_json() for order in orders]})
    else:
        _print_table(orders, settings.task_queue)
    return SOME_STUCK if orders else 0


def _print_table(orders: list[StuckOrder], task_queue: str) -> None:
    if not orders:
        print(f"no stuck orders on task queue {task_queue}")
        return
    header = ("ORDER", "STATUS", "WHY", "STEP", "ATTEMPT", "LAST ATTEMPT", "NEXT RETRY", "ERROR")
    rows = [header]
    for order in orders:
        step = order.failing_step
        data = step.to_json() if step is not None else {}
        creation = order.failing_creation
        if creation is not None:
            rows.append((
                order.order_id, order.status or "?", order.why, "creation", f"{creation.attempt_at_least}+",
                "-", "-", order.detail,
            ))
            continue
        rows.append((
            order.order_id,
            order.status or "?",
            order.why,
            step.step if step else "-",
            str(step.attempt) if step else "-",
            data.get("last_attempt_at") or "-",
            data.get("next_retry_at") or "-",
            (step.last_error or "") if step else order.detail,
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    print(f"{len(orders):,} stuck order(s) on task queue {task_queue}")
