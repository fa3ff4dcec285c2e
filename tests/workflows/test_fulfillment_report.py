"""Reading a fulfillment report back: proven against its ReportRef, decoded bounded."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import msgpack
import pytest
import zstandard

from bulkorder.domain.refs import InvalidRefError, ReportRef
from bulkorder.domain.sample_items import generate_items
from bulkorder.storage.blob_store import content_key, sha256_hex
from bulkorder.storage.errors import BlobIntegrityError, BlobTooLargeError
from bulkorder.storage.folder_store import FolderBlobStore
from bulkorder.workflows.fulfillment import (
    MAX_REPORT_RAW_SIZE,
    REPORT_PREFIX,
    ReportFormatError,
    SkuTotals,
    decode_report,
    read_report,
)


def stored_report(blobs: FolderBlobStore, data: bytes) -> ReportRef:
    sha = sha256_hex(data)
    key = content_key(sha, REPORT_PREFIX)
    blobs.put(key, data)
    return ReportRef(key=key, sha256=sha, size=len(data), sku_count=1, item_count=1, quantity=1, totals={"EUR": 1})


def test_a_report_round_trips_through_its_ref(tmp_path: Path) -> None:
    totals = SkuTotals()
    totals.add(list(generate_items(2_000)))
    blobs = FolderBlobStore(tmp_path)
    body = read_report(blobs, stored_report(blobs, totals.encode("o-1")))
    assert (body["order_id"], body["item_count"]) == ("o-1", 2_000)
    assert len(body["skus"]) == len(totals.by_sku)


def test_a_report_swapped_under_a_look_alike_key_is_refused(tmp_path: Path) -> None:
    blobs = FolderBlobStore(tmp_path)
    real = SkuTotals().encode("o-1")
    ref = stored_report(blobs, real)
    swapped = SkuTotals().encode("o-2")
    look_alike = dataclasses.replace(ref, key="reports/1d/v" + ref.sha256, size=len(swapped))
    blobs.put(look_alike.key, swapped)
    # Refused before any read: a report's key is exactly the content key of its sha-256.
    with pytest.raises(InvalidRefError, match="is not the content key of its sha256"):
        read_report(blobs, look_alike)
    # And bytes swapped under the real key fail the ref's hash.
    blobs.path_for(ref.key).write_bytes(swapped)
    with pytest.raises(BlobIntegrityError, match=ref.key):
        read_report(blobs, dataclasses.replace(ref, size=len(swapped)))
    bigger = dataclasses.replace(ref, size=len(real) - 1)
    with pytest.raises(BlobTooLargeError, match=f"larger than the {len(real) - 1} bytes"):
        read_report(blobs, bigger)


def test_decompression_is_bounded_by_the_report_cap(tmp_path: Path) -> None:
    # A frame declaring 1 GiB (refused from its header) and one of undeclared size that
    # expands past the cap (stopped there).
    stream = zstandard.ZstdCompressor(write_content_size=True).compressobj(size=2**30)
    declared = b"".join(stream.compress(b"\0" * 2**20) for _ in range(1024)) + stream.flush()
    with pytest.raises(ReportFormatError, match="declares 1073741824 bytes of content, but a report's limit is"):
        decode_report(declared, where="report r1")
    stream = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    undeclared = b"".join(stream.compress(b"\0" * 2**20) for _ in range(80)) + stream.flush()
    with pytest.raises(ReportFormatError, match=f"report r2: .*expands past {MAX_REPORT_RAW_SIZE} bytes"):
        decode_report(undeclared, where="report r2")


@pytest.mark.parametrize(
    "raw, problem",
    [(b"\xc1", "not valid msgpack"), (msgpack.packb([1, 2]), "format 'list'"), (msgpack.packb({"format": "x"}), "'x'")],
)
def test_what_is_not_a_report_is_a_report_format_error(raw: bytes, problem: str) -> None:
    with pytest.raises(ReportFormatError, match=problem):
        decode_report(zstandard.ZstdCompressor().compress(raw))
    with pytest.raises(ReportFormatError, match="not a zstd frame"):
        decode_report(raw + b"\0" * 8)
