"""The analysts' API on a real SQLite file and a real PostgreSQL schema: history, replay at
versions and instants, items streamed back, and the errors a user can run into."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest

from bulkorder.domain.application import SNAPSHOT_INTERVAL
from bulkorder.domain.errors import OrderNotFoundError
from bulkorder.analysis.history import BeforeCreationError, VersionOutOfRangeError
from bulkorder.domain.summary import OrderChange, Rejection
from tests.fixtures.analysts import AnalystStore, items_digest, write_order

# More batches than the snapshot interval, so replays start from a snapshot part of the time.
SIZES = [1 + index % 3 for index in range(SNAPSHOT_INTERVAL + 30)]


def _expected(sizes: list[int], refs: list, batches: int) -> dict[str, int]:
    """What the events say after the first ``batches`` ItemsAdded events."""
    return {
        "item_count": sum(sizes[:batches]),
        "batch_count": batches,
        "quantity": sum(ref.quantity for ref in refs[:batches]),
    }


def test_replay_at_versions_and_instants_matches_the_events(analyst_store: AnalystStore) -> None:
    written = write_order(analyst_store, "replay-1", SIZES)
    analyst_store.orders.record(OrderChange(order_id="replay-1", rejections=[Rejection("late", "order is submitted")]))
    analyst_store.orders.record(OrderChange(order_id="replay-1", submit=True))
    latest = len(SIZES) + 3
    with analyst_store.analyst() as analyst:
        records = list(analyst.events("replay-1"))
        assert [r.version for r in records] == list(range(1, latest + 1))
        assert [r.type for r in records[:2]] == ["Created", "ItemsAdded"]
        assert [r.type for r in records[-2:]] == ["BatchRejected", "Submitted"]
        assert records[-1].item_count == sum(SIZES)
        for version in (1, 2, 57, SNAPSHOT_INTERVAL, SNAPSHOT_INTERVAL + 1, len(SIZES) + 1, latest):
            state = analyst.state("replay-1", version=version)
            batches = min(version - 1, len(SIZES))
            expected = _expected(SIZES, written.refs, batches)
            assert state.version == version
            assert {k: getattr(state.summary, k) for k in expected} == expected
            assert state.as_of == records[version - 1].timestamp
        assert analyst.state("replay-1", version=latest - 1).summary.rejected_batches == 1
        assert analyst.state("replay-1").summary.status == "submitted"
        assert analyst.state("replay-1", version=latest - 1).summary.status == "open"

        times = [r.timestamp for r in records]
        assert times == sorted(times) and len(set(times)) == len(times)
        for version in (1, 3, SNAPSHOT_INTERVAL + 5, latest):
            at = times[version - 1]
            assert analyst.state("replay-1", at=at).version == version
            if version < latest:  # just before the next event: still this version
                between = at + (times[version] - at) / 2
                assert analyst.state("replay-1", at=between).version == version
        assert analyst.state("replay-1", at=times[-1] + timedelta(days=365)).version == latest


def test_items_streamed_at_a_version_equal_the_items_put_in(analyst_store: AnalystStore) -> None:
    sizes = [700, 1, 1300, 450, 2000]
    written = write_order(analyst_store, "stream-1", sizes)
    with analyst_store.analyst() as analyst:
        for version, batches in ((1 + len(sizes), len(sizes)), (3, 2)):
            out = io.BytesIO()
            seen: list[int] = []
            result = analyst.stream_items("stream-1", out, version=version, progress=lambda _b, items: seen.append(items))
            streamed = [json.loads(line) for line in out.getvalue().splitlines()]
            expected = written.items[: sum(sizes[:batches])]
            assert result.items == len(expected) == len(streamed)
            assert items_digest(streamed) == items_digest(expected)
            assert seen[-1] == len(expected) and seen == sorted(seen)


def test_errors_name_the_order_and_what_is_wrong(analyst_store: AnalystStore) -> None:
    write_order(analyst_store, "errors-1", [3, 4])
    with analyst_store.analyst() as analyst:
        with pytest.raises(OrderNotFoundError, match="order 'no-such-order' does not exist"):
            list(analyst.events("no-such-order"))
        with pytest.raises(OrderNotFoundError, match="no-such-order"):
            analyst.state("no-such-order", version=1)
        with pytest.raises(OrderNotFoundError, match="no-such-order"):
            analyst.stream_items("no-such-order", io.BytesIO())
        for version in (0, 4, 1_000):
            with pytest.raises(VersionOutOfRangeError, match=f"'errors-1' has versions 1 to 3: there is no version {version}"):
                analyst.state("errors-1", version=version)
        created = next(iter(analyst.events("errors-1"))).timestamp
        with pytest.raises(BeforeCreationError, match="did not exist at .*: it was created at") as caught:
            analyst.state("errors-1", at=created - timedelta(microseconds=1))
        assert caught.value.created_at == created
        assert analyst.state("errors-1", at=created).version == 1
