"""Arrow columns built from their buffers (no ``pyarrow.array``, so no pandas imported):
the same arrays as pyarrow's own conversion for every value of the column's type, and a
clear refusal for any other, which a batch read for analysts turns into BatchFormatError."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from bulkorder.analysis.arrow_columns import (
    dictionary_column, int64_column, json_column, repeated_int64, repeated_string, repeated_timestamp, string_column,
    timestamp_column, with_nulls,
)
from bulkorder.analysis.arrow_items import batch_to_record_batch, item_record_batches
from bulkorder.storage.batch_codec import frame_batch
from bulkorder.storage.errors import BatchFormatError
from tests.fixtures.analysts import AnalystStore, write_order

TEXTS = ["SKU-1", "", "Größe ✓", "日本語", "a\nb \"q\" \\", "x" * 300]


def test_the_same_arrays_as_pyarrow_converts() -> None:
    assert string_column(TEXTS).equals(pa.array(TEXTS, pa.string()))
    assert string_column([]).equals(pa.array([], pa.string()))
    numbers = [0, 1, -5, 2**63 - 1, -(2**63)]
    assert int64_column(numbers).equals(pa.array(numbers, pa.int64()))
    assert int64_column([]).equals(pa.array([], pa.int64()))
    currencies = ["EUR", "USD", "EUR", "JPY"]
    expected = pa.array(currencies, pa.string()).dictionary_encode().cast(pa.dictionary(pa.int32(), pa.string()))
    assert dictionary_column(currencies).equals(expected)
    values = [{"color": "grün", "n": 3, "f": 2.5, "ok": True, "none": None, "nl": "a\nb"}, {}, {"x": "\u2028"}]
    import msgspec

    assert json_column(values).equals(pa.array([msgspec.json.encode(v).decode() for v in values], pa.string()))
    assert json_column([]).equals(pa.array([], pa.string()))


def test_repeated_values_and_timestamps_as_pyarrow_converts() -> None:
    assert repeated_int64(7, 3).equals(pa.array([7, 7, 7], pa.int64()))
    assert repeated_int64(7, 1).equals(pa.array([7], pa.int64()))
    assert repeated_string("cust-1/ö", 4).equals(pa.array(["cust-1/ö"] * 4, pa.string()))
    assert repeated_string("", 2).equals(pa.array(["", ""], pa.string()))
    assert repeated_string("x", 0).equals(pa.array([], pa.string())) and repeated_int64(1, 0).equals(pa.array([], pa.int64()))
    with pytest.raises(TypeError):
        repeated_int64(True, 2)
    kind = pa.timestamp("us", tz="UTC")
    aware = datetime(2026, 12, 1, 18, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    naive = datetime(1969, 7, 20, 20, 17, 40, 1)
    assert timestamp_column([aware, naive]).equals(pa.array([aware, naive], kind))
    assert repeated_timestamp(aware, 2).equals(pa.array([aware, aware], kind))
    column = string_column(["a", "", "c"])
    assert with_nulls(column, [True, False, True]).equals(pa.array(["a", None, "c"], pa.string()))
    assert with_nulls(column, [True, True, True]) is column


@pytest.mark.parametrize("values", [[1, True], [1, 2.0], [1, None], [1, "2"]])
def test_an_integer_column_takes_integers_only(values: list[object]) -> None:
    with pytest.raises(TypeError):
        int64_column(values)


def test_an_integer_past_int64_is_refused() -> None:
    with pytest.raises(OverflowError):
        int64_column([2**63])


@pytest.mark.parametrize("values", [["a", None], ["a", 1], ["a", b"b"]])
def test_a_text_column_takes_str_only(values: list[object]) -> None:
    with pytest.raises(TypeError):
        string_column(values)


def test_a_batch_of_other_types_stops_naming_the_batch(analyst_store: AnalystStore) -> None:
    import msgspec

    item = {"sku": "S-1", "quantity": True, "unit_price": {"amount": 100, "currency": "EUR"}, "name": "n", "attributes": {}}
    data = frame_batch(msgspec.msgpack.encode([item]), 1)
    with pytest.raises(BatchFormatError, match="batch 'odd'.*schema's types"):
        batch_to_record_batch(data, "batch 'odd'", 1)
    item["quantity"], item["sku"] = 1, None
    with pytest.raises(BatchFormatError, match="batch 'odd'.*schema's types"):
        batch_to_record_batch(frame_batch(msgspec.msgpack.encode([item]), 1), "batch 'odd'", 1)


def test_building_columns_never_imports_pandas() -> None:
    """pyarrow.array would import pandas (0.22 s of CPU in every worker process)."""
    script = (
        "import sys\n"
        "from bulkorder.analysis.arrow_items import items_record_batch\n"
        "from bulkorder.storage.batch_codec import decode_stored_items, encode_batch\n"
        "from bulkorder.domain.sample_items import generate_items\n"
        "from datetime import datetime, timezone\n"
        "items = decode_stored_items(encode_batch(list(generate_items(50))))\n"
        "when = datetime.now(timezone.utc)\n"
        "batch = items_record_batch(items, {'position': 1, 'order_id': 'o', 'batch_id': 'b', 'recorded_at': when})\n"
        "assert batch.num_rows == 50\n"
        "print('pandas' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    assert done.stdout.strip() == "False"


def test_a_record_batch_larger_than_a_shared_slot_comes_back_through_the_pipe(
    analyst_store: AnalystStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bulkorder.analysis import shared_slots

    written = write_order(analyst_store, "slots-1", [5, 400, 3, 250])
    in_threads = list(item_record_batches(analyst_store.batches, written.refs))
    monkeypatch.setattr(shared_slots, "SLOT_BYTES", 16 * 1024)  # 5 and 3 items fit, 400 and 250 do not
    in_processes = list(item_record_batches(analyst_store.batches, written.refs, processes=True, window=2))
    assert [batch.num_rows for batch in in_processes] == [5, 400, 3, 250]
    assert [batch.to_pylist() for batch in in_processes] == [batch.to_pylist() for batch in in_threads]


def test_a_shared_slot_holds_what_a_worker_put_and_refuses_a_wrong_length() -> None:
    from bulkorder.analysis.shared_slots import SharedSlots

    batch = pa.record_batch([string_column(TEXTS)], names=["text"])
    with SharedSlots(2, 64 * 1024) as slots:
        length = slots.put(1, batch)
        assert isinstance(length, int) and slots.take(1, length).equals(batch)
        for wrong in (0, -1, 64 * 1024 + 1, "12"):
            with pytest.raises(ValueError, match="not a stream length"):
                slots.take(1, wrong)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="out of range"):
            slots.put(2, batch)
    with SharedSlots(1, 100) as small:
        answer = small.put(0, batch)  # too large for the slot: the stream itself
        assert isinstance(answer, bytes) and small.take(0, answer).equals(batch)
