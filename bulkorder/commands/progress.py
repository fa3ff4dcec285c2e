"""Progress on stderr: a bar redrawn in place on a terminal, a plain line now and then otherwise.

On a terminal, ``rich`` draws (as it does the importer's bar,
:mod:`bulkorder.importer.progress`): it knows the terminal's width and cursor, and prints
a note above a line it keeps redrawing. Off one, the plain lines below, unchanged, are
what logs and tests read.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # rich is imported when a terminal is drawn: plain runs do not pay for it
    from rich.console import Console
    from rich.live import Live
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID
    from rich.text import Text

    from bulkorder.workflows.pending import OrderProgress


class _Terminal:
    """The rich console both displays draw on, made on first use (one per display)."""

    stream: TextIO
    _console: "Console | None"

    def _terminal(self) -> "Console":
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream, force_terminal=True)
        return self._console


class Progress(_Terminal):
    """``update(done)`` as often as you like; it draws at most ``per_second`` times a second
    on a terminal, and one plain line every ``plain_every`` seconds when piped or logged."""

    def __init__(
        self, label: str, total: int | None = None, *, unit: str = "items", stream: TextIO | None = None,
        per_second: float = 10, plain_every: float = 5.0, console: Console | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        # A terminal is what the stream says it is (not rich's guess from the environment).
        self.tty = console.is_terminal if console is not None else self.stream.isatty()
        self._console = console
        self.min_gap = 1 / per_second if self.tty else plain_every
        self.started = time.monotonic()
        self.last_drawn = 0.0 if self.tty else self.started
        self.done = 0
        self._bar: tuple[RichProgress, TaskID] | None = None

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
            self._draw_bar(f"{counts} {rate} {seconds:,.1f}s", final=final)
            return
        if final or self.done:
            self.stream.write(f"{self.label}: {counts}, {rate}, {seconds:,.1f} s{' (done)' if final else ''}\n")
        self.stream.flush()

    def _draw_bar(self, text: str, *, final: bool) -> None:
        if self._bar is None:
            from rich.progress import BarColumn, TextColumn
            from rich.progress import Progress as RichProgress

            columns = [TextColumn("{task.description}", markup=False)]
            if self.total:
                columns.append(BarColumn(bar_width=30))
            columns.append(TextColumn("{task.fields[text]}", markup=False))
            bar = RichProgress(
                *columns,
                console=self._terminal(),
                auto_refresh=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._bar = (bar, bar.add_task(self.label, total=self.total or None, completed=self.done, text=text))
            bar.start()
        bar, task = self._bar
        bar.update(task, completed=self.done, text=text, refresh=True)
        if final:
            bar.stop()  # the last state stays on screen; the cursor comes back
            self._bar = None


class WaitView(_Terminal):
    """What a command waiting on an order shows on stderr.

    The order's state (status, fulfillment's batches read) is one line: redrawn in place
    on a terminal; off one, printed when it changes, and at least every ``plain_every``
    seconds so a log shows the wait is alive. A failing step is printed as its own line
    once when it appears or its error changes (not at every retry), and once when it
    recovers.
    """

    def __init__(self, stream: TextIO | None = None, *, plain_every: float = 30.0, console: Console | None = None) -> None:
        self.stream = stream or sys.stderr
        # A terminal is what the stream says it is (not rich's guess from the environment).
        self.tty = console.is_terminal if console is not None else self.stream.isatty()
        self._console = console
        self._live: Live | None = None
        self.plain_every = plain_every
        self.started = time.monotonic()
        self._line = ""
        self._line_at = 0.0
        self._failing: tuple[str, str | None, str | None] | None = None

    def show(self, progress: "OrderProgress") -> None:
        self._show_failing(progress)
        line = state_line(progress)
        now = time.monotonic()
        if self.tty:
            self._redraw(f"{line} ({now - self.started:,.0f} s)")
        elif line != self._line or now - self._line_at >= self.plain_every:
            self.stream.write(f"{line} ({now - self.started:,.0f} s)\n")
            self._line_at = now
        self._line = line
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own (above the redrawn line, on a terminal)."""
        if self.tty:
            from rich.text import Text

            # Through the live display's console: rich keeps the redrawn line below it.
            self._terminal().print(Text(text), soft_wrap=True)
            return
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()  # the last state stays on screen; the cursor comes back
            self._live = None
        self.stream.flush()

    def _redraw(self, line: str) -> None:
        from rich.live import Live
        from rich.text import Text

        if self._live is None:
            self._live = Live(console=self._terminal(), auto_refresh=False, redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        self._live.update(Text(line), refresh=True)

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
