"""``bulkorder retry``: run fulfillment again for an order whose fulfillment failed.

When fulfillment fails for good (a batch unreadable, a bug), the order is recorded as
``failed`` and its workflow waits for someone to act: fix the cause, then ``retry`` (the
retry and its reason are recorded, then fulfillment runs again), or ``cancel`` the order.
The workflow refuses a retry of an order in any other status (exit 1).
"""

from __future__ import annotations

import argparse

from bulkorder.commands.arguments import add_order_argument, named_order, reason_text
from bulkorder.commands.orders import add_wait_arguments, wait_and_report
from bulkorder.commands.output import print_summary
from bulkorder.runtime import open_runtime
from bulkorder.settings import Settings
from bulkorder.domain.summary import OrderStatus


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    retry = sub.add_parser(
        "retry",
        help="run fulfillment again for an order whose fulfillment failed (after fixing the cause)",
        description=(
            "Run fulfillment again for ORDER, whose fulfillment failed (status 'failed'). "
            "Fix the cause first (`bulkorder show ORDER` gives the reason). The retry is recorded."
        ),
    )
    add_order_argument(retry)
    retry.add_argument("--reason", type=reason_text, default="retried by user", help="recorded with the retry")
    add_wait_arguments(retry)
    retry.add_argument("--json", action="store_true")
    retry.set_defaults(handler=named_order(run_retry))


async def run_retry(args: argparse.Namespace, settings: Settings) -> int:
    async with open_runtime(settings) as runtime:
        summary = await runtime.order_client().retry_fulfillment(args.order_id, args.reason)
        if args.wait or args.timeout is not None:
            # If the update answered before the order left "failed", that status is the
            # old failure's, not a new one.
            return await wait_and_report(
                "retry", runtime, args, failed_before=summary.status == OrderStatus.FAILED
            )
    print_summary(summary, as_json=args.json)
    return 0
