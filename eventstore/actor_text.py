"""Which recorded actors a text names, as the audit query's `actor` reads it (pure).

An event's actor is the value the document held (ACTOR_FIELD): a string, a
number, an ObjectId, a boolean. A query gives it as text, which names the string
itself and the value the text spells: `42` the number 42, compared by value as
MongoDB compares numbers (int 42, NumberLong 42, the double 42.0 and
NumberDecimal 42 alike), `7.5` the number 7.5, 24 lowercase hex digits the
ObjectId, `true` and `false` the booleans (as JSON and the API write them). A
number's text is a JSON number (`42`, `-3`, `7.5`, `1e3`), never `+1`, `042` or
`NaN`; any other actor (a date, a UUID) is named by nothing but its own string.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable
from contextlib import suppress
from decimal import Decimal
from typing import Any, Final

from bson import Decimal128, Int64, ObjectId

_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_OBJECT_ID: Final = re.compile(r"[0-9a-f]{24}")
_BOOLEANS: Final = {"true": True, "false": False}
_INT64: Final = range(-(2**63), 2**63)


def actor_values(text: str) -> tuple[Any, ...]:
    """The BSON values `text` names, the string first: what an `$in` on `actor` lists."""
    values: list[Any] = [text]
    if text in _BOOLEANS:
        values.append(_BOOLEANS[text])
    if _OBJECT_ID.fullmatch(text):
        values.append(ObjectId(text))
    number = _NUMBER.fullmatch(text)
    if number is not None:
        values += _numbers(text, integral=number[1] is None and number[2] is None)
    return tuple(values)


def _numbers(text: str, *, integral: bool) -> list[Any]:
    """The numbers a JSON number's text names: each compares by value with every numeric type."""
    found: list[Any] = []
    exact = Decimal(text)
    if integral and int(exact) in _INT64:
        found.append(Int64(int(exact)))
    else:
        double = float(exact)  # the nearest double, as a JSON reader takes the text
        # Not one past the double's range (`1e400`), nor too small to tell from 0 (`1e-400`).
        if math.isfinite(double) and (double != 0 or exact == 0):
            found.append(double)
    with suppress(ArithmeticError):  # inexact in 34 digits: no NumberDecimal has this value
        found.append(Decimal128(text))
    return found


class _Kind:
    """A kind of actor in an index key: each kind one object, equal to itself alone."""


_BOOLEAN: Final = _Kind()
_TEXT: Final = _Kind()
_NUMERIC: Final = _Kind()  # by value: int, long, double and decimal alike
_OBJECT_ID_KIND: Final = _Kind()


def actor_key(actor: Any) -> Hashable | None:
    """What an index lists a recorded actor under: equal keys for the actors one text names.

    Numbers keep their value (Python compares and hashes int, float and Decimal by
    value, as MongoDB compares numbers); a boolean is no number (True is not 1); None
    for an actor no text names (none, NaN, a date...).
    """
    if isinstance(actor, bool):
        return (_BOOLEAN, actor)
    if isinstance(actor, str):
        return (_TEXT, actor)
    if isinstance(actor, int):
        return (_NUMERIC, int(actor))
    if isinstance(actor, float):
        return (_NUMERIC, actor) if math.isfinite(actor) else None
    if isinstance(actor, Decimal128):
        value = actor.to_decimal()
        return (_NUMERIC, value) if value.is_finite() else None
    if isinstance(actor, ObjectId):
        return (_OBJECT_ID_KIND, actor)
    return None


def actor_keys(text: str) -> frozenset[Hashable]:
    """The index keys of the actors `text` names (one per value: 42 and 42.0 are one key)."""
    return frozenset(key for key in map(actor_key, actor_values(text)) if key is not None)


def names_actor(text: str, actor: Any) -> bool:
    """True when `text` names the recorded actor (the string itself, or the value it spells)."""
    key = actor_key(actor)
    return key is not None and key in actor_keys(text)
