"""Fuzz the codec server's request parsing (bulkorder/codec_protocol.py): whatever the body,
the Host header, the route or the Authorization header, only a :class:`CodecRequestError`
with a 4xx status comes out, never another exception (which would be a 500)."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from bulkorder.codec_protocol import (
    CodecRequestError,
    HostPolicy,
    check_bearer,
    check_content_type,
    parse_payloads,
    parse_route,
)

b64 = st.binary(max_size=64).map(lambda data: base64.b64encode(data).decode())
near_b64 = st.one_of(b64, st.text(max_size=20), b64.map(lambda s: s[:-1]), b64.map(lambda s: s.replace("=", "-")))
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10), near_b64)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)
metadata = st.dictionaries(st.sampled_from(["encoding", "encryption-key-id", "", "é"]), near_b64, max_size=3)
payload = st.fixed_dictionaries(
    {},
    optional={
        "metadata": st.one_of(metadata, json_value),
        "data": st.one_of(near_b64, json_value),
        "externalPayloads": st.one_of(st.lists(st.dictionaries(st.sampled_from(["sizeBytes", "x"]), json_value)), json_value),
        "extra": json_value,
    },
)
document = st.one_of(
    st.fixed_dictionaries({"payloads": st.lists(payload, max_size=4)}),
    st.fixed_dictionaries({"payloads": json_value}),
    st.dictionaries(st.sampled_from(["payloads", "Payloads", "x"]), json_value, max_size=2),
    json_value,
)


def mutate(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    body = bytearray(data)
    for position, value in flips:
        if body:
            body[position % len(body)] = value
    return bytes(body)


bodies = st.one_of(
    document.map(lambda doc: json.dumps(doc).encode()),
    st.tuples(document.map(lambda doc: json.dumps(doc).encode()), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4)).map(
        lambda pair: mutate(*pair)
    ),
    st.binary(max_size=200),
    st.integers(1, 5_000).map(lambda depth: b'{"payloads": [' + b"[" * depth + b"]" * depth + b"]}"),
)


def assert_4xx(error: CodecRequestError) -> None:
    assert 400 <= error.status < 500, error.status
    assert error.message and "Traceback" not in error.message


@given(bodies)
@example(b'{"payloads": [{"data": "not base64!"}]}')
@example(b'{"payloads": [{"metadata": {"encoding": "@@"}}]}')
@example(b'{"payloads": NaN}')
@example(b"\xff\xfe")
def test_parse_payloads_answers_only_4xx(body: bytes) -> None:
    try:
        result = parse_payloads(body)
    except CodecRequestError as error:
        assert_4xx(error)
        return
    assert isinstance(result, list)


any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)


@given(st.text(max_size=60), any_text, any_text, any_text)
@example("/decode", "[::1]:99999", "application/json; charset=utf-8", "Bearer \ud800")  # a lone surrogate
def test_route_host_type_and_token_checks_answer_only_4xx(path: str, host: str, content_type: str, authorization: str) -> None:
    checks: list[Any] = [
        lambda: parse_route(path),
        lambda: HostPolicy.serving("127.0.0.1", ["codec.example.com"]).check(host),
        lambda: HostPolicy.serving("0.0.0.0").check(host),
        lambda: check_content_type(content_type),
        lambda: check_bearer(authorization, "tok"),
    ]
    for check in checks:
        try:
            check()
        except CodecRequestError as error:
            assert_4xx(error)


def test_a_lone_surrogate_in_the_token_is_a_401() -> None:
    """Found by fuzzing: ``encode("utf-8", "surrogateescape")`` raised on ``\ud800``."""
    try:
        check_bearer("Bearer \ud800", "tok")
    except CodecRequestError as error:
        assert error.status == 401
    else:
        raise AssertionError("accepted a wrong token")
