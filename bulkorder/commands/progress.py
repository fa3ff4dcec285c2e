"""Progress on stderr: a bar redrawn in place on a terminal, a plain line now and then otherwise."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from workflows.pending import OrderProgress


class Progress:
    """``update(done)`` as often as you like; it draws at most ``per_second`` times a second
    on a terminal, and one plain line every ``plain_every`` seconds when piped or logged."""

    def __init__(
        self, label: str, total: int | None = None, *, unit: str = "items", stream: TextIO | None = None,
        per_second: float = 10, plain_every: float = 5.0,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.min_gap = 1 / per_second if self.tty else plain_every
        self.started = time.monotonic()
        self.last_drawn = 0.0 if self.tty else self.started
        self.done = 0

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if now - self.last_drawn >= self.min_gap:
            self.last_drawn = now
            self._draw(now, final=False)

    def finish(self) -> None:
        self._draw(time.monotonic(), final=True)

    def _draw(self, now: float, *, final: bool) -> None:
        seconds = max(now - self.started, 1e-9)
        rate = f"{self.done / seconds:,.0f} {self.unit}/s"
        if self.total:
            share = min(self.done / self.total, 1.0)
            counts = f"{self.done:,}/{self.total:,} {self.unit} {share:6.1%}"
        else:
            share, counts = 0.0, f"{self.done:,} {self.unit}"
        if self.tty:
            bar = "#" * int(share * 30) if self.total else ""
            line = f"\r{self.label} [{bar:<30}] {counts} {rate} {seconds:,.1f}s" if self.total else f"\r{self.label} {counts} {rate}"
            self.stream.write(line + ("\n" if final else ""))
        elif final or self.done:
            self.stream.write(f"{self.label}: {counts}, {rate}, {seconds:,.1f} s{' (done)' if final else ''}\n")
        self.stream.flush()


class WaitView:
    """What a command waiting on an order shows on stderr.

    The order's state (status, fulfillment's batches read) is one line: redrawn in place
    on a terminal; off one, printed when it changes, and at least every ``plain_every``
    seconds so a log shows the wait is alive. A failing step is printed as its own line
    once when it appears or its error changes (not at every retry), and once when it
    recovers.
    """

    def __init__(self, stream: TextIO | None = None, *, plain_every: float = 30.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.plain_every = plain_every
        self.started = time.monotonic()
        self._line = ""
        self._line_at = 0.0
        self._failing: tuple[str, str | None, str | None] | None = None
        self._drawn = False

    def show(self, progress: "OrderProgress") -> None:
        self._show_failing(progress)
        line = state_line(progress)
        now = time.monotonic()
        if self.tty:
            self.stream.write(f"\r\x1b[K{line} ({now - self.started:,.0f} s)")
            self._drawn = True
        elif line != self._line or now - self._line_at >= self.plain_every:
            self.stream.write(f"{line} ({now - self.started:,.0f} s)\n")
            self._line_at = now
        self._line = line
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own (after the redrawn line, on a terminal)."""
        self._end_line()
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        self._end_line()
        self.stream.flush()

    def _show_failing(self, progress: "OrderProgress") -> None:
        step = progress.failing_step()
        key = None if step is None else (step.step, step.error_type, step.last_error)
        if key == self._failing:
            return
        if step is not None:
            self.note(f"order {progress.order_id}: {step.describe()}")
        elif self._failing is not None:
            self.note(f"order {progress.order_id}: the {self._failing[0]} step is no longer failing")
        self._failing = key

    def _end_line(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self._drawn = False


def state_line(progress: "OrderProgress") -> str:
    """``order X: submitted, fulfillment 3/10 batches read``: the order's state in one line."""
    summary = progress.summary
    status = summary.status if summary is not None else f"workflow {progress.workflow_status}"
    line = f"order {progress.order_id}: {status}"
    fulfilling = progress.step("fulfillment")
    if fulfilling is not None:
        total = f"/{summary.batch_count:,}" if summary is not None and summary.batch_count else ""
        done = f"{fulfilling.progress:,}{total} batches read" if fulfilling.progress is not None else "started"
        line += f", fulfillment {done}" if fulfilling.state == "started" or fulfilling.progress else ", fulfillment scheduled"
    recording = progress.step("recording")
    if recording is not None and summary is not None and summary.pending_batches:
        line += f", {summary.pending_batches:,} batches not yet recorded"
    if summary is None and progress.error:
        line += f" ({progress.error})"
    return line
