"""The latency a service sees while the fleet runs (tests/benchmarks/bench_fleet.py): in a
loop, a data key for a name of its own, a ``create`` (Update-With-Start) of a new empty
order, a batch stored and added to an open order (``add_batches``), then a pause; each
create then taken apart, phase by phase, from its workflow's history
(tests/benchmarks/create_phases.py)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

from bulkorder import Settings, open_runtime
from bulkorder.domain.identity import OrderName
from bulkorder.domain.sample_items import generate_items
from bulkorder.encryption import data_keys
from bulkorder.workflows import client as order_client_module
from tests.benchmarks.create_phases import create_phases, event_timeline


async def probe(
    env: dict[str, str], stop: asyncio.Event, every: float
) -> tuple[list[float], list[float], dict[str, list[float]]]:
    """Latencies (s) of create and add_batches, one each per ``every`` seconds, until ``stop``;
    and where the creates' time went, phase by phase (from their workflows' histories)."""
    creates: list[float] = []
    adds: list[float] = []
    created: list[str] = []
    phases_client: list[float] = []
    settings = Settings.from_env(env)
    keys = data_keys(settings.encryption_settings, settings.blob_store, settings.order_identity())
    own_keys: list[float] = []
    make_key = order_client_module.make_new_order_key

    async def timed_make_key(*args: object) -> None:
        """The create's own new key, timed (the rest of its call is the Update-With-Start)."""
        keyed = time.perf_counter()
        await make_key(*args)  # type: ignore[arg-type]
        own_keys.append(time.perf_counter() - keyed)

    order_client_module.make_new_order_key = timed_make_key  # type: ignore[assignment]
    async with open_runtime(settings) as runtime:
        client = runtime.order_client()
        target = f"probe/probe-target-{uuid.uuid4().hex[:6]}"
        await client.create(target)
        items = list(generate_items(10, seed=11))
        index = 0
        while not stop.is_set():
            index += 1
            # What a create's client spends first, apart: the new order's data key (its
            # payloads are sealed with it; create_for_order, as OrderClient.create makes
            # it), made for a name of its own, never created.
            spare = f"probe/key-{uuid.uuid4().hex[:10]}"
            keyed = time.perf_counter()
            await asyncio.to_thread(keys.create_for_order, spare)
            phases_client.append(time.perf_counter() - keyed)
            name = OrderName("probe", f"probe-{uuid.uuid4().hex[:10]}")
            started = time.perf_counter()
            await client.create(name)
            creates.append(time.perf_counter() - started)
            created.append(client.identity.workflow_id(name))
            refs = await client.store_items(items, batch_id_prefix=f"probe-{index:05d}", order_id=target)
            started = time.perf_counter()
            await client.add_batches(target, refs)
            adds.append(time.perf_counter() - started)
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                pass
        phases = {"client: a new order's data key (S3: put and head at once)": phases_client}
        own = own_keys[1:]  # the first is the probe target's
        phases["client: the create's own data key"] = own
        phases["client: the Update-With-Start call (the rest)"] = [c - k for c, k in zip(creates, own)]
        phases.update(await create_phases(client.client, created))
        slowest = sorted(range(len(creates)), key=lambda i: -creates[i])[:3]
        timelines = {f"{creates[i] * 1000:.0f} ms": await event_timeline(client.client, created[i]) for i in slowest}
    order_client_module.make_new_order_key = make_key  # type: ignore[assignment]
    if env.get("BULKORDER_BENCH_PROBES"):  # each probe's figures, in order, for a closer look
        Path(env["BULKORDER_BENCH_PROBES"]).write_text(
            json.dumps({"create": creates, "add_batches": adds, **phases, "slowest": timelines})
        )
    return creates, adds, phases
