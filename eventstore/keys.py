"""Entity keys: the strings that address entities in URLs and on the command line (pure).

`entity_key(id)` is for people: ObjectId -> 24 hex, str -> itself, an integer value
-> digits, anything else -> `json:<canonical Extended JSON>`. It is not unique across
types.
`typed_key(id)` names one `_id` as MongoDB tells them apart: `oid:`, `int:`, `str:` or
`json:`. MongoDB compares numbers by value, in a unique index too, so one collection
never holds `_id: 1` and `_id: 1.0` at once, and `1`, `Int64(1)`, `1.0` and
`Decimal128("1.0")` are one entity here: `int:1` (see `_by_value`).
A bare key is resolved against the entities that exist (see `candidates`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from decimal import Context, Decimal
from typing import Any, Final

from bson import Decimal128, ObjectId, json_util
from bson.json_util import CANONICAL_JSON_OPTIONS, RELAXED_JSON_OPTIONS

from eventstore.model import STREAM_KEY, Event

_HEX24 = re.compile(r"[0-9a-fA-F]{24}")
_INT = re.compile(r"-?[0-9]+")
_TYPED_PREFIXES = ("oid:", "int:", "str:", "json:")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class InvalidKey(ValueError):
    """A key that cannot name any entity (malformed typed key)."""


def _canonical_json(value: Any) -> str:
    return json_util.dumps(value, json_options=CANONICAL_JSON_OPTIONS, separators=(",", ":"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def entity_key(entity_id: Any) -> str:
    """The human key of an `_id` (DESIGN.md "Entity keys"), by value as `typed_key` is.

    A number whose value is an integer within int64 is its digits whatever its BSON type
    (1.0 and Decimal128 1 are `1`, as 1 is), so an entity keeps one key however its
    writers spelled its `_id`.
    """
    if isinstance(entity_id, ObjectId):
        return str(entity_id)
    if isinstance(entity_id, str):
        return entity_id
    value = _by_value(entity_id)
    if _is_int(value):
        return str(value)
    return "json:" + _canonical_json(value)


def listed_key(entity_id: Any) -> str:
    """The key a listing hands out for an `_id`: `entity_key`, unless that reads as typed.

    A string `_id` that starts with a typed prefix (`"int:5"`, `"oid:…"`) is its own
    entity key, but that key, given back, names another value (the integer 5) or none:
    such a string is listed by its typed key (`str:int:5`), which names it alone.
    """
    if isinstance(entity_id, str) and (
        entity_id.startswith(_TYPED_PREFIXES)
        or entity_id in _NO_PATH_SEGMENT
        or entity_id == STREAM_KEY  # bare, it names the stream's own record
    ):
        return "str:" + entity_id
    return entity_key(entity_id)


def answer_key(entity_id: Any, asked: str) -> str:
    """The key an answer about one entity gives for it: one that, given back, names it alone.

    The listing's key (`listed_key`), unless the entity was asked for by a typed key and
    that bare key could name another value (`42`: the integer or the string): then the
    typed key (`int:42`). A bare key that reached the entity was resolved against what
    exists, so it is given back as it is. No look-up: an answer costs its reads alone.
    """
    if asked == STREAM_KEY:
        return asked
    listed = listed_key(entity_id)
    if is_typed(asked) and len(candidates(listed)) > 1:
        return typed_key(entity_id)
    return listed


# Strings whose bare key cannot be a path segment: empty, or one a URL resolves away
# (`/entities/..` is the stream's path to a browser, curl and any proxy).
_NO_PATH_SEGMENT: Final = frozenset({"", ".", ".."})


def shared_bare_keys(keys: Sequence[str], existing: Iterable[Any]) -> set[str]:
    """The bare keys among `keys` that name more than one of the `existing` `_id`s.

    `existing`: the stored `_id`s among every key's `candidates` (one query). A listing
    hands out the typed key for those (`int:42` beside `str:42`): given back, the bare
    key would be a 409.
    """
    stored = {typed_key(value) for value in existing}
    return {
        key
        for key in keys
        if not is_typed(key) and sum(typed_key(c) in stored for c in candidates(key)) > 1
    }


def event_typed_key(event: Event) -> str:
    """The key that names an event's entity alone when given back: its typed key, and
    `$stream` for the stream's own record (whose `_id` is null: `json:null` would name it
    too, and nothing may take it for an entity)."""
    return STREAM_KEY if event.is_stream_event else typed_key(event.entity_id)


def typed_key(entity_id: Any) -> str:
    """The unambiguous key of an `_id`: `oid:<hex>`, `int:<digits>`, `str:<text>`, `json:<ext>`.

    Values MongoDB holds equal have one key: a number by its value, in a document or an
    array too (`int:1` for 1, 1.0 and Decimal128 1; see `_by_value`).
    """
    if isinstance(entity_id, ObjectId):
        return f"oid:{entity_id}"
    if isinstance(entity_id, str):
        return f"str:{entity_id}"
    value = _by_value(entity_id)
    if _is_int(value):
        return f"int:{int(value)}"
    return "json:" + _canonical_json(value)


# Decimal128's 34 digits: normalising a Decimal128's value never rounds it.
_DECIMAL128 = Context(prec=34)


def _by_value(value: Any) -> Any:
    """The one representative of the values MongoDB compares equal to `value`.

    A number whose value is an integer within int64 is that int; else a double's value is
    the double (NaN one NaN), and a Decimal128 whose value is exactly a double's is that
    double, else the Decimal128 without trailing zeros. Documents and arrays hold their
    members' representatives, in order (MongoDB compares them member by member). Any
    other value is itself.
    """
    cls = value.__class__
    if cls is bool:
        return value
    if isinstance(value, int):
        return int(value)
    if cls is float:
        if math.isnan(value):
            return math.nan
        if value.is_integer() and _INT64_MIN <= value < 2**63:
            return int(value)
        return value
    if cls is Decimal128:
        exact = value.to_decimal()
        if exact.is_nan():
            return math.nan
        if exact.is_infinite():
            return float(exact)
        if exact == exact.to_integral_value() and _INT64_MIN <= exact <= _INT64_MAX:
            return int(exact)
        near = float(exact)
        if math.isfinite(near) and Decimal(near) == exact:
            return near
        return Decimal128(exact.normalize(_DECIMAL128))
    if isinstance(value, dict):
        return {k: _by_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_by_value(v) for v in value]
    return value


def parse_typed(key: str) -> Any:
    """The `_id` a typed key names. Raises `InvalidKey` for a malformed one."""
    prefix, _, rest = key.partition(":")
    if prefix == "oid":
        if not _HEX24.fullmatch(rest):
            raise InvalidKey(f"oid: needs 24 hexadecimal digits, got {shown_key(rest)}")
        return ObjectId(rest)
    if prefix == "int":
        value = _int64(rest)
        if value is None:
            raise InvalidKey(f"int: needs a 64-bit integer, got {shown_key(rest)}")
        return value
    if prefix == "str":
        return rest
    if prefix == "json":
        try:
            return json_util.loads(rest, json_options=CANONICAL_JSON_OPTIONS)
        except RecursionError:
            raise InvalidKey("json: the value is nested too deeply") from None
        except Exception as exc:  # any value bson cannot build (overflow, bad decimal, ...)
            raise InvalidKey(f"json: needs Extended JSON: {exc}") from exc
    raise InvalidKey(f"not a typed key: {shown_key(key)}")


# A key quoted in a message shows at most this many characters (a path segment may be
# tens of thousands long; an error need not echo it whole).
SHOWN_KEY_CHARS: Final = 200


def shown_key(key: str) -> str:
    """`key` quoted for a message: its repr, cut after SHOWN_KEY_CHARS characters with the
    length said (`'aaaa…' (20000 characters)`)."""
    if len(key) <= SHOWN_KEY_CHARS:
        return repr(key)
    return f"{key[:SHOWN_KEY_CHARS]!r}… ({len(key)} characters)"


def is_typed(key: str) -> bool:
    """True when the key carries an explicit type prefix."""
    return key.startswith(_TYPED_PREFIXES)


def candidates(key: str) -> list[Any]:
    """Every `_id` a key may name, most specific first.

    A typed key names exactly one value. A bare key may name a string, an
    ObjectId (24 hex) or an integer (digits); the caller keeps those that exist
    and reports an ambiguity when more than one does.
    """
    if is_typed(key):
        return [parse_typed(key)]
    found: list[Any] = [key]
    if _HEX24.fullmatch(key):
        found.append(ObjectId(key))
    value = _int64(key)
    if value is not None:
        found.append(value)
    return found


def _int64(text: str) -> int | None:
    """The integer `text` spells in ASCII digits, when it is an int64; else None.

    At most 20 characters (`-9223372036854775808`): longer digits are no int64, and past
    4,300 of them Python's `int()` refuses to read them at all (ValueError).
    """
    if len(text) > 20 or not _INT.fullmatch(text):
        return None
    value = int(text)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def relaxed_json(value: Any) -> Any:
    """`value` as relaxed Extended JSON, as a JSON-ready Python value ({"$oid": ...}, 42, "abc")."""
    # The usual `_id` types directly (exact types: a bool or an Int64 takes the general
    # path); the result is identical to the round trip through json_util below.
    kind = type(value)
    if kind is str:
        return value
    if kind is ObjectId:
        return {"$oid": str(value)}
    if kind is int and -(2**63) <= value < 2**63:
        return value
    return json.loads(json_util.dumps(value, json_options=RELAXED_JSON_OPTIONS))
