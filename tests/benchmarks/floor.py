"""The floor: what one item costs at the least, on one core, with bulkorder's own code.

    python -m tests.benchmarks.floor [--items 200000]

Reads an NDJSON file into memory, cut into batches of lines as the importer's main process
hands them to an encoding process, then times, in this process alone, exactly the work no
import can skip: split each batch into lines, parse and validate them (the importer's compiled
decoder), pack them with their counters (msgpack), compress and frame each batch (zstd),
seal it with the order's data key (AES-256-GCM, as every deployment stores batches since
issue 12) and hash it (sha-256) — ``bulkorder.importer.stage``'s fast path, minus every
process, pipe, upload, signal and event. The cyclic garbage collector is off while it
runs, as it is in the importer's encoding processes (``encoder_process``), which do this
work in an import. CPU seconds per million items; an import end to end is compared with
this figure (bench_import, bench_fleet).

Each figure is the median of :data:`FLOOR_RUNS` runs, with their range: one run alone
swings too much on a shared virtual machine to divide by.

``--legacy`` also prints the floor as it was measured before 2026-12-01 (no sealing, the
collector on), so older figures in docs/benchmarks.md can be compared.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bulkorder.importer import fast_items
from bulkorder.importer.stage import ndjson_lines
from bulkorder.storage.batches import encode_packed_batch
from bulkorder.storage.encryption.envelope import DATA_KEY_BYTES, DataKey
from tests.importer.files import write_ndjson


def floor_cpu_seconds_per_million(
    path: Path, batch_size: int = 5_000, *, sealed: bool = True, collector: bool = False
) -> tuple[float, int]:
    """(CPU seconds per million items, items) for the items of ``path``, on one core.

    ``sealed``: each batch sealed with a data key (as deployed); ``collector``: the cyclic
    garbage collector left on (the floor before 2026-12-01: both ``sealed=False, collector=True``)."""
    # The input cut into batches as the importer's main process hands them over (bytes of
    # ``batch_size`` lines); splitting each into lines is timed, as the stage does it
    # (until 2026-12-02 the lines were split before the clock started: ~0.3 CPU-s per
    # million, ~4%, left out).
    all_lines = path.read_bytes().split(b"\n")
    if all_lines and not all_lines[-1]:
        all_lines.pop()
    chunks = [b"\n".join(all_lines[start : start + batch_size]) + b"\n" for start in range(0, len(all_lines), batch_size)]
    count = sum(1 for line in all_lines if line)
    del all_lines
    data_key = DataKey("floor-key", os.urandom(DATA_KEY_BYTES)) if sealed else None
    was_enabled = gc.isenabled()
    gc.collect()
    if not collector:
        gc.disable()
    try:
        started = time.process_time()
        for number, chunk in enumerate(chunks):
            records = ndjson_lines(chunk)
            items = fast_items.decode_records(records)
            batch = None if items is None else fast_items.pack(items)
            if batch is None:
                raise ValueError(f"the floor's input has an invalid item in batch {number + 1} of {batch_size:,} lines")
            encode_packed_batch(batch.raw, batch.item_count, batch.quantity, dict(batch.totals), data_key=data_key)
            del records, items, batch
        seconds = time.process_time() - started
    finally:
        if was_enabled:
            gc.enable()
    return seconds * 1e6 / count, count


#: Runs of the floor per figure: on these shared virtual machines one run of it swings by up
#: to 40% from the next (7.1 to 10.1 CPU-s per million, five runs in a row, no steal time):
#: the median of five is the figure, and their range is printed beside it.
FLOOR_RUNS = 5


@dataclass(frozen=True)
class Floor:
    """The floor over several runs: ``median`` is the figure compared with, ``low``/``high`` its range."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def low(self) -> float:
        return min(self.runs)

    @property
    def high(self) -> float:
        return max(self.runs)

    def describe(self) -> str:
        return f"{self.median:.2f} (median of {len(self.runs)} runs, {self.low:.2f}-{self.high:.2f})"


def measure_floor(path: Path, batch_size: int = 5_000, *, runs: int = FLOOR_RUNS, **how: bool) -> Floor:
    """:func:`floor_cpu_seconds_per_million` ``runs`` times over ``path``."""
    return Floor(tuple(floor_cpu_seconds_per_million(path, batch_size, **how)[0] for _ in range(runs)))


def servers_bound(servers: dict[str, float], floor: float) -> str:
    """What the servers of a run (name: CPU-s per million items) cost against ``floor``,
    and the ratio no importer could go below on their stack."""
    total = sum(servers.values())
    return (f"the servers alone ({', '.join(servers)}): {total:.1f} CPU-s per million = {total / floor:.2f}x the "
            f"floor, so no importer could bring this stack below {1 + total / floor:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--legacy", action="store_true", help="also the floor as measured before 2026-12-01")
    parser.add_argument("--runs", type=int, default=FLOOR_RUNS, help="runs of each floor (the median is the figure)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "items.ndjson"
        write_ndjson(path, args.items)
        floor = measure_floor(path, runs=args.runs)
        legacy = measure_floor(path, runs=args.runs, sealed=False, collector=True) if args.legacy else None
    print(f"floor: {floor.describe()} CPU-s per million items ({args.items:,} items, one core, sealed, no cyclic gc): "
          f"at most {1e6 / floor.median:,.0f} items/s per core")
    if legacy is not None:
        print(f"floor as before 2026-12-01 (plaintext, cyclic gc on): {legacy.describe()} CPU-s per million items")


if __name__ == "__main__":
    main()
