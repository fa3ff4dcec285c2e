"""Waiting for an order's outcome without waiting blind (``submit --wait``, ``retry --wait``).

The wait looks at the order's workflow about once a second (:meth:`OrderClient.progress`):
it shows the order's state and any step that keeps failing while it waits, ends as soon
as the order is fulfilled, cancelled or failed, and gives up at its deadline. A failed
fulfillment that waits for a retry or a cancel (status ``failed`` while the workflow still
runs) ends the wait at once: nothing will change until someone acts.

Exit codes: 0 the order ended (fulfilled, or cancelled meanwhile), 1 it failed,
3 the deadline passed first (:data:`TIMED_OUT`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from bulkorder.commands.output import print_json, print_summary
from bulkorder.commands.progress import WaitView
from bulkorder.domain.summary import OrderStatus, OrderSummary
from bulkorder.workflows.client import OrderClient
from bulkorder.workflows.pending import WORKFLOW_COMPLETED, OrderProgress, PendingStep, safe_error_text

#: Exit code of a wait whose ``--timeout`` passed before the order ended.
TIMED_OUT = 3
#: Seconds between two looks at the order.
POLL_SECONDS = 1.0


@dataclass
class WaitOutcome:
    code: int
    #: The last look at the order (``None`` if the deadline passed before the first).
    progress: OrderProgress | None
    reason: str | None = None

    @property
    def summary(self) -> OrderSummary | None:
        return None if self.progress is None else self.progress.summary

    @property
    def failing_step(self) -> PendingStep | None:
        return None if self.progress is None else self.progress.failing_step()


async def wait_for_outcome(
    client: OrderClient,
    order_id: str,
    *,
    timeout: float | None,
    view: WaitView | None,
    failure_reason: Callable[[], Awaitable[str | None]],
    failed_before: bool = False,
) -> WaitOutcome:
    """Wait until the order ends or ``timeout`` seconds pass.

    ``failure_reason`` reads why a failed order failed (from the event store).
    ``failed_before``: the order was ``failed`` when the wait began (a retry was just
    accepted): that status only counts once the order has shown another one.
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    last: OrderProgress | None = None
    stale_failed = failed_before
    while True:
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            return WaitOutcome(TIMED_OUT, last)
        progress = await _within(client.progress(order_id), remaining)
        if progress is None:
            return WaitOutcome(TIMED_OUT, last)
        last = progress
        if view is not None:
            view.show(progress)
        if not progress.running:
            if progress.workflow_status == WORKFLOW_COMPLETED:
                return WaitOutcome(0, progress)
            return WaitOutcome(1, progress, reason=progress.error or f"its workflow is {progress.workflow_status}")
        if progress.status == OrderStatus.FAILED and not stale_failed:
            return WaitOutcome(1, progress, reason=await failure_reason())
        if progress.status is not None and progress.status != OrderStatus.FAILED:
            stale_failed = False
        pause = POLL_SECONDS if remaining is None else min(POLL_SECONDS, max(deadline - loop.time(), 0.0))  # type: ignore[operator]
        await asyncio.sleep(pause)


async def _within(look: Awaitable[OrderProgress], seconds: float | None) -> OrderProgress | None:
    """``look``'s result, or ``None`` if it takes more than ``seconds``. (Not wait_for: a
    Temporal call cut short may end in its own error rather than CancelledError.)"""
    task = asyncio.ensure_future(look)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None
    return task.result()


def report_outcome(command: str, order_id: str, outcome: WaitOutcome, *, timeout: float | None, as_json: bool) -> int:
    """Print how the wait ended (the summary on stdout; what went wrong on stderr) and
    return the exit code."""
    import sys

    summary = outcome.summary
    step = outcome.failing_step
    if outcome.code == 0 and summary is not None:
        print_summary(summary, as_json=as_json)
        return 0
    if as_json:
        data: dict[str, Any] = {"order_id": order_id, "timed_out": outcome.code == TIMED_OUT}
        data["status"] = None if summary is None else summary.status
        data["summary"] = summary
        data["failing_step"] = None if step is None else step.to_json()
        data["reason"] = None if outcome.reason is None else safe_error_text(outcome.reason, limit=1_000)
        print_json(data)
    elif summary is not None:
        print_summary(summary, as_json=False)
    status = "unknown" if summary is None else summary.status
    if outcome.code == TIMED_OUT:
        message = f"timed out after {timeout:,.0f} s waiting for order {order_id} (status {status})"
    else:
        reason = safe_error_text(outcome.reason or "no reason recorded", limit=1_000)
        message = f"order {order_id} failed: {reason}"
        if summary is not None and summary.status == OrderStatus.FAILED:
            message += f" (fix the cause, then `bulkorder retry {order_id}`; or `bulkorder cancel {order_id}`)"
    if step is not None:
        message += f"; {step.describe()}"
    print(f"bulkorder {command}: error: {message}", file=sys.stderr)
    return outcome.code
