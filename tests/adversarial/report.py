"""The one-line report every adversarial case prints, and a peak-RSS probe for bombs.

Each case in ``tests/adversarial`` plays one attacker (a Temporal client on the namespace,
a bucket writer, a hostile file, a hostile HTTP client), asserts the refusal, that nothing
was recorded wrongly and, for bombs, how far the process's memory grew; then it calls
:func:`report`. ``tests/adversarial/conftest.py`` prints the table at the end of the run.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

#: Peak-RSS growth a bomb may cause in the process that meets it.
MAX_BOMB_GROWTH_BYTES = 100 * 2**20


@dataclass
class AttackLine:
    attacker: str  # "temporal client", "bucket writer", "hostile file", "http client"
    attack: str
    outcome: str  # what happened, e.g. "refused: <first words of the message>"
    peak_rss_growth: int | None = None  # bytes, for bombs

    def __str__(self) -> str:
        rss = "" if self.peak_rss_growth is None else f"  peak RSS +{self.peak_rss_growth / 2**20:,.1f} MiB"
        return f"ATTACK {self.attacker:<16} {self.attack:<52} {self.outcome}{rss}"


#: Every line reported in this session; printed at the end by conftest.py.
REPORTED: list[AttackLine] = []


def report(line: AttackLine) -> None:
    REPORTED.append(line)
    print(line, flush=True)


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def children_peak_rss_bytes() -> int:
    """The largest peak RSS of any waited-for child process (e.g. a CLI run in a subprocess)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
