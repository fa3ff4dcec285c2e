"""After retention or erasure, the analysts' tools say the items were purged (when),
instead of failing on missing blobs; an export of the whole log leaves them out."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta
from pathlib import Path

import pytest

from bulkorder.data_lifecycle import erase_order, purge_closed_orders
from bulkorder.domain.errors import ItemsPurgedError
from bulkorder.domain.summary import OrderChange
from tests.fixtures.analysts import AnalystStore, write_order


def close(store: AnalystStore, order_id: str) -> None:
    store.orders.record(OrderChange(order_id=order_id, cancel_reason="done with it"))


def test_a_purged_order_keeps_its_state_and_refuses_its_items_saying_when(analyst_store: AnalystStore, tmp_path: Path) -> None:
    write_order(analyst_store, "pur-1", [30, 20])
    close(analyst_store, "pur-1")
    asyncio.run(purge_closed_orders(analyst_store.batches.blobs, analyst_store.orders, None, closed_before=timedelta(0)))
    with analyst_store.analyst() as analyst:
        state = analyst.state("pur-1", version=2)  # before the purge: the blobs are gone anyway
        assert state.summary.item_count == 30 and state.items_purged_at is not None and state.erased_at is None
        with pytest.raises(ItemsPurgedError, match="'pur-1': its items were purged by retention at"):
            analyst.stream_items("pur-1", io.BytesIO(), version=2)
        with pytest.raises(ItemsPurgedError):
            list(analyst.item_batches("pur-1"))
        types = [record.type for record in analyst.events("pur-1")]
        assert types[-1] == "ItemsPurged"


def test_an_export_of_the_log_leaves_purged_items_out(analyst_store: AnalystStore, tmp_path: Path) -> None:
    write_order(analyst_store, "pur-2", [40])
    close(analyst_store, "pur-2")
    asyncio.run(  # no open order yet: no Temporal needed to know what is pending
        erase_order(analyst_store.batches.blobs, analyst_store.orders, None, "pur-2", by="dpo", reason="request")
    )
    write_order(analyst_store, "live-2", [25], seed=11)
    with analyst_store.analyst() as analyst:
        result = analyst.export_parquet(tmp_path / "export")
        state = analyst.state("pur-2")
    assert (result.items, result.purged_batches) == (25, 1)
    assert state.erased_by == "dpo" and state.erasure_reason == "request"


def test_the_summaries_read_model_says_a_purged_orders_batches_were_purged(analyst_store: AnalystStore) -> None:
    write_order(analyst_store, "pur-3", [10, 10])
    close(analyst_store, "pur-3")
    asyncio.run(purge_closed_orders(analyst_store.batches.blobs, analyst_store.orders, None, closed_before=timedelta(0)))
    with analyst_store.analyst() as analyst:
        analyst.project()
        report = analyst.report()
    reasons = {entry.reason for entry in report.skipped}
    assert reasons == {"items purged (retention or erasure): not counted"} and len(report.skipped) == 2
    row = next(row for row in report.orders if row.order_id == "pur-3")
    assert row.item_count == 20  # the counters come from the events, as before
