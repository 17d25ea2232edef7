"""JSON from outside (request bodies, files, another service's answers), read without a crash.

msgspec and the standard library raise RecursionError, not their decode error, on
input nested deeper than the interpreter allows (about 1,000 levels): a few
kilobytes of `[` would otherwise turn bad input into a traceback or a 500. Here
that is one more way for the input not to be JSON we can read.
"""

from __future__ import annotations

import json
from typing import Any, Final

import msgspec

TOO_DEEP: Final = "nested too deeply"


class NestedTooDeeply(msgspec.DecodeError):
    """JSON nested past the decoder's recursion limit (a DecodeError like any other)."""


def decode_json(data: bytes | str) -> Any:
    """`data` as JSON (any value); msgspec.DecodeError when it is not (NestedTooDeeply when
    it nests too deeply)."""
    try:
        return msgspec.json.decode(data)
    except RecursionError:
        raise NestedTooDeeply(f"JSON {TOO_DEEP}") from None


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
    """`text` as JSON by the standard library's rules; ValueError when it is not, or nests too deeply."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"JSON {TOO_DEEP}") from None


__all__ = ["TOO_DEEP", "NestedTooDeeply", "decode_json", "loads", "whole_number"]
