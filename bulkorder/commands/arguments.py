"""Argument types shared by the commands (argparse reports a bad value with exit 2)."""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

from bulkorder.commands.output import positive_int
from bulkorder.domain.identity import OrderName

Handler = Callable[[argparse.Namespace, Any], Awaitable[int]]

__all__ = [
    "ORDER_HELP", "add_order_argument", "add_processes_argument", "decode_in_processes", "duration", "named_order",
    "non_negative_int", "port_number", "positive_int", "positive_seconds", "reason_text", "usable_cores",
]

#: How every command that takes an order names it.
ORDER_HELP = "the order's name: CUSTOMER/REFERENCE, as `bulkorder show` prints it (e.g. acme/PO-1001)"


def add_order_argument(parser: argparse.ArgumentParser) -> None:
    """The ``ORDER`` argument (``args.order_id``): checked and normalised (the customer
    NFC) by :func:`named_order` before the command runs, so a bad name is reported like
    every other bad input (``bulkorder CMD: error: ...``, exit 2)."""
    parser.add_argument("order_id", metavar="ORDER", help=ORDER_HELP)


def add_processes_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """``--processes`` / ``--no-processes`` (``args.processes``: ``None`` when neither is
    given; :func:`decode_in_processes` then decides)."""
    parser.add_argument("--processes", action=argparse.BooleanOptionalAction, default=None, help=help)


def decode_in_processes(choice: bool | None, fmt: str) -> bool:
    """Whether items are decoded in worker processes. Unset, Parquet is, where this
    process may run on more than one core: its worker processes now cost no more CPU per
    item than the one decoding thread, and each core adds ~250,000 items/s
    (docs/benchmarks.md); NDJSON and CSV are fast enough in threads."""
    if choice is not None:
        return choice
    # The worker processes are forked (Linux: fork is safe there and keeps the store's keys).
    forks = sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods()
    return fmt == "parquet" and forks and usable_cores() > 1


#: cgroup v2's CPU quota of this process's group: "<quota> <period>" or "max <period>".
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The cores this process may run on: its CPU affinity, bounded by a cgroup v2 CPU
    quota (a container limited to one CPU on a large host gets one)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(quota) // max(1, int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota to read: the affinity stands
    return cores


def named_order(handler: Handler) -> Handler:
    """``handler`` with ``args.order_id`` checked and normalised to the order's name."""

    @functools.wraps(handler)
    async def run(args: argparse.Namespace, settings: Any) -> int:
        args.order_id = str(OrderName.parse(args.order_id))
        return await handler(args, settings)

    return run


def non_negative_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than zero")
    return value


def port_number(text: str) -> int:
    """A TCP port, 0 to 65535 (0: the system picks a free one)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is not between 0 and 65535")
    return port


_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
#: Longest duration accepted (a week): a longer wait is a typo, not a plan.
MAX_DURATION_SECONDS = 7 * 24 * 3600.0


def duration(text: str) -> float:
    """A duration in seconds: ``90``, ``90s``, ``1.5m``, ``10m``, ``2h`` (more than zero, at
    most a week)."""
    stripped = text.strip().lower()
    unit = stripped[-1:] if stripped[-1:] in ("s", "m", "h") else ""
    number = stripped[: len(stripped) - len(unit)]
    try:
        value = float(number) * _DURATION_UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (for example 90s, 10m, 2h)") from None
    if not 0 < value <= MAX_DURATION_SECONDS:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than zero and at most a week")
    return value


def reason_text(text: str) -> str:
    """A cancel or retry reason: at most 1,000 characters (it is recorded)."""
    from bulkorder.workflows.client import MAX_REASON_CHARS

    if len(text) > MAX_REASON_CHARS:
        raise argparse.ArgumentTypeError(f"a reason may hold at most {MAX_REASON_CHARS:,} characters, got {len(text):,}")
    return text
