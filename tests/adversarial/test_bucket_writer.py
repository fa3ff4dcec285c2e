"""A hostile bucket writer: someone who can write (not read our secrets) in the blob store.

They can swap bytes under any key, plant bombs, plant huge objects, tear files and plant
symlinks. Every read must prove the bytes against the ref's sha-256, never read more than
the ref's size, never decompress past a bound, and the folder store must repair what it
finds torn and refuse what it finds linked. Bombs run in a child process, whose peak RSS
(VmHWM) is compared before and after the attack: the test process's own peak is already
high from the servers it hosts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import zstandard

from bulkorder.domain.application import Orders
from bulkorder.domain.refs import BatchRef
from bulkorder.domain.summary import OrderChange
from bulkorder.storage.batch_codec import COMPRESSION_ZSTD, MAGIC, MAX_EXPANSION_RATIO
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.blob_store import content_key, sha256_hex
from bulkorder.storage.claim_check import KEY_PREFIX, ClaimCheck
from bulkorder.storage.errors import BlobIntegrityError, InvalidBlobKeyError
from bulkorder.storage.folder_store import FolderBlobStore
from bulkorder.analysis.item_stream import ItemStreamer
from bulkorder.storage.s3_store import S3BlobStore
from tests.adversarial.report import MAX_BOMB_GROWTH_BYTES, AttackLine, report
from tests.fixtures.orders import sqlite_env
from tests.storage.items import make_item
from bulkorder.workflows.fulfillment import fulfill
from bulkorder.workflows.messages import FulfillRequest

ROOT = Path(__file__).resolve().parents[2]
GiB = 2**30
MiB = 2**20


def zeros_frame(size: int, *, declare_size: bool) -> bytes:
    """A zstd frame of ``size`` zero bytes (1 GiB makes ~32 KB), built in 1 MiB pieces."""
    stream = zstandard.ZstdCompressor(write_content_size=declare_size).compressobj(size=size if declare_size else -1)
    piece = b"\0" * MiB
    return b"".join(stream.compress(piece) for _ in range(size // MiB)) + stream.flush()


def bomb_ref(data: bytes, *, item_count: int = 1) -> BatchRef:
    """A ref that names ``data`` truthfully (key, sha-256, size): only the content lies."""
    sha = sha256_hex(data)
    return BatchRef(
        batch_id="b-bomb", key=content_key(sha), sha256=sha, size=len(data), item_count=item_count, quantity=1,
        totals={"USD": 100},
    )


_CHILD = """
import asyncio, json, sys
def peak():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
{setup}
before = peak()
try:
    result = {attack}
    outcome = {{"refused": False, "result": repr(result)[:200]}}
except Exception as exc:
    outcome = {{"refused": True, "type": type(exc).__name__, "message": str(exc)}}
