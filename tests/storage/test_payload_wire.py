"""A payload's wire format in two parts: the same message back, the same bytes as protobuf's."""

from __future__ import annotations

import pytest
from temporalio.api.common.v1 import Payload

from bulkorder.storage.payload_wire import payload_is_larger_than, serialized_parts

PAYLOADS = {
    "empty": Payload(),
    "metadata only": Payload(metadata={"encoding": b"json/plain"}),
    "small": Payload(metadata={"encoding": b"json/plain", "note": b"x"}, data=b'{"a":1}'),
    # Lengths whose varint takes 1, 2, 3 and 4 bytes.
    **{f"{size} bytes": Payload(metadata={"encoding": b"binary/plain"}, data=bytes(range(256)) * (size // 256) + b"x" * (size % 256))
       for size in (127, 128, 16_384, 2_097_152)},
}


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_joined_parts_are_protobufs_deterministic_bytes(payload: Payload) -> None:
    head, data = serialized_parts(payload)
    assert head + data == payload.SerializeToString(deterministic=True)
    assert Payload.FromString(head + data) == payload


def test_every_field_survives() -> None:
    payload = Payload(metadata={"encoding": b"binary/plain"}, data=b"d" * 1000)
    payload.external_payloads.add(size_bytes=42)
    head, data = serialized_parts(payload)
    assert Payload.FromString(head + data) == payload


@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_size_check_matches_the_serialized_size(delta: int) -> None:
    payload = Payload(metadata={"encoding": b"binary/plain"}, data=b"x" * 5000)
    limit = payload.ByteSize() + delta
    assert payload_is_larger_than(payload, limit) == (payload.ByteSize() > limit)
