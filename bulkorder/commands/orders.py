"""``create``, ``add``, ``submit``, ``cancel`` and ``show``: one order at a time.

``submit --wait`` shows the order's progress and any failing step while it waits; exit 1
when the order fails, 3 when ``--timeout`` passes first (see :mod:`bulkorder.commands.waiting`).
``create --timeout`` gives up waiting for the creation's record the same way (exit 3).
``show`` shows a step that keeps failing, read from Temporal's pending-activity information.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import asdict

from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from bulkorder.commands.arguments import add_order_argument, duration, named_order, reason_text
from bulkorder.commands.output import positive_int, print_json, print_summary
from bulkorder.commands.progress import WaitView
from bulkorder.commands.waiting import TIMED_OUT, report_outcome, wait_for_outcome
from bulkorder.item_files import read_item_file
from bulkorder.storage.leases import WriteLeases
from bulkorder.runtime import NoTemporalError, Runtime, open_runtime
from bulkorder.settings import Settings
from bulkorder.domain.errors import OrderNotFoundError
from bulkorder.domain.identity import OrderName, check_idempotency_key
from bulkorder.domain.summary import OrderStatus, OrderSummary
from bulkorder.workflows.pending import PendingStep, failing_step
from bulkorder.workflows.workflow_task import FailingCreation


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    create = sub.add_parser(
        "create",
        help="open an order (synchronously accepted or refused; the same request again prints the order)",
    )
    create.add_argument("reference", help="the customer's own reference for the order (e.g. PO-1001)")
    create.add_argument("--customer", required=True, help="customer ID (an account name, e-mail address...)")
    create.add_argument(
        "--idempotency-key", metavar="KEY", default=None,
        help="your key for this request: a retry with the same key is answered with the order, whatever its items",
    )
    create.add_argument("--items", metavar="FILE", help="NDJSON or JSON array of the order's first items")
    create.add_argument("--batch-size", type=positive_int, default=None)
    create.add_argument(
        "--timeout", type=duration, metavar="DURATION",
        help="give up waiting for the creation to be recorded after DURATION (90s, 10m) with exit 3; "
        "the order may still be created: the same request again prints it",
    )
    create.add_argument("--json", action="store_true")
    create.set_defaults(handler=run_create)

    add = sub.add_parser("add", help="add the items of a file (NDJSON or JSON array) to an open order")
    add_order_argument(add)
    add.add_argument("file")
    add.add_argument("--batch-size", type=positive_int, default=None)
    add.add_argument("--json", action="store_true")
    add.set_defaults(handler=named_order(run_add))

    submit = sub.add_parser("submit", help="close an order to additions and fulfill it")
    add_order_argument(submit)
    add_wait_arguments(submit)
    submit.add_argument("--json", action="store_true")
    submit.set_defaults(handler=named_order(run_submit))

    cancel = sub.add_parser("cancel", help="cancel an open order, or one whose fulfillment failed")
    add_order_argument(cancel)
    cancel.add_argument("--reason", type=reason_text, default="cancelled by user")
    cancel.add_argument("--json", action="store_true")
    cancel.set_defaults(handler=named_order(run_cancel))

    show = sub.add_parser("show", help="an order's status and counters")
    add_order_argument(show)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=named_order(run_show))


def _batch_size(args: argparse.Namespace, settings: Settings) -> int:
    return int(args.batch_size or settings.batch_size)


async def run_create(args: argparse.Namespace, settings: Settings) -> int:
    name = OrderName(args.customer, args.reference)  # checked before anything is read or stored
    key = check_idempotency_key(args.idempotency_key)
    items = read_item_file(args.items, max_line_bytes=settings.max_line_bytes) if args.items else []  # all validated before anything is stored
    async with open_runtime(settings) as runtime:
        client = runtime.order_client()
        leases = WriteLeases(runtime.blobs)  # garbage collection keeps the blobs until created
        # Stored as the order's batches: sealed with its data key (erasure shreds them) and
        # their refs' seals bound to it.
        refs = (
            await client.store_items(items, batch_size=_batch_size(args, settings), leases=leases, order_id=str(name))
            if items else []
        )
        try:
            summary = await asyncio.wait_for(client.create(name, refs=refs, idempotency_key=key), args.timeout)
        except (asyncio.TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            # The update's wait is cancelled (temporalio says so with its own error). The workflow may hold the refs already: the leases are left to expire, not released.
            print(
                f"order {name}: its creation was not recorded within {args.timeout:g} s (`bulkorder stuck` "
                "lists a creation whose record keeps failing); the same create again prints the order once it is",
                file=sys.stderr,
            )
            return TIMED_OUT
        await asyncio.to_thread(leases.release_all)
    print_summary(summary, as_json=args.json)
    return 0


async def run_add(args: argparse.Namespace, settings: Settings) -> int:
    items = read_item_file(args.file, max_line_bytes=settings.max_line_bytes)
    async with open_runtime(settings) as runtime:
        client = runtime.order_client()
        # Fail before uploading if the order cannot take items.
        current = await client.summary(args.order_id)
        if current.status != OrderStatus.OPEN:
            from bulkorder.workflows.errors import OrderRefusedError
            from bulkorder.workflows.order_rules import ORDER_CLOSED

            raise OrderRefusedError(
                f"order {args.order_id!r} is {current.status}: cannot add items", type=ORDER_CLOSED, order_id=args.order_id
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


def add_wait_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait", action="store_true",
        help="wait until the order is fulfilled (exit 0) or fails (exit 1), showing progress on stderr",
    )
    parser.add_argument(
        "--timeout", type=duration, metavar="DURATION",
        help="with --wait: give up after DURATION (90s, 10m, 2h) with exit 3, printing the order's state",
    )


async def run_submit(args: argparse.Namespace, settings: Settings) -> int:
    async with open_runtime(settings) as runtime:
        client = runtime.order_client()
        summary = await client.submit(args.order_id)
        if args.wait or args.timeout is not None:
            return await wait_and_report("submit", runtime, args)
    print_summary(summary, as_json=args.json)
    return 0


async def wait_and_report(command: str, runtime: Runtime, args: argparse.Namespace, *, failed_before: bool = False) -> int:
    """``--wait``: follow the order until it ends, fails or ``--timeout`` passes."""
    import asyncio

    def recorded_reason() -> str | None:
        orders = runtime.orders
        return orders.get_order(args.order_id).failure_reason if orders.exists(args.order_id) else None

    async def failure_reason() -> str | None:
        return await asyncio.to_thread(recorded_reason)

    view = WaitView()
    try:
        outcome = await wait_for_outcome(
            runtime.order_client(), args.order_id, timeout=args.timeout, view=view,
            failure_reason=failure_reason, failed_before=failed_before,
        )
    finally:
        view.close()
    return report_outcome(command, args.order_id, outcome, timeout=args.timeout, as_json=args.json)


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
    orders = settings.open_orders()
    try:
        order = orders.get_order(args.order_id) if orders.exists(args.order_id) else None
    finally:
        orders.close()
    summary: OrderSummary | None = None
    source = ""
    steps: list[PendingStep] = []
    creation: FailingCreation | None = None
    if order is None or not order.via_outbox:
        summary, source, steps, creation = await _workflow_summary(args.order_id, settings)
    if summary is None:
        if order is None:
            raise OrderNotFoundError(args.order_id)
        summary, source = order.summary(), "event store" + (" (DB-first order)" if order.via_outbox else "")
    rejections = dict(order.rejected_batch_ids) if order is not None else {}
    closing_reason = (order.failure_reason or order.cancel_reason) if order is not None else None
    failing = failing_step(steps)
    if args.json:
        data = asdict(summary)
        data["source"] = source
        data["failing_step"] = None if failing is None else failing.to_json()
        data["pending_steps"] = [step.to_json() for step in steps]
        data["failing_creation"] = None if creation is None else creation.to_json()
        data["rejections"] = [{"batch_id": batch_id, "reason": reason} for batch_id, reason in rejections.items()]
        if closing_reason:
            data["reason"] = closing_reason
        print_json(data)
        return 0
    print_summary(summary, as_json=False, source=source)
    if closing_reason:
        print(f"reason  {closing_reason}")
    if summary.status == OrderStatus.FAILED and source == "workflow":
        print(f"waiting for `bulkorder retry {args.order_id}` (after fixing the cause) or `bulkorder cancel {args.order_id}`")
    if failing is not None:
        _print_failing_step(failing)
    if creation is not None:
        print(creation.describe())
    _print_rejections(rejections)
    return 0


def _print_failing_step(step: PendingStep) -> None:
    data = step.to_json()
    rows = [
        ("failing step", f"{step.step} ({step.activity_type})"),
        ("  attempt", f"{step.attempt:,}" + (f" of {step.maximum_attempts:,}" if step.maximum_attempts else "")),
        ("  last error", f"{step.last_error}" + (f" ({step.error_type})" if step.error_type else "")),
        ("  last attempt", data["last_attempt_at"] or "-"),
        ("  next retry", data["next_retry_at"] or ("now (running)" if step.state == "started" else "-")),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def _print_rejections(rejections: dict[str, str]) -> None:
    if not rejections:
        return
    print(f"rejected batches ({len(rejections):,}):")
    for batch_id, reason in list(rejections.items())[:SHOWN_REJECTIONS]:
        print(f"  {batch_id}: {reason}")
    if len(rejections) > SHOWN_REJECTIONS:
        print(f"  ... and {len(rejections) - SHOWN_REJECTIONS:,} more (--json lists them all)")


async def _workflow_summary(
    order_id: str, settings: Settings
) -> tuple[OrderSummary | None, str, list[PendingStep], FailingCreation | None]:
    """The running workflow's summary, pending steps and failing creation (a local
    activity, no step: bulkorder.workflows.workflow_task) (``None`` if it is not running)."""
    try:
        async with open_runtime(settings) as runtime:
            progress = await runtime.order_client().progress(order_id)
    except (NoTemporalError, OrderNotFoundError):
        return None, "", [], None
    except RPCError as err:
        if "not found" in str(err).lower():
            return None, "", [], None
        raise
    if not progress.running:
        return None, "", [], None
    if progress.summary is None:
        # Running but unanswered (no worker): the steps are still worth showing, over the
        # event store's record.
        return None, "", progress.steps, progress.failing_creation()
    return progress.summary, "workflow", progress.steps, progress.failing_creation()
