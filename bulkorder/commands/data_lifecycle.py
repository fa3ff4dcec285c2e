"""``bulkorder gc``, ``bulkorder retention`` and ``bulkorder erase``: the end of an order's data.

All three read the blob store, the event store and (to ask open orders' workflows for
their pending refs) Temporal; without a reachable Temporal server they still run when no
order is open, and otherwise stop, deleting nothing (exit 1). ``--json`` prints one JSON
object. docs/data_protection.md says what each deletes and keeps; docs/operations.md how
to run them.
"""

from __future__ import annotations

import argparse
import re
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import AsyncIterator

from temporalio.client import Client

from bulkorder.commands.arguments import add_order_argument, named_order
from bulkorder.commands.output import print_json
from bulkorder.data_lifecycle import (
    PURGEABLE_STATUSES,
    SweepOptions,
    collect_garbage,
    default_eraser,
    erase_order,
    purge_closed_orders,
)
from bulkorder.domain.application import Orders
from bulkorder.encryption import data_keys
from bulkorder.runtime import NoTemporalError, open_runtime
from bulkorder.settings import Settings
from bulkorder.storage.blob_store import BlobStore
from bulkorder.storage.gc import SweepReport

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {None: 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: Longest age accepted: a hundred years is a typo's length, not a policy's.
MAX_AGE_SECONDS = 100 * 365 * 86400.0
MAX_BY_CHARS = 200
MAX_REASON_CHARS = 1_000


def age(text: str) -> float:
    """A duration of 0 or more: ``0``, ``90s``, ``10m``, ``24h``, ``30d``."""
    match = _AGE.match(text.lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (for example 0, 90s, 10m, 24h, 30d)")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_AGE_SECONDS:
        raise argparse.ArgumentTypeError(f"{text!r} is more than a hundred years")
    return seconds


def statuses(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    bad = [status for status in chosen if status not in PURGEABLE_STATUSES]
    if not chosen or bad:
        raise argparse.ArgumentTypeError(
            f"retention purges only {' and '.join(PURGEABLE_STATUSES)} orders, not {', '.join(bad) or 'none'}"
        )
    return chosen


def _bounded_text(limit: int, what: str) -> object:
    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{what} must not be empty")
        if len(text) > limit or any(ord(c) < 32 and c not in "\t" for c in text):
            raise argparse.ArgumentTypeError(f"{what}: at most {limit:,} characters, no control characters")
        return text

    return parse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    gc = sub.add_parser(
        "gc",
        help="delete blobs nothing references any more (batches of failed imports, purged orders' reports)",
        description=(
            "Delete batch blobs no recorded event, open workflow or live write lease references, and reports "
            "of purged orders, once older than the grace period. Prints what it reclaimed, and what it kept and why."
        ),
    )
    gc.add_argument("--grace", type=age, default=None, help="keep blobs younger than this (default 24h, or BULKORDER_GC_GRACE_SECONDS)")
    gc.add_argument("--dry-run", action="store_true", help="decide and report, delete nothing")
    gc.add_argument("--json", action="store_true")
    gc.set_defaults(handler=run_gc)

    retention = sub.add_parser(
        "retention",
        help="delete the items of orders closed before a cut-off (events and counters stay)",
        description=(
            "Purge the items (batch blobs and report) of fulfilled or cancelled orders closed more than "
            "DURATION ago: records ItemsPurged on each, then deletes the blobs no other order references."
        ),
    )
    retention.add_argument("--closed-before", type=age, required=True, metavar="DURATION", help="for example 90d")
    retention.add_argument(
        "--status", type=statuses, default=PURGEABLE_STATUSES, help="fulfilled,cancelled (the default) or one of them"
    )
    retention.add_argument("--dry-run", action="store_true", help="say which orders and blobs, record and delete nothing")
    retention.add_argument("--json", action="store_true")
    retention.set_defaults(handler=run_retention)

    erase = sub.add_parser(
        "erase",
        help="erase an order for good (the right to be forgotten)",
        description=(
            "Erase a fulfilled or cancelled ORDER: destroy its data key, record OrderErased (who, why, when), "
            "delete its blobs no other order references. Refused while the order can still change: cancel it "
            "first. Nothing more is recorded on an erased order."
        ),
    )
    add_order_argument(erase)
    erase.add_argument("--reason", type=_bounded_text(MAX_REASON_CHARS, "--reason"), required=True)
    erase.add_argument("--by", type=_bounded_text(MAX_BY_CHARS, "--by"), default=None, help="who asks (default: the OS user)")
    erase.add_argument("--json", action="store_true")
    erase.set_defaults(handler=named_order(run_erase))


@asynccontextmanager
async def _stores(settings: Settings) -> AsyncIterator[tuple[BlobStore, Orders, Client | None]]:
    """The blob store, the event store, and Temporal when one is configured or running."""
    try:
        async with open_runtime(settings) as runtime:
            yield runtime.blobs, runtime.orders, runtime.client
            return
    except NoTemporalError:
        pass
    orders = settings.open_orders()
    try:
        yield settings.blob_store.open(), orders, None
    finally:
        orders.close()


def _options(settings: Settings, dry_run: bool) -> SweepOptions:
    return SweepOptions(dry_run=dry_run, lease_ttl=float(settings.gc_lease_ttl_seconds))


def _size(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:,} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return str(count)


def print_sweep(report: SweepReport, *, title: str) -> None:
    verb = "would delete" if report.dry_run else "deleted"
    print(f"{title}: scanned {report.scanned.blobs:,} blobs ({_size(report.scanned.bytes)}) in {report.seconds:.1f}s")
    print(f"  {verb} {report.deleted.blobs:,} blobs ({_size(report.deleted.bytes)})")
    for reason, tally in sorted(report.kept.items()):
        print(f"  kept {tally.blobs:,} blobs ({_size(tally.bytes)}): {reason}")
    print(
        f"  {report.live_leases:,} live write leases, {report.open_orders_asked:,} open orders asked, "
        f"{report.events_read:,} events read"
    )
    if report.expired_leases_deleted:
        print(f"  deleted {report.expired_leases_deleted:,} expired write leases")
    payloads = report.payloads
    if payloads is not None:
        print(
            f"  claim-check payloads: scanned {payloads.scanned.blobs:,} ({_size(payloads.scanned.bytes)}), {verb} "
            f"{payloads.deleted.blobs:,} ({_size(payloads.deleted.bytes)}) of {payloads.workflows_gone:,} workflows "
            f"Temporal no longer holds"
        )
        for reason, tally in sorted(payloads.kept.items()):
            print(f"    kept {tally.blobs:,} payloads ({_size(tally.bytes)}): {reason}")


async def run_gc(args: argparse.Namespace, settings: Settings) -> int:
    grace = float(settings.gc_grace_seconds) if args.grace is None else args.grace
    async with _stores(settings) as (blobs, orders, client):
        report = await collect_garbage(blobs, orders, client, grace=grace, options=_options(settings, args.dry_run))
    if args.json:
        print_json(report.to_json())
    else:
        print_sweep(report, title="gc" + (" (dry run)" if args.dry_run else ""))
    return 0


async def run_retention(args: argparse.Namespace, settings: Settings) -> int:
    async with _stores(settings) as (blobs, orders, client):
        result = await purge_closed_orders(
            blobs, orders, client, closed_before=timedelta(seconds=args.closed_before), statuses=args.status,
            options=_options(settings, args.dry_run),
        )
    if args.json:
        print_json(result.to_json())
        return 0
    verb = "would purge" if args.dry_run else "purged"
    cutoff = result.to_json()["closed_before"]
    print(f"retention: {verb} the items of {len(result.purged):,} {'/'.join(result.statuses)} orders closed before {cutoff}")
    for order_id in result.purged[:20]:
        print(f"  {order_id}")
    if len(result.purged) > 20:
        print(f"  ... and {len(result.purged) - 20:,} more")
    if result.already_purged:
        print(f"  {result.already_purged:,} orders were purged before")
    if result.sweep is not None:
        print_sweep(result.sweep, title="  their blobs")
    return 0


def _destroy_order_key(settings: Settings, order_id: str) -> bool:
    """Crypto-shredding: the order's data key destroyed (docs/data_protection.md)."""
    data_keys(settings.encryption_settings, settings.blob_store, settings.order_identity()).destroy_order_key(order_id)
    return True


async def run_erase(args: argparse.Namespace, settings: Settings) -> int:
    by = args.by or default_eraser()
    async with _stores(settings) as (blobs, orders, client):
        result = await erase_order(
            blobs, orders, client, args.order_id, by=by, reason=args.reason, options=_options(settings, False),
            destroy_key=lambda order_id: _destroy_order_key(settings, order_id),
        )
    if args.json:
        print_json(result.to_json())
        return 0
    when = result.to_json()["erased_at"]
    state = "erased" if result.newly_erased else "was already erased"
    print(f"order {result.order_id} {state} at {when} by {result.by}: {result.reason}")
    print(f"  data key destroyed: {'yes' if result.key_destroyed else 'no (no per-order key)'}")
    print_sweep(result.sweep, title="  its blobs")
    return 0
