"""Fuzz the claim-check codec: forged references, mutated stored frames, forged inline payloads.

Whatever a reference payload says and whatever bytes sit under its key, decoding either
restores a payload or raises one of the codec's documented errors: ``ClaimCheckError``
(malformed reference, a blob that does not restore what it promises), ``BlobNotFoundError``
(no such blob) or ``BlobIntegrityError`` (bytes that do not hash to the reference).
Every example's stored blob is a few KB at most, and the codec refuses to expand it more
than 1,000x, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest
import zstandard
from hypothesis import example, given
from hypothesis import strategies as st
from temporalio.api.common.v1 import Payload

from bulkorder.storage.blob_store import content_key, sha256_hex
from bulkorder.storage.claim_check import KEY_PREFIX, REFERENCE_ENCODING, ClaimCheck, ClaimCheckCodec
from bulkorder.storage.claim_check_ref import INLINE_ENCODING, INLINE_SIZE_KEY
from bulkorder.storage.errors import BlobIntegrityError, BlobNotFoundError, ClaimCheckError
from bulkorder.storage.folder_store import FolderBlobStore

DOCUMENTED = (ClaimCheckError, BlobNotFoundError, BlobIntegrityError)

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=80)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)),
    max_leaves=12,
)
fields = ["v", "key", "sha256", "stored_size", "original_size", "compression"]


@pytest.fixture(scope="module")
def codec() -> Iterator[ClaimCheckCodec]:
    # Module-scoped (hypothesis reuses it across examples); no cache, so every decode reads.
    with tempfile.TemporaryDirectory() as root:
        codec = ClaimCheckCodec(FolderBlobStore(Path(root), fsync=False), cache_bytes=0)
        yield codec
        codec.close()


def original_payload(data: bytes) -> bytes:
    return Payload(metadata={"encoding": b"binary/plain"}, data=data).SerializeToString(deterministic=True)


@st.composite
def stored_frames(draw: st.DrawFn) -> tuple[bytes, str, int]:
    """Bytes to store under their content key, the compression a reference will claim,
    and the original size it will promise: a real payload's frame, then mutated."""
    raw = original_payload(draw(st.binary(max_size=2048)))
    compression = draw(st.sampled_from(["zstd", "none"]))
    stored = bytearray(
        zstandard.ZstdCompressor(write_content_size=draw(st.booleans())).compress(raw) if compression == "zstd" else raw
    )
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, max(0, len(stored) - 1)))
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "declare"]))
        if kind == "flip" and stored:
            stored[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del stored[position:]
        elif kind == "insert":
            stored[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "declare" and compression == "zstd":
            # A frame header declaring a size of the attacker's choosing (8-byte field).
            stored = bytearray(b"\x28\xb5\x2f\xfd\xe0" + draw(st.integers(0, 2**64 - 1)).to_bytes(8, "little"))
            block_header = 1 | len(raw) << 3  # last block, raw, len(raw) bytes
            stored += block_header.to_bytes(3, "little") + raw
    original = draw(st.one_of(st.just(len(raw)), st.integers(0, 2**31)))
    return bytes(stored), compression, original


@given(stored_frames(), st.dictionaries(st.sampled_from(fields), json_values, max_size=2))
def test_decoding_a_reference_to_mutated_bytes_raises_only_documented_errors(
    codec: ClaimCheckCodec, frame: tuple[bytes, str, int], overrides: dict[str, Any]
) -> None:
    stored, compression, original = frame
    sha = sha256_hex(stored)
    key = content_key(sha, KEY_PREFIX)
    codec.store.put(key, stored)
    body = json.loads(ClaimCheck(key, sha, len(stored), original, compression).to_payload().data)
    body.update(overrides)  # a forged field or two
    reference = Payload(metadata={"encoding": REFERENCE_ENCODING}, data=json.dumps(body).encode())
    try:
        [decoded] = asyncio.run(codec.decode([reference]))
    except DOCUMENTED:
        return
    assert isinstance(decoded, Payload)


@given(st.one_of(st.binary(max_size=2048), json_values.map(lambda value: json.dumps(value).encode())))
@example(b"[" * 100_000)
@example(b'{"v": 1, "key": "payloads/aa/' + b"a" * 64 + b'", "sha256": "' + b"a" * 64 + b'", "stored_size": 1, '
         b'"original_size": 1, "compression": ["zstd"]}')
def test_parsing_any_reference_body_raises_only_claim_check_error(body: bytes) -> None:
    reference = Payload(metadata={"encoding": REFERENCE_ENCODING}, data=body)
    try:
        claim = ClaimCheck.from_payload(reference)
    except ClaimCheckError:
        return
    assert claim.key == content_key(claim.sha256, KEY_PREFIX)


@given(stored_frames(), st.one_of(st.none(), st.binary(max_size=12), st.integers(-5, 2**40).map(lambda n: str(n).encode())))
def test_decoding_a_mutated_inline_payload_raises_only_claim_check_error(
    codec: ClaimCheckCodec, frame: tuple[bytes, str, int], size: bytes | None
) -> None:
    stored, _, original = frame
    metadata = {"encoding": INLINE_ENCODING, INLINE_SIZE_KEY: str(original).encode() if size is None else size}
    try:
        [decoded] = asyncio.run(codec.decode([Payload(metadata=metadata, data=stored)]))
    except ClaimCheckError:
        return
    assert isinstance(decoded, Payload)