outcome["growth"] = peak() - before
print(json.dumps(outcome))
"""


def attack_in_child(setup: str, attack: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``attack`` (an expression) in a fresh interpreter after ``setup``; what it raised
    and how far its peak RSS grew meanwhile."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(setup=setup, attack=attack)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    outcome: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return outcome


def batch_read_setup(root: Path, ref: BatchRef) -> str:
    return (
        "from bulkorder.domain.refs import BatchRef\n"
        "from bulkorder.storage.batches import BatchStore\n"
        "from bulkorder.storage.folder_store import FolderBlobStore\n"
        f"ref = BatchRef(**json.loads({json.dumps(json.dumps(dataclasses.asdict(ref)))}))\n"
        f"store = BatchStore(FolderBlobStore({str(root)!r}))\n"
    )


def assert_refused_and_bounded(outcome: dict[str, Any], error: str, *fragments: str) -> None:
    assert outcome["refused"], f"the attack was not refused: {outcome}"
    assert outcome["type"] == error, outcome
    for fragment in fragments:
        assert fragment in outcome["message"], outcome["message"]
    assert outcome["growth"] < MAX_BOMB_GROWTH_BYTES, f"peak RSS grew {outcome['growth'] / MiB:.0f} MiB"


def refusal(error: str, fragment: str) -> str:
    """An ATTACK line's outcome: the error class and the part of its message that matters
    (the full message names the key and the store, too long for the table)."""
    return f"refused ({error}): {fragment if len(fragment) <= 64 else fragment[:61] + '...'}"


# (a) Bytes swapped under a valid-looking key.


def test_swapped_bytes_under_a_valid_key_are_refused(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> None:
    blobs = S3BlobStore(s3_bucket, endpoint_url=s3_endpoint, region_name="us-east-1")
    batches = BatchStore(blobs)
    ref = batches.write([make_item("SKU-1", quantity=4, amount=100, name="Widget, the long-named kind " * 4)])
    # A valid batch of the attacker's (no larger than the ref allows): USD 1,620,100 instead of 400.
    swapped = BatchStore(FolderBlobStore(tmp_path / "elsewhere")).encode(
        [make_item("SKU-1", quantity=4, amount=405_025_00)]
    )[1]
    assert len(swapped) <= ref.size
    raw = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    raw.put_object(Bucket=s3_bucket, Key=blobs.object_key(ref.key), Body=swapped)

    with pytest.raises(BlobIntegrityError) as refused:
        batches.read(ref)
    assert refused.value.key == ref.key and refused.value.expected == ref.sha256
    with pytest.raises(BlobIntegrityError, match=ref.key):
        ItemStreamer(batches).read_items(ref)
    # The look-alike key (ends with the sha-256, is not its content key): the
    # ref's hash is checked whatever the key, so swapped bytes there are refused too.
    look_alike = dataclasses.replace(ref, key="batches/1d/v" + ref.sha256, size=len(swapped))
    raw.put_object(Bucket=s3_bucket, Key=blobs.object_key(look_alike.key), Body=swapped)
    with pytest.raises((BlobIntegrityError, ValueError), match=r"batches/1d/v"):
        batches.read(look_alike)

    # Fulfilment through the event store: the swapped batch is rejected, never fulfilled.
    orders = Orders(env=sqlite_env(tmp_path / "events.sqlite"))
    try:
        summary = orders.record(OrderChange("o-swap", "c-1", create=True, batches=[ref], submit=True)).summary
        result = fulfill(
            orders=orders, batches=batches,
            request=FulfillRequest("o-swap", summary.item_count, summary.batch_count, summary.version),
        )
        assert result.report is None
        [rejection] = result.rejections
        assert rejection.key == ref.key and "corrupt" in rejection.reason
        recorded = orders.summary("o-swap")
        assert (recorded.item_count, recorded.totals) == (1, {"USD": 400})  # not the swapped 1,620,100
    finally:
        orders.close()
    report(AttackLine("bucket writer", "swap batch bytes under a valid key", refusal("BlobIntegrityError", "sha-256 is not the ref's")))


# (b) Batch bombs.


@pytest.mark.parametrize(
    "variant",
    ["frame declares 1 GiB", "undeclared size expands to 1 GiB", "header claims 1 GiB"],
)
def test_a_batch_bomb_is_refused_with_bounded_memory(tmp_path: Path, variant: str) -> None:
    frame = zeros_frame(GiB, declare_size=variant == "frame declares 1 GiB")
    assert len(frame) < 40_000  # a 32 KB blob
    # The header claims what the ratio allows for this body (or, last, the full 1 GiB).
    raw_size = GiB if variant == "header claims 1 GiB" else MAX_EXPANSION_RATIO * len(frame)
    data = struct.pack("<4sBBHIQ", MAGIC, 1, COMPRESSION_ZSTD, 0, 1, raw_size) + frame
    ref = bomb_ref(data)
    FolderBlobStore(tmp_path).put(ref.key, data)
    outcome = attack_in_child(batch_read_setup(tmp_path, ref), "store.read(ref)")
    expected = {
        "frame declares 1 GiB": f"zstd frame declares {GiB} bytes of content, but the header's raw size is {raw_size}",
        "undeclared size expands to 1 GiB": f"expands past {raw_size} bytes",
        "header claims 1 GiB": "above the limit of 268435456",
    }[variant]
    assert_refused_and_bounded(outcome, "BatchFormatError", "batch 'b-bomb'", expected)
    report(AttackLine("bucket writer", f"32 KB batch bomb: {variant}", refusal("BatchFormatError", expected), outcome["growth"]))


# (c) Claim-check bombs, decoded through the codec.


@pytest.mark.parametrize(
    "variant", ["frame declares 1 GiB, ref 1,024 bytes", "undeclared size expands to 1 GiB", "ref promises 1 GiB"]
)
def test_a_claim_check_bomb_is_refused_with_bounded_memory(tmp_path: Path, variant: str) -> None:
    frame = zeros_frame(GiB, declare_size=variant.startswith("frame declares"))
    original_size = {
        "frame declares 1 GiB, ref 1,024 bytes": 1024,
        "undeclared size expands to 1 GiB": MAX_EXPANSION_RATIO * len(frame),  # as much as a reference may promise
        "ref promises 1 GiB": GiB,
    }[variant]
    sha = sha256_hex(frame)
    FolderBlobStore(tmp_path).put(content_key(sha, KEY_PREFIX), frame)
    reference = ClaimCheck(content_key(sha, KEY_PREFIX), sha, len(frame), original_size, "zstd").to_payload()
    setup = (
        "from temporalio.api.common.v1 import Payload\n"
        "from bulkorder.storage.claim_check import ClaimCheckCodec\n"
        "from bulkorder.storage.folder_store import FolderBlobStore\n"
        f"reference = Payload.FromString({reference.SerializeToString()!r})\n"
        f"codec = ClaimCheckCodec(FolderBlobStore({str(tmp_path)!r}))\n"
    )
    outcome = attack_in_child(setup, "asyncio.run(codec.decode([reference]))")
    expected = {
        "frame declares 1 GiB, ref 1,024 bytes": f"declares {GiB} bytes of content, but its reference's original size is 1024",
        "undeclared size expands to 1 GiB": f"expands past {original_size} bytes",
        "ref promises 1 GiB": f"an expansion above the limit of {MAX_EXPANSION_RATIO}x",
    }[variant]
    assert_refused_and_bounded(outcome, "ClaimCheckError", sha, expected)
    report(AttackLine("bucket writer", f"claim-check bomb: {variant}", refusal("ClaimCheckError", expected), outcome["growth"]))


# (d) An S3 object far larger than the ref's size.


def test_a_huge_s3_object_is_refused_without_reading_it(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> None:
    blobs = S3BlobStore(s3_bucket, endpoint_url=s3_endpoint, region_name="us-east-1")
    ref = BatchStore(blobs).write([make_item()])
    huge = tmp_path / "huge"
    with open(huge, "wb") as file:
        file.truncate(192 * MiB)  # zeros, without holding them in memory
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").upload_file(
        str(huge), s3_bucket, blobs.object_key(ref.key)
    )
    setup = (
        "from bulkorder.domain.refs import BatchRef\n"
        "from bulkorder.storage.batches import BatchStore\n"
        "from bulkorder.storage.s3_store import S3BlobStore\n"
        f"ref = BatchRef(**json.loads({json.dumps(json.dumps(dataclasses.asdict(ref)))}))\n"
        f"store = BatchStore(S3BlobStore({s3_bucket!r}, endpoint_url={s3_endpoint!r}, region_name='us-east-1'))\n"
    )
    outcome = attack_in_child(setup, "store.read(ref)")
    expected = f"is {192 * MiB} bytes, larger than the {ref.size} bytes its reference allows"
    assert_refused_and_bounded(outcome, "BlobTooLargeError", ref.key, expected)
    report(AttackLine("bucket writer", "192 MiB S3 object under a batch key", refusal("BlobTooLargeError", expected),
                      outcome["growth"]))


# (e) A torn file in the folder store.


def test_a_torn_file_is_refused_then_replaced_on_put(tmp_path: Path) -> None:
    batches = BatchStore(FolderBlobStore(tmp_path))
    items = [make_item(f"SKU-{i}", quantity=1 + i % 5, amount=100 + i, colour="red") for i in range(500)]
    ref, data = batches.encode(items)
    batches.put_encoded(ref, data)
    path = batches.blobs.path_for(ref.key)  # type: ignore[attr-defined]
    path.write_bytes(data[: len(data) // 2])  # a crash mid-write on a disk without fsync
    with pytest.raises(BlobIntegrityError) as refused:
        batches.read(ref)
    assert refused.value.key == ref.key
    batches.put_encoded(ref, data)  # the writer's retry: detects the torn file, replaces it
    assert batches.read(ref) == items
    assert path.read_bytes() == data
    report(AttackLine("bucket writer", "torn file at a batch key, then put again",
                      refusal("BlobIntegrityError", "read refused; put replaced it")))


# (f) A symlink in the blob root.


def test_a_symlink_in_the_blob_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    batches = BatchStore(FolderBlobStore(root))
    ref = batches.write([make_item(quantity=4)])
    # The attacker moves the fan-out directory aside and links in their own, holding a
    # batch of their choosing under the same name.
    fan_out = root / "batches" / ref.key.split("/")[1]
    planted = tmp_path / "planted"
    fan_out.rename(planted)
    fan_out.symlink_to(planted, target_is_directory=True)
    with pytest.raises(InvalidBlobKeyError, match="is a symlink; symlinks inside the blob root are refused"):
        batches.read(ref)
    with pytest.raises(InvalidBlobKeyError, match="is a symlink"):
        batches.blobs.put(ref.key, (planted / ref.sha256).read_bytes())
    assert (planted / ref.sha256).is_file() and fan_out.is_symlink()  # nothing written through the link
    report(AttackLine("bucket writer", "symlinked directory in the blob root", refusal("InvalidBlobKeyError", "is a symlink")))
