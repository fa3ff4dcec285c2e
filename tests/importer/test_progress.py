"""What the user sees while importing: a bar on a terminal, plain lines in a log."""

from __future__ import annotations

import io
import re

from rich.console import Console

from bulkorder.importer.progress import ImportProgress, PlainLines, TerminalBar


def progress_half_done() -> ImportProgress:
    progress = ImportProgress(source="items.ndjson", total_bytes=200_000_000)
    progress.started -= 10.0  # ten seconds in
    progress.bytes_done = 100_000_000
    progress.items = 1_500_000
    progress.rejected = 3
    return progress


def terminal(out: io.StringIO) -> Console:
    """A terminal of 120 columns, without colours: what rich draws, as text."""
    return Console(file=out, force_terminal=True, width=120, color_system=None)


def drawn_lines(out: io.StringIO) -> list[str]:
    """Each redraw of the line, its control sequences (cursor, erase) removed."""
    return [ANSI.sub("", part) for part in out.getvalue().split("\r")]


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_terminal_bar_redraws_one_line_with_items_rate_size_and_eta() -> None:
    out = io.StringIO()
    bar = TerminalBar(out, width=10, console=terminal(out))
    bar.show(progress_half_done())
    bar.close(progress_half_done())
    first, *_, last = drawn_lines(out)
    assert first.startswith("━━━━━      ")  # half of the 10 columns
    assert " 50% 1,500,000 items  " in first
    assert "items/s  100.0/200.0 MB  ETA 0:10  3 rejected" in first
    assert last.endswith("3 rejected\n")  # closed: the next output starts on a new line
    assert out.getvalue().endswith("\x1b[?25h")  # and the cursor is back


def test_terminal_bar_of_a_pipe_has_no_share_and_no_eta() -> None:
    piped = ImportProgress(source="-", total_bytes=None)
    piped.bytes_done, piped.items = 5_000_000, 10_000
    out = io.StringIO()
    bar = TerminalBar(out, width=10, console=terminal(out))
    bar.show(piped)
    bar.close(piped)
    last = drawn_lines(out)[-1]
    assert "10,000 items" in last and "5.0 MB  ETA --:--" in last and "%" not in last


def test_plain_lines_for_logs_and_no_eta_for_a_pipe() -> None:
    out = io.StringIO()
    PlainLines(out).show(progress_half_done())
    line = out.getvalue()
    assert line.startswith("import items.ndjson: 1,500,000 items, ")
    assert line.endswith("items/s, 100.0 MB (50%), ETA 0:10, 3 rejected\n")

    piped = ImportProgress(source="-", total_bytes=None)
    piped.bytes_done, piped.items = 5_000_000, 10_000
    out = io.StringIO()
    PlainLines(out).show(piped)
    assert "ETA" not in out.getvalue() and out.getvalue().endswith(" 5.0 MB\n")
