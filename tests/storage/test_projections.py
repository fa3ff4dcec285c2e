"""The read-model projections on a real SQLite file and a real PostgreSQL schema: a run
stopped or failed mid-way and restarted ends exactly where one uninterrupted run does."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from eventsourcing.persistence import Tracking

from domain.summary import OrderChange, Rejection
from storage.projections import OrderSummaryProjection, PollingProjectionRunner, TimeIndexProjection
from storage.summaries import SUMMARY_VIEW, PostgresSummaries, SQLiteSummaries
from storage.time_index import TIME_INDEX_VIEW, PostgresTimeIndex, SQLiteTimeIndex
from storage.views import ViewMovedError, open_view
from storage.errors import BlobNotFoundError
from tests.fixtures.analysts import AnalystStore, write_order


def _write_orders(store: AnalystStore) -> dict[str, Any]:
    a = write_order(store, "proj-a", [5, 7, 3, 9, 4], seed=1)
    b = write_order(store, "proj-b", [8, 2, 6], seed=2, per_record=2)
    c = write_order(store, "proj-c", [4, 4], seed=3)
    store.orders.record(OrderChange(order_id="proj-a", rejections=[Rejection("x-1", "invalid batch ref: bad key")]))
    store.orders.record(OrderChange(order_id="proj-a", submit=True))
    store.orders.record(OrderChange(order_id="proj-c", cancel_reason="customer changed their mind"))
    return {"a": a, "b": b, "c": c}


def _snapshot(summaries: Any, index: Any) -> dict[str, Any]:
    return {
        "orders": [row.to_dict() for row in summaries.summaries()],
        "skus": [tuple(row) for row in summaries.fetch("SELECT aggregate_id, sku, quantity, lines FROM {bulkorder_order_skus} ORDER BY aggregate_id, sku")],
        "times": [tuple(row) for row in index.fetch("SELECT aggregate_id, version, at_us FROM {bulkorder_order_times} ORDER BY aggregate_id, version")],
        "positions": (summaries.position(), index.position()),
    }


def test_stopped_and_failed_runs_resume_to_the_same_read_model(analyst_store: AnalystStore) -> None:
    written = _write_orders(analyst_store)
    config, orders = analyst_store.config, analyst_store.orders
    end = orders.recorder.max_notification_id()
    summaries_view = open_view(config, SUMMARY_VIEW, SQLiteSummaries, PostgresSummaries)
    index_view = open_view(config, TIME_INDEX_VIEW, SQLiteTimeIndex, PostgresTimeIndex)
    summaries, index = summaries_view.view, index_view.view
    try:
        def projections() -> tuple[OrderSummaryProjection, TimeIndexProjection]:
            summary_projection = OrderSummaryProjection(summaries, analyst_store.batches.read)
            index_projection = TimeIndexProjection(index)
            summary_projection.page_size = index_projection.page_size = 3  # several pages, several commits
            return summary_projection, index_projection

        # 1. Stopped after its first page (Ctrl-C, SIGTERM: the stop event).
        stop = threading.Event()
        first = PollingProjectionRunner(orders, projections()[0]).run(stop=stop, progress=lambda _r: stop.set())
        assert first.processed == 3 and summaries.position() == first.position == 3

        # 2. Failed mid-way: a batch of proj-b is missing from the blob store.
        missing = written["b"].refs[1]
        blob = analyst_store.batches.blobs
        data = blob.get(missing.key)
        blob.delete(missing.key)
        with pytest.raises(BlobNotFoundError, match=missing.batch_id):
            PollingProjectionRunner(orders, projections()[0]).run()
        # Pages of 3: 4-6 committed; 7-9 (proj-b's Created and the missing batch at 9) did not.
        stopped_at = summaries.position()
        assert stopped_at == 6
        partial = {row.order_id: row for row in summaries.summaries()}
        assert partial["proj-a"].item_count == len(written["a"].items) and "proj-b" not in partial

        # 3. The blob is back: the next run resumes after the last committed page.
        blob.put(missing.key, data)
        resumed = PollingProjectionRunner(orders, projections()[0]).run()
        assert resumed.processed == end - stopped_at and resumed.position == end
        PollingProjectionRunner(orders, projections()[1]).run(stop=threading.Event())
        interrupted = _snapshot(summaries, index)

        # Nothing is counted twice: a runner holding an old position is refused, and changes nothing.
        stale, _ = projections()
        stale.position = 3
        notifications = orders.recorder.select_notifications(4, 3)
        with pytest.raises(ViewMovedError):
            stale.process_events([(orders.mapper.to_domain_event(n), Tracking(orders.name, n.id)) for n in notifications])
        assert _snapshot(summaries, index) == interrupted
        assert PollingProjectionRunner(orders, projections()[0]).run().processed == 0

        # One uninterrupted run from an empty read model gives the same tables.
        summaries.reset()
        index.reset()
        assert summaries.position() == index.position() == 0 and summaries.summaries() == []
        for projection in projections():
            PollingProjectionRunner(orders, projection).run()
        assert _snapshot(summaries, index) == interrupted
    finally:
        summaries_view.close()
        index_view.close()

    # And the model says what the events say.
    rows = {row["order_id"]: row for row in interrupted["orders"]}
    assert {name: rows[name]["status"] for name in rows} == {"proj-a": "submitted", "proj-b": "open", "proj-c": "cancelled"}
    for key in "abc":
        assert rows[f"proj-{key}"]["item_count"] == len(written[key].items)
        assert rows[f"proj-{key}"]["batch_count"] == len(written[key].refs)
    assert rows["proj-a"]["rejected_batches"] == 1 and rows["proj-a"]["submitted_at"] is not None
    assert rows["proj-c"]["cancelled_at"] is not None
    assert len(interrupted["times"]) == end


def test_sku_quantities_cover_every_order_not_cancelled(analyst_store: AnalystStore) -> None:
    written = _write_orders(analyst_store)
    with analyst_store.analyst() as analyst:
        analyst.project()
        report = analyst.report()
    expected: dict[str, list[int]] = {}
    for key in "ab":  # proj-c was cancelled
        for item in written[key].items:
            entry = expected.setdefault(item["sku"], [0, 0])
            entry[0] += item["quantity"]
            entry[1] += 1
    assert {s.sku: [s.quantity, s.lines] for s in report.skus} == expected
    assert [s.quantity for s in report.skus] == sorted((s.quantity for s in report.skus), reverse=True)
    assert report.position == report.log_position == analyst_store.orders.recorder.max_notification_id()


def test_two_runners_at_once_count_every_event_once(analyst_store: AnalystStore) -> None:
    written = _write_orders(analyst_store)
    opened = [open_view(analyst_store.config, SUMMARY_VIEW, SQLiteSummaries, PostgresSummaries) for _ in range(2)]
    errors: list[BaseException] = []

    def run(view: Any) -> None:
        projection = OrderSummaryProjection(view, analyst_store.batches.read)
        projection.page_size = 2
        try:
            PollingProjectionRunner(analyst_store.orders, projection).run()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=run, args=(o.view,)) for o in opened]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        rows = {row.order_id: row for row in opened[0].view.summaries()}
    finally:
        for o in opened:
            o.close()
    assert {name: row.item_count for name, row in rows.items()} == {
        f"proj-{key}": len(written[key].items) for key in "abc"
    }
