"""``create``, ``add``, ``submit``, ``cancel`` and ``show``: one order at a time."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from temporalio.service import RPCError

from bulkorder.commands.output import positive_int, print_json, print_summary
from bulkorder.item_files import read_item_file
from bulkorder.runtime import NoTemporalError, open_runtime
from bulkorder.settings import Settings
from domain.errors import OrderNotFoundError
from domain.identifiers import check_customer_id, check_order_id
from domain.summary import OrderSummary


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    create = sub.add_parser("create", help="open an order (synchronously accepted or refused)")
    create.add_argument("order_id")
    create.add_argument("--customer", required=True, help="customer ID")
    create.add_argument("--items", metavar="FILE", help="NDJSON or JSON array of the order's first items")
    create.add_argument("--batch-size", type=positive_int, default=None)
    create.add_argument("--json", action="store_true")
    create.set_defaults(handler=run_create)

    add = sub.add_parser("add", help="add the items of a file (NDJSON or JSON array) to an open order")
    add.add_argument("order_id")
    add.add_argument("file")
    add.add_argument("--batch-size", type=positive_int, default=None)
    add.add_argument("--json", action="store_true")
    add.set_defaults(handler=run_add)

    submit = sub.add_parser("submit", help="close an order to additions and fulfill it")
    submit.add_argument("order_id")
    submit.add_argument("--wait", action="store_true", help="wait until fulfillment completes")
    submit.add_argument("--json", action="store_true")
    submit.set_defaults(handler=run_submit)

    cancel = sub.add_parser("cancel", help="cancel an open order")
    cancel.add_argument("order_id")
    cancel.add_argument("--reason", default="cancelled by user")
    cancel.add_argument("--json", action="store_true")
    cancel.set_defaults(handler=run_cancel)

    show = sub.add_parser("show", help="an order's status and counters")
    show.add_argument("order_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=run_show)


def _batch_size(args: argparse.Namespace, settings: Settings) -> int:
    return int(args.batch_size or settings.batch_size)


async def run_create(args: argparse.Namespace, settings: Settings) -> int:
    check_order_id(args.order_id)
    check_customer_id(args.customer)
    items = read_item_file(args.items, max_line_bytes=settings.max_line_bytes) if args.items else []  # all validated before anything is stored
    async with open_runtime(settings) as runtime:
        client = runtime.order_client()
        refs = await client.store_items(items, batch_size=_batch_size(args, settings)) if items else []
        summary = await client.create(args.order_id, args.customer, refs)
    print_summary(summary, as_json=args.json)
    return 0


async def run_add(args: argparse.Namespace, settings: Settings) -> int:
    check_order_id(args.order_id)
    items = read_item_file(args.file, max_line_bytes=settings.max_line_bytes)
    async with open_runtime(settings) as runtime:
        client = runtime.order_client()
        # Fail before uploading if the order cannot take items.
        current = await client.summary(args.order_id)
        if current.status != "open":
            from workflows.errors import OrderRefusedError

            raise OrderRefusedError(
                f"order {args.order_id!r} is {current.status}: cannot add items", type="OrderClosed", order_id=args.order_id
            )
        result = await client.add_items(args.order_id, items, batch_size=_batch_size(args, settings))
    assert result is not None
    if args.json:
        print_json({"accepted": len(result.accepted), "duplicates": len(result.duplicates), "summary": result.summary})
    else:
        print(f"added {len(items):,} items in {len(result.accepted)} batches"
              + (f" ({len(result.duplicates)} batches were already in the order)" if result.duplicates else ""))
        print_summary(result.summary, as_json=False)
    return 0


async def run_submit(args: argparse.Namespace, settings: Settings) -> int:
    async with open_runtime(settings) as runtime:
        client = runtime.order_client()
        summary = await client.submit(args.order_id)
        if args.wait:
            summary = await client.wait_closed(args.order_id)
    print_summary(summary, as_json=args.json)
    return 0


async def run_cancel(args: argparse.Namespace, settings: Settings) -> int:
    async with open_runtime(settings) as runtime:
        summary = await runtime.order_client().cancel(args.order_id, args.reason)
    print_summary(summary, as_json=args.json)
    return 0


#: Rejected batches listed by ``show`` (``--json`` lists them all).
SHOWN_REJECTIONS = 20


async def run_show(args: argparse.Namespace, settings: Settings) -> int:
    """The open workflow's view if there is one (it includes batches not yet recorded),
    otherwise the event store's durable record. A DB-first order is always shown from the
    event store: there, the store is the source of truth and the workflow follows it.
    Rejected batches are listed with their reasons, from the event store."""
    check_order_id(args.order_id)
    orders = settings.event_store.open_orders()
    try:
        order = orders.get_order(args.order_id) if orders.exists(args.order_id) else None
    finally:
        orders.close()
    summary: OrderSummary | None = None
    source = ""
    if order is None or not order.via_outbox:
        summary, source = await _workflow_summary(args.order_id, settings)
    if summary is None:
        if order is None:
            raise OrderNotFoundError(args.order_id)
        summary, source = order.summary(), "event store" + (" (DB-first order)" if order.via_outbox else "")
    rejections = dict(order.rejected_batch_ids) if order is not None else {}
    closing_reason = (order.failure_reason or order.cancel_reason) if order is not None else None
    if args.json:
        data = asdict(summary)
        data["source"] = source
        data["rejections"] = [{"batch_id": batch_id, "reason": reason} for batch_id, reason in rejections.items()]
        if closing_reason:
            data["reason"] = closing_reason
        print_json(data)
        return 0
    print_summary(summary, as_json=False, source=source)
    if closing_reason:
        print(f"reason  {closing_reason}")
    _print_rejections(rejections)
    return 0


def _print_rejections(rejections: dict[str, str]) -> None:
    if not rejections:
        return
    print(f"rejected batches ({len(rejections):,}):")
    for batch_id, reason in list(rejections.items())[:SHOWN_REJECTIONS]:
        print(f"  {batch_id}: {reason}")
    if len(rejections) > SHOWN_REJECTIONS:
        print(f"  ... and {len(rejections) - SHOWN_REJECTIONS:,} more (--json lists them all)")


async def _workflow_summary(order_id: str, settings: Settings) -> tuple[OrderSummary | None, str]:
    try:
        async with open_runtime(settings) as runtime:
            client = runtime.order_client()
            description = await client.handle(order_id).describe()
            if description.status is not None and description.status.name != "RUNNING":
                return None, ""
            return await client.summary(order_id), "workflow"
    except (NoTemporalError, OrderNotFoundError):
        return None, ""
    except RPCError as err:
        if "not found" in str(err).lower():
            return None, ""
        raise
