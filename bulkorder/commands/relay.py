"""``bulkorder relay``: forward DB-first orders from the event store to their workflows."""

from __future__ import annotations

import argparse
import os

from bulkorder.commands.arguments import positive_seconds
from bulkorder.commands.interrupts import stop_on_signals
from bulkorder.commands.output import positive_int, print_json
from bulkorder.runtime import open_runtime
from bulkorder.settings import Settings, SettingsError
from bulkorder.workflows.relay import OrderRelay, crash_at

#: Fault injection for tests only: ``<crash point>[:<nth time>]`` (see bulkorder.workflows.relay).
CRASH_VARIABLE = "BULKORDER_RELAY_CRASH_AT"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    relay = sub.add_parser(
        "relay",
        help="follow the event store and start/signal the workflows of DB-first orders",
        description="Reads the events DB-first services recorded (the outbox) from the event "
        "store's notification log, forwards them to the orders' workflows, and keeps its "
        "position in the same database. Safe to kill and restart at any moment.",
    )
    relay.add_argument("--once", action="store_true", help="relay until caught up, then exit")
    relay.add_argument("--status", action="store_true", help="print the position and lag, then exit")
    relay.add_argument("--name", default="default", help="position name (one per relay deployment)")
    relay.add_argument("--page-size", type=positive_int, default=500, help="events read per page (default 500)")
    relay.add_argument(
        "--poll-interval", type=positive_seconds, default=0.5, help="seconds between polls when caught up (default 0.5)"
    )
    relay.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    relay.set_defaults(handler=run_relay)


async def run_relay(args: argparse.Namespace, settings: Settings) -> int:
    crash_spec = os.environ.get(CRASH_VARIABLE)
    try:
        fault = crash_at(crash_spec) if crash_spec else None
    except ValueError as exc:
        raise SettingsError(f"{CRASH_VARIABLE}={crash_spec!r}: {exc}") from None
    async with open_runtime(settings) as runtime:
        relay = OrderRelay(
            runtime.client,
            runtime.orders,
            task_queue=settings.task_queue,
            limits=settings.limits,
            name=args.name,
            page_size=args.page_size,
            fault=fault,
        )
        if args.status:
            figures = {"name": relay.tracking_name, "position": relay.position(), "lag": relay.lag()}
        else:
            if args.once:
                stats = await relay.drain()
            else:
                print(f"relay {relay.tracking_name} from position {relay.position()}; Ctrl-C stops", flush=True)
                stats = await relay.run(stop_on_signals(), poll_interval=args.poll_interval)
            figures = {"name": relay.tracking_name, **vars(stats)}
    if args.json:
        print_json(figures)
    else:
        print(" ".join(f"{key}={value}" for key, value in figures.items()))
    return 0
