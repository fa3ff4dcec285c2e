"""BatchStore: items to a content-addressed blob and a BatchRef, and back, checked."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bulkorder.domain.identifiers import InvalidIdentifierError
from bulkorder.domain.items import Item, validate_item_dicts
from bulkorder.domain.refs import BatchRef, InvalidRefError, check_batch_ref
from bulkorder.storage.batch_codec import decode_batch, read_header
from bulkorder.storage.batches import BatchStore, batch_counters, encode_batch_items, encode_packed_batch
from bulkorder.storage.blob_store import sha256_hex
from bulkorder.storage.errors import BatchFormatError, BlobIntegrityError, BlobNotFoundError
from bulkorder.storage.folder_store import FolderBlobStore
from tests.storage.items import make_item, make_items

MIXED = [
    make_item("A-1", quantity=2, amount=150, currency="USD"),
    make_item("A-2", quantity=3, amount=1000, currency="USD"),
    make_item("B-1", quantity=1, amount=999, currency="EUR"),
    make_item("C-1", quantity=10, amount=5, currency="JPY"),
    make_item("C-2", quantity=7, amount=0, currency="JPY", gift=True),
]


@pytest.fixture
def blobs(tmp_path: Path) -> FolderBlobStore:
    return FolderBlobStore(tmp_path / "blobs")


@pytest.fixture
def batches(blobs: FolderBlobStore) -> BatchStore:
    return BatchStore(blobs)


def test_counters_for_mixed_currencies() -> None:
    quantity, totals = batch_counters(MIXED)
    assert quantity == 2 + 3 + 1 + 10 + 7
    assert totals == {"USD": 2 * 150 + 3 * 1000, "EUR": 999, "JPY": 50}


def test_write_then_read_round_trip(batches: BatchStore, blobs: FolderBlobStore) -> None:
    ref = batches.write(MIXED)
    assert batches.read(ref) == MIXED
    stored = blobs.get(ref.key)
    assert ref.sha256 == sha256_hex(stored)
    assert ref.key == f"batches/{ref.sha256[:2]}/{ref.sha256}"
    assert ref.size == len(stored) == blobs.size(ref.key)
    assert (ref.item_count, ref.quantity) == (5, 23)
    assert ref.totals == {"USD": 3300, "EUR": 999, "JPY": 50}
    assert (ref.encoding, ref.format_version) == ("msgpack+zstd", 1)
    assert check_batch_ref(ref) is ref


def test_default_batch_id_derives_from_content_so_rewrites_are_idempotent(
    batches: BatchStore, blobs: FolderBlobStore
) -> None:
    first = batches.write(MIXED)
    second = batches.write([dict(item) for item in MIXED])
    assert first == second
    assert first.batch_id == "sha256-" + first.sha256[:32]
    assert list(blobs.iter_keys()) == [first.key]
    other = batches.write(MIXED[:2])
    assert other.batch_id != first.batch_id


def test_explicit_batch_id(batches: BatchStore) -> None:
    ref = batches.write(MIXED, batch_id="import-7/part:0001")
    assert ref.batch_id == "import-7/part:0001"
    assert batches.read(ref) == MIXED


@pytest.mark.parametrize("bad", ["", "-leading-dash", "has space", "x" * 201, "ünï"])
def test_invalid_batch_id_is_refused_before_any_work(batches: BatchStore, blobs: FolderBlobStore, bad: str) -> None:
    with pytest.raises(InvalidIdentifierError, match="batch ID"):
        batches.write(MIXED, batch_id=bad)
    assert list(blobs.iter_keys()) == []


def test_empty_batch_is_refused(batches: BatchStore) -> None:
    with pytest.raises(ValueError, match="is empty"):
        batches.encode([])
    with pytest.raises(ValueError, match="batch b1 is empty"):
        batches.write([], batch_id="b1")


def test_encode_is_pure_and_put_encoded_stores_it(batches: BatchStore, blobs: FolderBlobStore) -> None:
    ref, data = batches.encode(MIXED, batch_id="b1")
    assert list(blobs.iter_keys()) == []
    assert decode_batch(data) == MIXED and read_header(data).item_count == 5
    batches.put_encoded(ref, data)
    batches.put_encoded(ref, data)  # idempotent
    assert blobs.get(ref.key) == data
    assert batches.read(ref) == MIXED


def test_put_encoded_refuses_bytes_that_do_not_match_the_ref(batches: BatchStore, blobs: FolderBlobStore) -> None:
    ref, data = batches.encode(MIXED, batch_id="b1")
    with pytest.raises(BatchFormatError, match=r"batch 'b1' \(batches/.*\): 3 bytes given"):
        batches.put_encoded(ref, b"abc")
    forged = bytearray(data)
    forged[-1] ^= 0xFF
    with pytest.raises(BlobIntegrityError, match="batch 'b1'"):
        batches.put_encoded(ref, bytes(forged))
    assert list(blobs.iter_keys()) == []


def test_read_of_a_missing_blob_names_batch_and_key(batches: BatchStore) -> None:
    ref, _ = batches.encode(MIXED, batch_id="b-missing")
    with pytest.raises(BlobNotFoundError) as info:
        batches.read(ref)
    assert "batch 'b-missing'" in str(info.value) and ref.key in str(info.value)
    assert info.value.key == ref.key


def test_read_of_a_tampered_blob_names_batch_and_key(batches: BatchStore, blobs: FolderBlobStore) -> None:
    ref = batches.write(MIXED, batch_id="b-tampered")
    blobs.path_for(ref.key).write_bytes(b"garbage")
    with pytest.raises(BlobIntegrityError) as info:
        batches.read(ref)
    assert "batch 'b-tampered'" in str(info.value) and ref.key in str(info.value)


def test_read_checks_the_ref_size(batches: BatchStore) -> None:
    ref = batches.write(MIXED, batch_id="b1")
    wrong = dataclasses.replace(ref, size=ref.size + 1)
    with pytest.raises(BatchFormatError, match=rf"batch 'b1' \({ref.key}\): blob is {ref.size} bytes, the ref says {ref.size + 1}"):
        batches.read(wrong)


def test_read_checks_the_ref_item_count(batches: BatchStore) -> None:
    ref = batches.write(MIXED, batch_id="b1")
    wrong = dataclasses.replace(ref, item_count=4)
    with pytest.raises(BatchFormatError, match=r"header's item count is 5, the ref says 4"):
        batches.read(wrong)


def test_read_of_a_blob_that_is_not_a_batch(batches: BatchStore, blobs: FolderBlobStore) -> None:
    data = b"definitely not a batch"
    sha = sha256_hex(data)
    key = f"batches/{sha[:2]}/{sha}"
    blobs.put(key, data)
    ref = BatchRef("b-foreign", key, sha, len(data), 1, 1, {"EUR": 1})
    with pytest.raises(BatchFormatError, match=rf"batch 'b-foreign' \({key}\): not a batch \(bad magic"):
        batches.read(ref)


def test_read_refuses_a_malformed_ref(batches: BatchStore) -> None:
    ref = batches.write(MIXED, batch_id="b1")
    with pytest.raises(InvalidRefError, match="not a valid blob key"):
        batches.read(dataclasses.replace(ref, key="../" + ref.sha256))
    with pytest.raises(InvalidRefError, match="is not the content key of its sha256"):
        batches.read(dataclasses.replace(ref, key="batches/ab/" + "0" * 64))
    with pytest.raises(InvalidRefError, match="unsupported encoding"):
        batches.read(dataclasses.replace(ref, encoding="json"))


def test_read_items_gives_models(batches: BatchStore) -> None:
    ref = batches.write(MIXED)
    items = batches.read_items(ref)
    assert all(isinstance(item, Item) for item in items)
    assert [item.line_total for item in items] == [300, 3000, 999, 50, 0]
    assert items[4].attributes == {"gift": True}


def test_validated_items_round_trip(batches: BatchStore) -> None:
    items = validate_item_dicts(make_items(1000))
    ref = batches.write(items)
    assert ref.item_count == 1000
    assert batches.read(ref) == items


def test_every_batch_lives_under_its_content_key_at_any_level(blobs: FolderBlobStore) -> None:
    batches = BatchStore(blobs, level=9)
    ref = batches.write(MIXED)
    assert ref.key == f"batches/{ref.sha256[:2]}/{ref.sha256}"
    assert batches.read(ref) == MIXED


def test_a_sealing_store_seals_what_it_writes(blobs: FolderBlobStore) -> None:
    from bulkorder.domain.seal import RefSealer

    sealer = RefSealer(b"the deployment's secret, 32 byte")
    ref = BatchStore(blobs, sealer=sealer).write(MIXED)
    assert sealer.check(ref) is None
    assert BatchStore(blobs).write(MIXED).seal == ""


def test_a_batch_whose_sums_pass_the_order_bounds_is_refused_naming_it(batches: BatchStore) -> None:
    from bulkorder.domain.items import ItemValidationError

    line = {"sku": "S", "quantity": 1_000, "unit_price": {"amount": 10**15, "currency": "EUR"}, "name": "n"}
    with pytest.raises(ItemValidationError, match=r"batch b-big: unit_price.amount: the EUR total 2,000,000,000,000,000,000 exceeds the limit MAX_ORDER_TOTAL"):
        batches.encode([line, line], batch_id="b-big")


def test_encoding_needs_no_blob_store_and_seals_nothing(blobs: FolderBlobStore) -> None:
    # The importer's encoding processes call these: no blob store, no secret.
    from bulkorder.domain.seal import RefSealer

    ref, data = encode_batch_items(MIXED, "b-1", 3)
    assert ref.seal == "" and ref.sha256 == sha256_hex(data) and ref.item_count == len(MIXED)
    assert (ref, data) == BatchStore(blobs, level=3).encode(MIXED, "b-1")
    assert decode_batch(data) == MIXED
    sealer = RefSealer(b"the deployment's secret, 32 byte")
    sealed, sealed_data = BatchStore(blobs, level=3, sealer=sealer).encode(MIXED, "b-1")
    assert sealed_data == data and sealer.check(sealed) is None and sealed == sealer.seal(ref)


def test_packed_encoding_matches_the_store_and_reads_back(blobs: FolderBlobStore) -> None:
    import msgpack

    quantity, totals = batch_counters(MIXED)
    raw = msgpack.packb(MIXED, use_bin_type=True)
    ref, data = encode_packed_batch(raw, len(MIXED), quantity, totals, "b-2", 3)
    assert (ref, data) == BatchStore(blobs, level=3).encode_packed(raw, len(MIXED), quantity, totals, "b-2")
    assert (ref.quantity, ref.totals, ref.seal) == (quantity, totals, "")
    BatchStore(blobs).put_encoded(ref, data)
    assert BatchStore(blobs).read(ref) == MIXED
    with pytest.raises(ValueError, match=r"batch b-3 is empty: a batch holds at least one item"):
        encode_packed_batch(b"\x90", 0, 0, {}, "b-3")
    with pytest.raises(ValueError, match=r"batch \(unnamed\) is empty: a batch holds at least one item"):
        encode_batch_items([])
