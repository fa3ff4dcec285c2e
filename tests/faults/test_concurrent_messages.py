"""Fault 5: a storm of concurrent ``add_batches`` signals and updates from 8 clients,
racing at least three continue-as-new hand-overs."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from bulkorder.domain.items import validate_item_dicts
from bulkorder.domain.sample_items import generate_items
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.folder_store import FolderBlobStore
from tests.faults.harness import (
    refs_expectation,
    deployment_client,
    closed,
    FULL,
    SCALE,
    FaultLine,
    Stopwatch,
    check_agreement,
    check_replays,
    report,
    case_orders,
    stack_env,
    worker_process,
)
from tests.fixtures.orders import TEST_IDENTITY, sqlite_env
from bulkorder.workflows.client import OrderClient
from bulkorder.workflows.messages import OrderLimits

ITEMS_PER_BATCH = 10
#: Temporal admits 10 in-flight updates per workflow; the clients split that budget.
UPDATES_IN_FLIGHT = 10


def limits_for_scale() -> OrderLimits:
    # Full scale: the defaults (1,000 updates / 5,000 signals per run). Reduced: fewer
    # messages, so lower limits keep the number of hand-overs the same.
    return OrderLimits() if SCALE is FULL else OrderLimits(max_updates=250, max_signals=400)


async def test_concurrent_signals_and_updates_across_continue_as_new(
    temporal_env: WorkflowEnvironment, temporal_address: str, task_queue: str, tmp_path: Path
) -> None:
    order_id = f"customer-1/storm-{uuid.uuid4().hex[:10]}"
    store_env = sqlite_env(tmp_path / "events.sqlite")
    batches = BatchStore(FolderBlobStore(tmp_path / "blobs"))
    # The worker in a process of its own, as deployed: the clients' storm does not share
    # its interpreter.
    env = stack_env(
        home=tmp_path, temporal_address=temporal_address, task_queue=task_queue,
        event_store_env=store_env, blob_env={"BULKORDER_BLOB_DIR": str(tmp_path / "blobs")},
    )
    orders = case_orders(env, store_env)
    worker = worker_process(env, tmp_path / "worker.log")
    base = batches.write(validate_item_dicts(list(generate_items(ITEMS_PER_BATCH))), batch_id="base")
    refs = [dataclasses.replace(base, batch_id=f"{order_id}-{index:06d}") for index in range(SCALE.messages)]
    limits = limits_for_scale()
    # Eight clients, each its own connection, as eight importer processes would have. They
    # share Temporal's budget of 10 in-flight updates per workflow (see docs/consistency.md).
    clients = [
        OrderClient(
            await deployment_client(env), task_queue=task_queue, limits=limits,
            max_concurrent_updates=max(1, UPDATES_IN_FLIGHT // SCALE.message_clients),
        )
        for _ in range(SCALE.message_clients)
    ]
    watch = Stopwatch()
    rng = random.Random(6)
    plan = [(clients[index % len(clients)], ref, rng.random() < 0.5) for index, ref in enumerate(refs)]
    signals = sum(1 for _, _, as_update in plan if not as_update)
    await worker.start()
    try:
        await clients[0].create(order_id)
        await asyncio.gather(*(client.add_batches(order_id, [ref], wait=as_update) for client, ref, as_update in plan))
        await clients[1].submit(order_id)
        final = await closed(clients[2], order_id)
        runs = await clients[0].run_histories(order_id)
        agreement = check_agreement(orders, order_id, final, **refs_expectation(refs))
        replayed = await check_replays(clients[0].client, [TEST_IDENTITY.workflow_id(order_id)])
    finally:
        await worker.stop()
        orders.close()
    assert len(runs) >= 4, f"expected at least three continue-as-new hand-overs, got {len(runs) - 1}"
    assert replayed == len(runs)
    report(FaultLine(
        f"{SCALE.messages:,} concurrent add_batches from {len(clients)} clients", agreement.expected_items,
        agreement.recorded_items, agreement.duplicates, watch.seconds,
        f"{signals:,} signals + {SCALE.messages - signals:,} updates, {len(runs) - 1} hand-overs, {replayed} runs replayed",
    ))
