"""How far an import is: counters the pipeline updates, and two ways to show them.

On a terminal, a bar redrawn in place on stderr (items, items/s, MB, ETA); otherwise a
plain line every few seconds, which reads well in CI logs and ``nohup`` files. Written
here rather than taken from a library: it is forty lines, and the importer's main
process stays free of another dependency.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Protocol, TextIO


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
    """``[#####.....]  42%  420,000 items  151,230 items/s  210.3/500.0 MB  ETA 0:02``"""

    interval = 0.2

    def __init__(self, stream: TextIO = sys.stderr, width: int = 24) -> None:
        self.stream = stream
        self.width = width

    def show(self, progress: ImportProgress) -> None:
        if progress.total_bytes:
            fraction = min(progress.bytes_done / progress.total_bytes, 1.0)
            filled = int(fraction * self.width)
            bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {fraction * 100:3.0f}%"
            size = f"{_mb(progress.bytes_done)}/{_mb(progress.total_bytes)} MB"
        else:
            bar, size = "[importing]", f"{_mb(progress.bytes_done)} MB"
        line = (
            f"{bar}  {progress.items:,} items  {progress.items_per_second:,.0f} items/s  {size}"
            f"  ETA {_duration(progress.eta_seconds())}"
        )
        if progress.rejected:
            line += f"  {progress.rejected:,} rejected"
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()

    def close(self, progress: ImportProgress) -> None:
        self.show(progress)
        self.stream.write("\n")
        self.stream.flush()


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
