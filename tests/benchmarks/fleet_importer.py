"""One importer process of the fleet benchmark: imports its orders one after another
through the public API (``import_file``, the same pipeline as ``bulkorder import``), in
one process, so 50 orders do not pay for 50 interpreter start-ups.

    python -m tests.benchmarks.fleet_importer ORDER_ID=FILE [ORDER_ID=FILE ...]

Settings come from the environment, as for ``bulkorder import``. Prints one JSON line per
order (``order_id``, ``items``, ``seconds``) and ``done`` at the end; exits 1 at the first
order that fails.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from bulkorder import ImportOptions, Settings, import_file, open_runtime
from bulkorder.importer import EncoderPool


async def run(jobs: list[tuple[str, str]], customer: str, batch_size: int, workers: int) -> None:
    # One pool of encoding processes for all of this importer's orders, as a service that
    # imports file after file would keep: started once, not once per order.
    encoders = EncoderPool(workers)
    try:
        async with open_runtime(Settings.from_env()) as runtime:
            client = runtime.order_client()
            for order_id, path in jobs:
                options = ImportOptions(create_customer=customer, batch_size=batch_size)
                started = time.perf_counter()
                summary = await import_file(client, runtime.orders, order_id, path, options, encoders=encoders)
                seconds = time.perf_counter() - started
                print(json.dumps({"order_id": order_id, "items": summary.items, "seconds": seconds}), flush=True)
    finally:
        encoders.shutdown()
    print("done", flush=True)


def main() -> None:
    args = sys.argv[1:]
    customer, batch_size, workers = "fleet", 5_000, 1
    jobs = []
    for arg in args:
        if arg.startswith("--customer="):
            customer = arg.split("=", 1)[1]
        elif arg.startswith("--batch-size="):
            batch_size = int(arg.split("=", 1)[1])
        elif arg.startswith("--workers="):
            workers = int(arg.split("=", 1)[1])
        else:
            order_id, _, path = arg.partition("=")
            jobs.append((order_id, path))
    asyncio.run(run(jobs, customer, batch_size, workers))


if __name__ == "__main__":
    main()
