"""Items streamed out of the blob store equal the items put in, in order, in both formats,
with threads or worker processes; a damaged batch stops the stream naming the batch."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from bulkorder.domain.sample_items import generate_items
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.errors import BatchFormatError, BlobIntegrityError
from bulkorder.storage.folder_store import FolderBlobStore
from bulkorder.analysis.item_stream import CSV_COLUMNS, ItemStreamer
from tests.fixtures.analysts import items_digest

SIZES = [1, 999, 2500, 17, 1200, 3000, 5]


@pytest.fixture
def stored(tmp_path: Path) -> tuple[BatchStore, list, list[dict]]:
    batches = BatchStore(FolderBlobStore(tmp_path / "blobs"))
    items, refs, start = [], [], 0
    for index, size in enumerate(SIZES):
        chunk = list(generate_items(size, seed=11, start=start))
        start += size
        items.extend(chunk)
        refs.append(batches.write(chunk, batch_id=f"stream-{index}"))
    return batches, refs, items


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_ndjson_items_equal_the_items_put_in(stored, processes: bool) -> None:
    batches, refs, items = stored
    out = io.BytesIO()
    result = ItemStreamer(batches, workers=2, processes=processes, window=3).write(refs, out)
    streamed = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (result.batches, result.items, result.bytes_written) == (len(refs), len(items), len(out.getvalue()))
    assert items_digest(streamed) == items_digest(items)


def test_csv_rows_hold_every_field_of_every_item(stored) -> None:
    batches, refs, items = stored
    out = io.BytesIO()
    ItemStreamer(batches).write(refs, out, fmt="csv")
    rows = list(csv.DictReader(io.StringIO(out.getvalue().decode())))
    assert list(rows[0]) == list(CSV_COLUMNS)
    rebuilt = [
        {
            "sku": row["sku"],
            "quantity": int(row["quantity"]),
            "unit_price": {"amount": int(row["unit_price_amount"]), "currency": row["unit_price_currency"]},
            "name": row["name"],
            "attributes": json.loads(row["attributes"]),
        }
        for row in rows
    ]
    assert items_digest(rebuilt) == items_digest(items)


def test_a_damaged_batch_stops_the_stream_and_names_the_batch(stored) -> None:
    batches, refs, _ = stored
    path = batches.blobs.path_for(refs[3].key)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BlobIntegrityError, match="batch 'stream-3'.*is corrupt"):
        ItemStreamer(batches).write(refs, io.BytesIO())


def test_a_ref_that_contradicts_its_batch_is_refused(stored) -> None:
    from dataclasses import replace

    batches, refs, _ = stored
    lying = replace(refs[1], item_count=refs[1].item_count + 1)
    with pytest.raises(BatchFormatError, match="batch 'stream-1'.*item count is 999, the ref says 1000"):
        ItemStreamer(batches).write([refs[0], lying], io.BytesIO())


def test_items_of_another_shape_stream_out_whole(tmp_path: Path) -> None:
    """Items written without attributes, with empty ones, or (by another writer) with a
    field this version does not know all come out as they were stored: nothing dropped."""
    batches = BatchStore(FolderBlobStore(tmp_path / "blobs"))
    base = {"sku": "A-1", "quantity": 2, "unit_price": {"amount": 5, "currency": "EUR"}, "name": "a"}
    plain = batches.write([base, {**base, "attributes": {"k": 1}}], batch_id="plain")
    foreign = batches.write([{**base, "gift_message": "hi"}, base], batch_id="foreign")
    out = io.BytesIO()
    ItemStreamer(batches).write([plain, foreign], out)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        base, {**base, "attributes": {"k": 1}}, {**base, "gift_message": "hi"}, base,
    ]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_a_spreadsheet_would_run_are_neutralised_and_ndjson_stays_exact(tmp_path: Path, start: str) -> None:
    batches = BatchStore(FolderBlobStore(tmp_path / "blobs"))
    item = next(generate_items(1))
    item["name"] = start + "HYPERLINK(\"http://evil.example\",\"click\")"
    ref = batches.write([item], batch_id="formula-1")
    out = io.BytesIO()
    ItemStreamer(batches).write([ref], out, fmt="csv")
    (row,) = list(csv.DictReader(io.StringIO(out.getvalue().decode(), newline="")))
    assert row["name"] == "'" + item["name"]
    assert row["quantity"] == str(item["quantity"])  # numbers are written as they are
    exact = io.BytesIO()
    ItemStreamer(batches).write([ref], exact)
    assert json.loads(exact.getvalue()) == item
