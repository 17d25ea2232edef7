"""JSON from outside (request bodies, files, another service's answers), read without a crash.

msgspec and the standard library raise RecursionError, not their decode error, on
input nested deeper than the interpreter allows (about 1,000 levels): a few
kilobytes of `[` would otherwise turn bad input into a traceback or a 500. Here
that is one more way for the input not to be JSON we can read.

A key that appears twice in one object is refused too. JSON leaves its meaning open
(RFC 8259: names SHOULD be unique; I-JSON, RFC 7493, says MUST), parsers disagree
on which one wins (the first, the last, an error), and a configuration or request
that says two things must not be read as one of them without a word.
"""

from __future__ import annotations

import json
from typing import Any, Final

import msgspec

TOO_DEEP: Final = "nested too deeply"


class NestedTooDeeply(msgspec.DecodeError):
    """JSON nested past the decoder's recursion limit (a DecodeError like any other)."""


class DuplicateKey(msgspec.DecodeError):
    """An object of the JSON names one key twice (a DecodeError, and so a ValueError)."""


def unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's members (in order) as a dict; DuplicateKey when a key comes twice
    (a `json.loads` object_pairs_hook: the dict is built anyway, and a shorter one says so)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(f"the key {key!r} appears twice in one object")
            seen.add(key)
    return obj


def check_unique_keys(data: bytes | str) -> None:
    """Raise DuplicateKey when an object of `data` (valid JSON) names a key twice."""
    try:
        json.loads(data, object_pairs_hook=unique_object)
    except DuplicateKey:
        raise
    except (ValueError, RecursionError):
        pass  # msgspec read it: what the standard library refuses beyond that is not ours


def decode_json(data: bytes | str) -> Any:
    """`data` as JSON (any value); msgspec.DecodeError when it is not (NestedTooDeeply when
    it nests too deeply, DuplicateKey when an object names a key twice)."""
    try:
        value = msgspec.json.decode(data)
    except RecursionError:
        raise NestedTooDeeply(f"JSON {TOO_DEEP}") from None
    if isinstance(value, (dict, list)):
        check_unique_keys(data)
    return value


# Integral doubles up to here are exact: past it, 2.0 ** 60 may stand for a neighbour.
EXACT_DOUBLE: Final = 2**53


def whole_number(value: Any) -> int | None:
    """`value` as an int when it is a whole JSON number, else None.

    JSON has one number type: `2` and `2.0` are the same number, and JSON Schema's
    `integer` (what OpenAPI documents) admits both, so a client that writes every
    number as a double is not refused. A boolean is not a number; a double with a
    fraction, or integral beyond 2^53 (where it may stand for its neighbour), is not
    a whole number.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) <= EXACT_DOUBLE:
        return int(value)
    return None


def loads(text: str) -> Any:
    """`text` as JSON by the standard library's rules; ValueError when it is not, nests too
    deeply, or names a key twice in one object."""
    try:
        return json.loads(text, object_pairs_hook=unique_object)
    except RecursionError:
        raise ValueError(f"JSON {TOO_DEEP}") from None


__all__ = [
    "TOO_DEEP",
    "DuplicateKey",
    "NestedTooDeeply",
    "check_unique_keys",
    "decode_json",
    "loads",
    "unique_object",
    "whole_number",
]
