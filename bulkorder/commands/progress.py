"""Progress on stderr: a bar redrawn in place on a terminal, a plain line now and then otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


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
