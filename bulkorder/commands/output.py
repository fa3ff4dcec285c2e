"""How commands print: a short human table, or one JSON object as the last line."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, is_dataclass
from typing import Any

from bulkorder.domain.summary import OrderSummary


def _default(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return str(value)


def print_json(value: Any) -> None:
    """One JSON object on one line (dataclasses, nested too, become objects)."""
    print(json.dumps(value, sort_keys=True, default=_default))


def money(totals: dict[str, int]) -> str:
    if not totals:
        return "-"
    return ", ".join(f"{amount / 100:,.2f} {currency}" for currency, amount in sorted(totals.items()))


def print_summary(summary: OrderSummary, *, as_json: bool, source: str = "") -> None:
    if as_json:
        data = asdict(summary)
        if source:
            data["source"] = source
        print_json(data)
        return
    rows = [
        ("order", summary.order_id),
        ("customer", summary.customer_id),
        ("status", summary.status),
        ("items", f"{summary.item_count:,}"),
        ("batches", f"{summary.batch_count:,}" + (f" ({summary.pending_batches:,} not yet recorded)" if summary.pending_batches else "")),
        ("quantity", f"{summary.quantity:,}"),
        ("total", money(summary.totals)),
        ("rejected batches", f"{summary.rejected_batches:,}"
         + (f" ({summary.rejected_items:,} items not fulfilled)" if summary.rejected_items else "")),
        ("event-store version", str(summary.version)),
    ]
    if summary.report is not None:
        rows.append(("fulfillment report", f"{summary.report.key} ({summary.report.sku_count:,} SKUs)"))
    if source:
        rows.append(("source", source))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def positive_int(text: str) -> int:
    """argparse type for counts: refuses zero, negatives and non-numbers (exit code 2)."""
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than zero")
    return value
