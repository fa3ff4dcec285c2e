"""Argument types shared by the commands (argparse reports a bad value with exit 2)."""

from __future__ import annotations

import argparse

from bulkorder.commands.output import positive_int
from bulkorder.domain.identifiers import InvalidIdentifierError
from bulkorder.domain.identity import OrderName

__all__ = [
    "ORDER_HELP", "duration", "non_negative_int", "order_name_text", "port_number", "positive_int", "positive_seconds",
    "reason_text",
]

#: How every command that takes an order names it.
ORDER_HELP = "the order's name: CUSTOMER/REFERENCE, as `bulkorder show` prints it (e.g. acme/PO-1001)"


def order_name_text(text: str) -> str:
    """An order's name (``customer/reference``), normalised (the customer NFC)."""
    try:
        return str(OrderName.parse(text))
    except InvalidIdentifierError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
