"""What long commands show on stderr: rich on a terminal, plain lines in a log."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console

from bulkorder.commands.progress import Progress, WaitView, state_line
from bulkorder.domain.summary import OrderSummary
from bulkorder.workflows.pending import OrderProgress, PendingStep

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ELAPSED = re.compile(r"\(\d[\d,]* s\)")  # the wait's seconds so far


def terminal(out: io.StringIO) -> Console:
    return Console(file=out, force_terminal=True, width=120, color_system=None)


def drawn(out: io.StringIO) -> list[str]:
    return [ANSI.sub("", part) for part in out.getvalue().split("\r")]


def order_progress(*, failing: bool, batches_read: int | None = 3) -> OrderProgress:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    step = PendingStep(
        step="fulfillment", activity_type="fulfill_order", state="started", attempt=3 if failing else 1,
        maximum_attempts=0, last_error="blob store unreachable" if failing else None,
        error_type="TransientStoreError" if failing else None, scheduled_at=now, last_started_at=now,
        last_failed_at=now if failing else None, last_heartbeat_at=None, next_retry_at=None, progress=batches_read,
    )
    summary = OrderSummary(order_id="o-1", customer_id="c-1", status="submitted", batch_count=10, item_count=1_000)
    return OrderProgress(order_id="o-1", workflow_status="running", summary=summary, steps=[step])


def test_progress_off_a_terminal_prints_plain_lines() -> None:
    out = io.StringIO()
    progress = Progress("export", unit="events", stream=out, plain_every=0.0)
    progress.update(1_500)
    progress.finish()
    first, last = out.getvalue().splitlines()
    assert first.startswith("export: 1,500 events, ") and first.endswith(" s")
    assert last.startswith("export: 1,500 events, ") and last.endswith(" s (done)")


def test_progress_on_a_terminal_is_a_rich_bar_left_on_screen() -> None:
    out = io.StringIO()
    progress = Progress("items of o-1 v3", 1_000, stream=out, console=terminal(out))
    progress.update(500)
    progress.finish()
    first, *_, last = drawn(out)
    assert first.startswith("items of o-1 v3 " + "━" * 15)  # half of the 30 columns
    assert "500/1,000 items  50.0%" in first
    assert last.endswith("s\n") and out.getvalue().endswith("\x1b[?25h")


def test_wait_view_off_a_terminal_prints_each_change_and_a_failing_step_once() -> None:
    out = io.StringIO()
    view = WaitView(out)
    view.show(order_progress(failing=True))
    view.show(order_progress(failing=True))  # unchanged: nothing new
    view.show(order_progress(failing=False, batches_read=4))
    view.close()
    assert ELAPSED.sub("(N s)", out.getvalue()).splitlines() == [
        "order o-1: fulfillment step failing: attempt 3, last tried 2026-01-01 00:00:00Z: blob store unreachable"
        " (TransientStoreError)",
        "order o-1: submitted, fulfillment 3/10 batches read (N s)",
        "order o-1: the fulfillment step is no longer failing",
        "order o-1: submitted, fulfillment 4/10 batches read (N s)",
    ]


def test_wait_view_on_a_terminal_redraws_the_state_and_prints_notes_above_it() -> None:
    out = io.StringIO()
    view = WaitView(out, console=terminal(out))
    view.show(order_progress(failing=False))
    view.show(order_progress(failing=True, batches_read=4))
    view.close()
    text = ELAPSED.sub("(N s)", ANSI.sub("", out.getvalue()))
    assert "order o-1: submitted, fulfillment 3/10 batches read (N s)" in text
    note = text.index("blob store unreachable")
    assert text.index("fulfillment 4/10 batches read", note) > note  # the live line is drawn below the note
    assert text.endswith("batches read (N s)\n")
    assert state_line(order_progress(failing=False)) == "order o-1: submitted, fulfillment 3/10 batches read"


def test_a_real_terminal_gets_the_rich_bar() -> None:
    """Through a pseudo-terminal: the display finds the terminal by itself."""
    leader, follower = pty.openpty()
    code = "from bulkorder.commands.progress import Progress; p = Progress('items', 10); p.update(5); p.finish()"
    child = subprocess.Popen(
        [sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], stderr=follower, stdout=subprocess.DEVNULL
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert child.wait(timeout=60) == 0
    text = ANSI.sub("", output.decode())
    assert "10/10 items" not in text and "5/10 items  50.0%" in text
    assert "\x1b[?25l" in output.decode()  # rich hid the cursor while drawing...
    assert output.decode().rstrip().endswith("\x1b[?25h")  # ...and showed it again
