"""The read-model projections on a real SQLite file and a real PostgreSQL schema: a run
stopped or failed mid-way and restarted ends exactly where one uninterrupted run does."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest
from eventsourcing.persistence import Tracking

from bulkorder.domain.items import MAX_ORDER_QUANTITY, MAX_ORDER_TOTAL
from bulkorder.analysis.read_model import OrderSummaryRow
from bulkorder.domain.summary import OrderChange, Rejection
from bulkorder.analysis.projections import OrderSummaryProjection, PollingProjectionRunner, TimeIndexProjection
from bulkorder.analysis.summaries import SUMMARY_VIEW, PostgresSummaries, SQLiteSummaries
from bulkorder.analysis.time_index import TIME_INDEX_VIEW, PostgresTimeIndex, SQLiteTimeIndex
from bulkorder.analysis.views import ViewMovedError, open_view
from bulkorder.storage.errors import BlobNotFoundError, TransientStoreError
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

        # 2. Failed mid-way: a batch of proj-b cannot be read for now (its blob is gone
        # and the store says so as an outage would: a transient error stops the run).
        missing = written["b"].refs[1]
        blob = analyst_store.batches.blobs
        data = blob.get(missing.key)
        blob.delete(missing.key)

        def read_during_outage(ref: Any) -> Any:
            try:
                return analyst_store.batches.read(ref)
            except BlobNotFoundError as exc:
                raise TransientStoreError(f"store unreachable while reading {ref.batch_id}") from exc

        outage = OrderSummaryProjection(summaries, read_during_outage)
        outage.page_size = 3
        with pytest.raises(TransientStoreError, match=missing.batch_id):
            PollingProjectionRunner(orders, outage).run()
        # Pages of 3: 4-6 committed; 7-9 (proj-b's Created and the missing batch at 9) did not.
        stopped_at = summaries.position()
        assert stopped_at == 6
        partial = {row.order_id: row for row in summaries.summaries()}
        assert partial["cust-1/proj-a"].item_count == len(written["a"].items) and "cust-1/proj-b" not in partial

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
    assert {name: rows[name]["status"] for name in rows} == {"cust-1/proj-a": "submitted", "cust-1/proj-b": "open", "cust-1/proj-c": "cancelled"}
    for key in "abc":
        assert rows[f"cust-1/proj-{key}"]["item_count"] == len(written[key].items)
        assert rows[f"cust-1/proj-{key}"]["batch_count"] == len(written[key].refs)
    assert rows["cust-1/proj-a"]["rejected_batches"] == 1 and rows["cust-1/proj-a"]["submitted_at"] is not None
    assert rows["cust-1/proj-c"]["cancelled_at"] is not None
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
        f"cust-1/proj-{key}": len(written[key].items) for key in "abc"
    }


def test_a_corrupt_or_lying_batch_is_skipped_counted_and_the_projection_goes_on(analyst_store: AnalystStore) -> None:
    written = _write_orders(analyst_store)
    blob = analyst_store.batches.blobs
    corrupt = written["a"].refs[2]
    blob.path_for(corrupt.key).write_bytes(b"\x00" * 64)  # a bucket writer's bytes, not this batch
    gone = written["b"].refs[0]
    blob.delete(gone.key)
    # A ref whose claims do not match its content (the same blob, ten times the quantity).
    honest = written["b"].refs[2]
    lying = replace(honest, batch_id="proj-b-lying", quantity=honest.quantity * 10)
    analyst_store.orders.record(OrderChange(order_id="proj-b", batches=[lying]))
    end = analyst_store.orders.recorder.max_notification_id()
    with analyst_store.analyst() as analyst:
        first = analyst.project()
        report = analyst.report()
        again = analyst.project()  # nothing left to do: the skipped batches are not retried
    assert report.position == end and first[1].position == end and again[1].processed == 0
    assert {(e.order_id, e.batch_id) for e in report.skipped} == {
        ("cust-1/proj-a", corrupt.batch_id), ("cust-1/proj-b", gone.batch_id), ("cust-1/proj-b", "proj-b-lying")
    }
    assert report.skipped_by_order() == {"cust-1/proj-a": 1, "cust-1/proj-b": 2}
    reasons = {e.batch_id: e.reason for e in report.skipped}
    assert "BlobIntegrityError" in reasons[corrupt.batch_id] or "BatchFormatError" in reasons[corrupt.batch_id]
    assert "BlobNotFoundError" in reasons[gone.batch_id]
    assert "the ref says" in reasons["proj-b-lying"]
    # Every other batch is counted, exactly.
    expected: dict[str, int] = {}
    counted = [ref for ref in written["a"].refs + written["b"].refs if ref not in (corrupt, gone)]
    for ref in counted:
        for item in analyst_store.batches.read(ref):
            expected[item["sku"]] = expected.get(item["sku"], 0) + item["quantity"]
    assert {s.sku: s.quantity for s in report.skus} == expected


def test_counters_past_the_order_bounds_are_skipped_not_stored(analyst_store: AnalystStore) -> None:
    written = write_order(analyst_store, "proj-big", [3], seed=4)
    ref = written.refs[0]
    for index in range(3):  # refs claiming 2**62 each: together past any 64-bit column
        claim = replace(ref, batch_id=f"proj-big-claim-{index}", quantity=2**62, totals={"EUR": 2**62})
        try:
            analyst_store.orders.record(OrderChange(order_id="proj-big", batches=[claim]))
        except ValueError:
            break  # the domain refuses such claims itself: nothing for the read model to guard
    with analyst_store.analyst() as analyst:
        analyst.project()
        report = analyst.report()
    (row,) = [row for row in report.orders if row.order_id == "cust-1/proj-big"]
    assert row.quantity <= MAX_ORDER_QUANTITY and all(total <= MAX_ORDER_TOTAL for total in row.totals.values())
    assert report.position == report.log_position


def test_sku_sums_across_orders_near_the_bounds_do_not_overflow(analyst_store: AnalystStore) -> None:
    opened = open_view(analyst_store.config, SUMMARY_VIEW, SQLiteSummaries, PostgresSummaries)
    view = opened.view
    try:
        rows = [OrderSummaryRow(aggregate_id=f"{n:032x}", order_id=f"near-{n}", customer_id="c", quantity=MAX_ORDER_QUANTITY,
                                totals={"EUR": MAX_ORDER_TOTAL}) for n in range(12)]
        deltas = {(row.aggregate_id, "SKU-BIG"): [MAX_ORDER_QUANTITY, 5] for row in rows}
        deltas.update({(row.aggregate_id, "SKU-ODD"): [MAX_ORDER_QUANTITY - 7, 1] for row in rows})
        view.save(rows, deltas, None, Tracking("Orders", 1))
        skus = {s.sku: s for s in view.sku_quantities()}
        assert skus["SKU-BIG"].quantity == 12 * MAX_ORDER_QUANTITY  # past 2**63: exact all the same
        assert skus["SKU-ODD"].quantity == 12 * (MAX_ORDER_QUANTITY - 7)
        assert [s.sku for s in view.sku_quantities(limit=1)] == ["SKU-BIG"]
        assert skus["SKU-BIG"].lines == 60 and skus["SKU-BIG"].orders == 12
    finally:
        opened.close()
