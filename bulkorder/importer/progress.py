"""How far an import is: counters the pipeline updates, and two ways to show them.

On a terminal, a ``rich`` progress bar redrawn in place on stderr (items, items/s, MB,
ETA): rich handles the terminal's width, colours and cursor, as it does for the command
line's other progress displays (:mod:`bulkorder.commands.progress`). Otherwise a plain
line every few seconds, which reads well in CI logs and ``nohup`` files.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:  # rich is imported when a TerminalBar is made: logged imports do not pay for it
    from rich.console import Console
    from rich.progress import Progress, TaskID


@dataclass
class ImportProgress:
    source: str
    total_bytes: int | None
    started: float = field(default_factory=time.monotonic)
    #: Input bytes read, and batched (sent, skipped or refused) so far.
    bytes_done: int = 0
    items: int = 0
    batches: int = 0
    rejected: int = 0
    skipped_batches: int = 0
    skipped_lines: int = 0
    last_line: int = 0

    @property
    def seconds(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds

    def eta_seconds(self) -> float | None:
        if not self.total_bytes or not self.bytes_done:
            return None
        return max(self.seconds * (self.total_bytes - self.bytes_done) / self.bytes_done, 0.0)


class ProgressView(Protocol):
    def show(self, progress: ImportProgress) -> None: ...

    def close(self, progress: ImportProgress) -> None: ...


def _mb(count: int) -> str:
    return f"{count / 1e6:,.1f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


class TerminalBar:
    """``━━━━━╺━━━━  50%  1,500,000 items  151,230 items/s  100.0/200.0 MB  ETA 0:10``

    Drawn by ``rich`` when the importer's ticker calls :meth:`show` (every ``interval``
    seconds; no refresh thread of its own), left on screen by :meth:`close`."""

    interval = 0.2

    def __init__(self, stream: TextIO = sys.stderr, width: int = 24, *, console: Console | None = None) -> None:
        self.stream = stream
        self.width = width
        if console is None:
            from rich.console import Console

            console = Console(file=stream, force_terminal=True)  # the terminal view
        self.console = console
        self._shown: tuple[Progress, TaskID] | None = None

    def show(self, progress: ImportProgress) -> None:
        fields = _bar_fields(progress)
        if self._shown is None:
            from rich.progress import BarColumn, Progress, TextColumn

            bar = Progress(
                BarColumn(bar_width=self.width),
                TextColumn("{task.fields[share]}"),
                TextColumn("{task.fields[counts]}"),
                console=self.console,
                auto_refresh=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._shown = (bar, bar.add_task(progress.source, **fields))  # type: ignore[arg-type]
            bar.start()  # draws it
        else:
            bar, task = self._shown
            bar.update(task, refresh=True, **fields)  # type: ignore[arg-type]

    def close(self, progress: ImportProgress) -> None:
        self.show(progress)
        if self._shown is not None:
            self._shown[0].stop()  # the last state stays on screen; the cursor comes back
            self._shown = None


def _bar_fields(progress: ImportProgress) -> dict[str, object]:
    if progress.total_bytes:
        share = f"{min(progress.bytes_done / progress.total_bytes, 1.0) * 100:3.0f}%"
        size = f"{_mb(progress.bytes_done)}/{_mb(progress.total_bytes)} MB"
    else:
        share, size = "", f"{_mb(progress.bytes_done)} MB"
    counts = (
        f"{progress.items:,} items  {progress.items_per_second:,.0f} items/s  {size}"
        f"  ETA {_duration(progress.eta_seconds())}"
    )
    if progress.rejected:
        counts += f"  {progress.rejected:,} rejected"
    return {
        # No total: rich draws a moving bar (a pipe of unknown size).
        "total": progress.total_bytes or None,
        "completed": min(progress.bytes_done, progress.total_bytes) if progress.total_bytes else 0,
        "share": share,
        "counts": counts,
    }


class PlainLines:
    """One line every ``interval`` seconds, for logs."""

    def __init__(self, stream: TextIO = sys.stderr, interval: float = 5.0) -> None:
        self.stream = stream
        self.interval = interval

    def show(self, progress: ImportProgress) -> None:
        share = f" ({progress.bytes_done * 100 // progress.total_bytes}%)" if progress.total_bytes else ""
        eta = progress.eta_seconds()
        self.stream.write(
            f"import {progress.source}: {progress.items:,} items, {progress.items_per_second:,.0f} items/s, "
            f"{_mb(progress.bytes_done)} MB{share}"
            + (f", ETA {_duration(eta)}" if eta is not None else "")
            + (f", {progress.rejected:,} rejected" if progress.rejected else "")
            + "\n"
        )
        self.stream.flush()

    def close(self, progress: ImportProgress) -> None:
        self.show(progress)


def default_view(stream: TextIO = sys.stderr) -> ProgressView:
    return TerminalBar(stream) if stream.isatty() else PlainLines(stream)
