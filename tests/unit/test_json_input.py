"""JSON from outside: nesting past the interpreter's recursion limit, or a key named twice in
one object, is a decode error."""

from __future__ import annotations

import re

import msgspec
import pytest

from eventstore.json_input import TOO_DEEP, DuplicateKey, NestedTooDeeply, decode_json, loads

DEEP = "[" * 5000 + "]" * 5000


def test_json_is_read_as_it_is() -> None:
    assert decode_json(b'{"a": [1, 2.5, null, "x"]}') == {"a": [1, 2.5, None, "x"]}
    assert loads('{"a": [1, 2.5, null, "x"]}') == {"a": [1, 2.5, None, "x"]}
    nested = "[" * 50 + "]" * 50  # deep, but well inside the limit
    assert decode_json(nested) == loads(nested)


def test_nesting_too_deep_is_the_decoders_own_error() -> None:
    for data in (DEEP, DEEP.encode(), '{"a":' * 3000 + "1" + "}" * 3000):
        with pytest.raises(NestedTooDeeply, match=f"JSON {TOO_DEEP}"):
            decode_json(data)
        with pytest.raises(ValueError, match=f"JSON {TOO_DEEP}"):
            loads(data if isinstance(data, str) else data.decode())


def test_what_is_not_json_stays_a_decode_error() -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_json(b"{")
    with pytest.raises(ValueError):
        loads("{")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{"a": 1, "a": 2}', "a"),
        ('{"a": 1, "b": 2, "a": 1}', "a"),  # the same value twice is still said twice
        ('{"x": {"sink": {"secret": "s1", "secret": "s2"}}}', "secret"),
        ('[{"n": 1}, {"k": 1, "k": 1}]', "k"),
        ('{"": 1, "": 2}', ""),
        ('{"\\u0061": 1, "a": 2}', "a"),  # an escape names the same key
    ],
)
def test_a_key_named_twice_in_one_object_is_refused_naming_it(text: str, key: str) -> None:
    with pytest.raises(DuplicateKey, match=re.escape(f"the key {key!r} appears twice")):
        decode_json(text)
    with pytest.raises(DuplicateKey):
        decode_json(text.encode())
    with pytest.raises(ValueError, match=re.escape(f"the key {key!r} appears twice")):
        loads(text)


def test_the_same_key_in_different_objects_is_fine() -> None:
    text = '[{"a": 1}, {"a": 2}, {"a": {"a": 3}}]'
    assert decode_json(text) == loads(text) == [{"a": 1}, {"a": 2}, {"a": {"a": 3}}]
    assert decode_json('"a"') == "a" and decode_json("3") == 3
