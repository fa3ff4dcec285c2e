"""Strict JSON for items from outside: finite numbers, unique keys, bounded nesting."""

from __future__ import annotations

import pytest

from bulkorder.domain.json_text import MAX_DEPTH, JsonTextError, loads, nesting_depth


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": NaN}', "NaN is not a number JSON allows"),
        ('{"a": Infinity}', "Infinity is not a number JSON allows"),
        ('{"a": -Infinity}', "-Infinity is not a number JSON allows"),
        ('{"a": 1e999}', "the number 1e999 is too large for a 64-bit float"),
        ('{"a": -1e400}', "too large for a 64-bit float"),
        ('{"a": 1, "a": 2}', "the key 'a' appears twice in one object"),
        ('{"p": {"x": 1, "y": 2, "x": 3}}', "the key 'x' appears twice"),
        ("[" * 10_000 + "]" * 10_000, "nested 10,000 levels deep; at most 32"),
        ('{"a":' * 10_000 + "1" + "}" * 10_000, "nested 10,000 levels deep"),
        ("[" * 100_000, "nested 100,000 levels deep"),
        ('{"a": 1', "not valid JSON: Expecting ',' delimiter"),
        ("1" * 5_000, "not valid JSON"),
        (b"\xff{}", "not UTF-8 text"),
    ],
)
def test_what_json_loads_lets_through_is_refused(text: str | bytes, message: str) -> None:
    with pytest.raises(JsonTextError, match="^not valid JSON: |^not UTF-8") as caught:
        loads(text)
    assert message in str(caught.value)


def test_standard_json_is_parsed_as_json_loads_would() -> None:
    text = '{"sku": "A:1", "n": [1, 2.5, -3e10, null, true], "s": "[[[{{{", "e": {}}'
    assert loads(text) == {"sku": "A:1", "n": [1, 2.5, -3e10, None, True], "s": "[[[{{{", "e": {}}
    assert loads(b'{"a": "\\u00e9"}') == {"a": "\u00e9"}
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert nesting_depth(deep) == MAX_DEPTH and loads(deep) is not None


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = '{"a": "' + "[" * 1_000 + '", "b": "\\"' + "{" * 1_000 + '"}'
    assert nesting_depth(text) == 1
    assert loads(text)["a"] == "[" * 1_000
