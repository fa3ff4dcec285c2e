"""A service's own entry point: ``OrderClient.store_items`` from an iterator of ready dicts.

    python -m tests.benchmarks.bench_store_items [--items 500000] [--batch-size 5000]

The same stores a deployment builds (``Settings``: the folder blob store, the ref sealer,
encryption on with a keyring in a temporary home), the same items, in one run: the
writers' compiled path (msgspec converts, checks and packs in C, then seal and write)
against every batch through pydantic (the path before; forced by refusing the fast
conversion), alternating, best of ``--rounds``. Items/s of wall time and CPU seconds per
million items (this process: validation, packing, zstd, sha-256 and AES run in its
threads). Temporal is not involved: ``store_items`` sends nothing to it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import bulkorder.workflows.item_batches as item_batches
from bulkorder.domain.sample_items import generate_items
from bulkorder.settings import Settings
from bulkorder.storage.batches import BatchStore
from tests.benchmarks.measure import machine


def store(home: Path) -> BatchStore:
    settings = Settings.from_env({"BULKORDER_HOME": str(home), "BULKORDER_REF_SECRET": "bench-secret-0123456789abcdef0123"})
    return BatchStore(settings.blob_store.open(), sealer=settings.seal.sealer(settings.home), protection=settings.blob_protection())


def measure(batches: BatchStore, items: list[dict], batch_size: int, fast: bool) -> tuple[float, float]:
    original = item_batches.convert
    if not fast:
        item_batches.convert = lambda part: None  # type: ignore[assignment]
    try:
        started, cpu = time.perf_counter(), time.process_time()
        refs = asyncio.run(item_batches.store_item_batches(
            batches, items, batch_size=batch_size, batch_id_prefix=None, leases=None, order_id=f"bench/{fast}"
        ))
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    finally:
        item_batches.convert = original
    assert sum(ref.item_count for ref in refs) == len(items)
    return len(items) / seconds, cpu_seconds * 1e6 / len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=500_000)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    items = list(generate_items(args.items))
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at start (the machine may be shared)")
    best: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as home:
        batches = store(Path(home))
        for round_ in range(args.rounds):
            for name, fast in (("compiled path", True), ("pydantic path", False)):
                rate, cpu = measure(batches, items, args.batch_size, fast)
                print(f"round {round_ + 1}: {name}: {rate:,.0f} items/s, {cpu:.2f} CPU-s per million items", flush=True)
                if name not in best or rate > best[name][0]:
                    best[name] = (rate, cpu)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print()
    print(f"| store_items, {args.items:,} ready dicts, batches of {args.batch_size:,}, encrypted, best of {args.rounds} | items/s | CPU-s per million |")
    print("| --- | ---: | ---: |")
    for name, (rate, cpu) in best.items():
        print(f"| {name} | {rate:,.0f} | {cpu:.2f} |")
    fast, slow = best["compiled path"], best["pydantic path"]
    print(f"compiled / pydantic: {fast[0] / slow[0]:.2f}x items/s (target: ≥ 150,000 items/s)")


if __name__ == "__main__":
    main()
