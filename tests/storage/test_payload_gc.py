"""The claim-check payloads' sweep on a folder store: a scoped payload goes once its
workflow is gone and it is older than the payload grace; everything else stays, counted
by reason."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from temporalio.api.common.v1 import Payload

from bulkorder.storage.claim_check import ClaimCheck, ClaimCheckCodec
from bulkorder.storage.folder_store import FolderBlobStore
from bulkorder.storage.payload_gc import (
    KEPT_LIVE,
    KEPT_NO_TEMPORAL,
    KEPT_UNSCOPED,
    KEPT_YOUNG,
    PAYLOAD_MIN_GRACE,
    sweep_payloads,
)

HOUR = 3600.0


def large(tag: str) -> Payload:
    return Payload(metadata={"encoding": b"binary/plain"}, data=os.urandom(200_000) + tag.encode())


async def stored(store: FolderBlobStore, workflow_id: str | None, tag: str, age: float) -> str:
    [reference] = await ClaimCheckCodec(store).encode_for([large(tag)], workflow_id)
    key = ClaimCheck.from_payload(reference).key
    then = time.time() - age
    os.utime(store.root / key, (then, then))
    return key


async def test_payloads_of_gone_workflows_go_and_the_rest_stay(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path)
    gone_old = await stored(store, "order-gone", "a", 2 * HOUR)
    gone_young = await stored(store, "order-gone", "b", 10.0)
    live_old = await stored(store, "order-live", "c", 2 * HOUR)
    unscoped_old = await stored(store, None, "d", 2 * HOUR)
    other_workflow = await stored(store, "Not-An-Order", "e", 2 * HOUR)  # stored unscoped
    assert gone_old.startswith("payloads/w/order-gone/") and not other_workflow.startswith("payloads/w/")
    asked: list[list[str]] = []

    async def gone(workflow_ids: list[str]) -> set[str]:
        asked.append(workflow_ids)
        return {"order-gone"} & set(workflow_ids)

    dry = await sweep_payloads(store, gone, grace=0.0, dry_run=True)
    assert dry.deleted.blobs == 1 and store.exists(gone_old)
    report = await sweep_payloads(store, gone, grace=0.0, dry_run=False)

    assert asked[-1] == ["order-gone", "order-live"]  # only workflows with old enough payloads
    assert report.grace_seconds == PAYLOAD_MIN_GRACE  # grace 0 asked, the floor applied
    assert report.deleted.blobs == 1 and not store.exists(gone_old)
    assert {reason: tally.blobs for reason, tally in report.kept.items()} == {KEPT_YOUNG: 1, KEPT_LIVE: 1, KEPT_UNSCOPED: 2}
    for key in (gone_young, live_old, unscoped_old, other_workflow):
        assert store.exists(key)


async def test_without_temporal_nothing_scoped_is_deleted(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path)
    key = await stored(store, "order-x", "a", 2 * HOUR)
    report = await sweep_payloads(store, None, grace=0.0, dry_run=False)
    assert report.kept[KEPT_NO_TEMPORAL].blobs == 1 and store.exists(key)


async def test_a_key_that_forges_a_scope_is_never_swept(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path)
    sha = hashlib.sha256(b"x").hexdigest()
    store.put(f"payloads/w/not-an-order/{sha[:2]}/{sha}", b"x")  # not a scope bulkorder writes

    async def everything_gone(workflow_ids: list[str]) -> set[str]:
        return set(workflow_ids)

    report = await sweep_payloads(store, everything_gone, grace=0.0, dry_run=False, now=time.time() + 2 * HOUR)
    assert report.kept[KEPT_UNSCOPED].blobs == 1 and report.deleted.blobs == 0
