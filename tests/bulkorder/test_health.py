"""Readiness checks against real stores: each failure is named, the others still pass."""

from __future__ import annotations

from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from bulkorder.domain.application import Orders
from bulkorder.health import PROBE_KEY, Readiness
from bulkorder.storage.folder_store import FolderBlobStore
from tests.fixtures.orders import sqlite_env


def _orders(path: Path, dbname: str | None = None) -> Orders:
    env = sqlite_env(path)
    if dbname is not None:
        env["SQLITE_DBNAME"] = dbname
    return Orders(env=env)


async def test_ready_when_every_store_answers(temporal_env: WorkflowEnvironment, tmp_path: Path) -> None:
    orders = _orders(tmp_path / "events.sqlite")
    blobs = FolderBlobStore(tmp_path / "blobs")
    try:
        results = await Readiness(temporal_env.client, orders, blobs).check()
    finally:
        orders.close()
    assert {result.name: result.ok for result in results} == {"temporal": True, "event_store": True, "blob_store": True}
    assert blobs.exists(PROBE_KEY), "the probe blob is written once, then read back"


async def test_a_read_only_event_store_is_not_ready(temporal_env: WorkflowEnvironment, tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    _orders(path).close()  # the tables exist
    read_only = _orders(path, f"file:{path}?mode=ro")
    try:
        results = await Readiness(temporal_env.client, read_only, FolderBlobStore(tmp_path / "blobs")).check()
    finally:
        read_only.close()
    by_name = {result.name: result for result in results}
    assert not by_name["event_store"].ok and "refused a write" in by_name["event_store"].detail
    assert by_name["temporal"].ok and by_name["blob_store"].ok
