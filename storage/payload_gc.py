"""Claim-check payloads of workflows Temporal no longer holds.

A large payload of an order's workflow is stored under that workflow's scope,
``payloads/w/<workflow ID>/<sha[:2]>/<sha>`` (``ClaimCheckCodec.encode_for``). Only
Temporal's history refers to it; once the namespace's retention has dropped the
workflow (or an operator deleted it), nothing ever will again. So a scoped payload is
collected when

1. it is older than the payload grace period — the sweep's grace, but never less than
   :data:`PAYLOAD_MIN_GRACE`: a client stores a workflow's input *before* the start
   reaches Temporal, and in that moment Temporal does not know the workflow yet — and
2. Temporal answers "not found" for its workflow ID (any run: an ID reused by a new run,
   a create retried after deletion, keeps every payload of the scope).

Unscoped payloads (other workflows, the codec server's ``/encode``, bulkorder before
scopes) cannot be attributed to a workflow and are kept, counted in the report.
Payloads of erased orders are unreadable anyway (sealed with the destroyed key).

Memory holds the scoped keys being decided (a few per workflow: only payloads over the
claim-check threshold are stored at all).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from bulkorder.storage.blob_store import BlobInfo, CollectableBlobStore
from bulkorder.storage.claim_check_ref import KEY_PREFIX, key_scope
from bulkorder.storage.errors import ClaimCheckError
from bulkorder.storage.gc import SweepTallies

#: The least age of a payload gc may delete, whatever grace it is given (seconds).
PAYLOAD_MIN_GRACE = 3600.0
DELETE_BATCH = 1_000

KEPT_YOUNG = "younger than the payload grace period"
KEPT_LIVE = "its workflow is still in Temporal"
KEPT_UNSCOPED = "not scoped to an order's workflow"
KEPT_NO_TEMPORAL = "no Temporal server to ask about its workflow"

#: Which of these workflow IDs Temporal holds no run of (``None``: nobody to ask).
WorkflowsGone = Callable[[list[str]], Awaitable[set[str]]]


@dataclass
class PayloadSweepReport(SweepTallies):
    workflows_asked: int = 0
    workflows_gone: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**self.tallies_json(), "workflows_asked": self.workflows_asked, "workflows_gone": self.workflows_gone}


async def sweep_payloads(
    blobs: CollectableBlobStore,
    gone: WorkflowsGone | None,
    *,
    grace: float,
    dry_run: bool,
    prefix: str = KEY_PREFIX,
    now: float | None = None,
) -> PayloadSweepReport:
    """Delete (unless ``dry_run``) the scoped payloads of workflows ``gone`` says Temporal no
    longer holds, older than ``max(grace, PAYLOAD_MIN_GRACE)``."""
    grace = max(grace, PAYLOAD_MIN_GRACE)
    report = PayloadSweepReport(dry_run=dry_run, grace_seconds=grace)
    cutoff = (time.time() if now is None else now) - grace
    by_workflow: dict[str, list[BlobInfo]] = {}
    for info in blobs.iter_blob_infos(prefix + "/"):
        report.scanned.add(info.size)
        try:
            scope = key_scope(info.key, prefix)
        except ClaimCheckError:
            scope = None  # not written by bulkorder: never ours to delete
        if scope is None:
            report.keep(KEPT_UNSCOPED, info.size)
        elif info.modified > cutoff:
            report.keep(KEPT_YOUNG, info.size)
        else:
            by_workflow.setdefault(scope, []).append(info)
    if not by_workflow:
        return report
    if gone is None:
        for infos in by_workflow.values():
            for info in infos:
                report.keep(KEPT_NO_TEMPORAL, info.size)
        return report
    report.workflows_asked = len(by_workflow)
    finished = await gone(sorted(by_workflow))
    report.workflows_gone = len(finished)
    doomed: list[BlobInfo] = []
    for workflow_id, infos in by_workflow.items():
        for info in infos:
            if workflow_id in finished:
                doomed.append(info)
            else:
                report.keep(KEPT_LIVE, info.size)
    for start in range(0, len(doomed), DELETE_BATCH):
        chunk = doomed[start : start + DELETE_BATCH]
        if not dry_run:
            blobs.delete_many([info.key for info in chunk])
        for info in chunk:
            report.deleted.add(info.size)
    return report
