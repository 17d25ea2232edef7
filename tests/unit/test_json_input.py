"""JSON from outside: nesting past the interpreter's recursion limit is a decode error."""

from __future__ import annotations

import msgspec
import pytest

from eventstore.json_input import TOO_DEEP, NestedTooDeeply, decode_json, loads

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
