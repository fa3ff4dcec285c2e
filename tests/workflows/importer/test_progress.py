"""What the user sees while importing: a bar on a terminal, plain lines in a log."""

from __future__ import annotations

import io

from workflows.importer.progress import ImportProgress, PlainLines, TerminalBar


def progress_half_done() -> ImportProgress:
    progress = ImportProgress(source="items.ndjson", total_bytes=200_000_000)
    progress.started -= 10.0  # ten seconds in
    progress.bytes_done = 100_000_000
    progress.items = 1_500_000
    progress.rejected = 3
    return progress


def test_terminal_bar_redraws_one_line_with_items_rate_size_and_eta() -> None:
    out = io.StringIO()
    bar = TerminalBar(out, width=10)
    bar.show(progress_half_done())
    bar.close(progress_half_done())
    first, second = out.getvalue().split("\r")[1:]
    assert first.startswith("[#####.....]  50%  1,500,000 items  ")
    assert "items/s  100.0/200.0 MB  ETA 0:10  3 rejected\x1b[K" in first
    assert second.endswith("\x1b[K\n")  # closed: the next output starts on a new line


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
