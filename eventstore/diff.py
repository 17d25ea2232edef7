"""Field-level differences between two states of a document, and BSON-aware equality (pure).

Equality (`same_value`) follows what BSON stores, because an auditor cares about
what the database holds, not what Python considers equal:

- the BSON type matters (`bson_type`, MongoDB's `$type` alias): `1` (int),
  `NumberLong(1)` (long), `1.0` (double), `True` (bool) and `Decimal128("1")`
  are five different values, and so are a Decimal128 and the string of its
  digits, an ObjectId and its hex, a date and its RFC 3339 text, a Timestamp
  and the sub-document `{t, i}`, a UUID (binary) and its text. PyMongo
  decodes an int64 as `bson.Int64` and an int32 as `int`; a Python `int` beyond
  32 bits is stored as an int64, so it is a long;
- Decimal128 compares by representation: `Decimal128("1.0")` and
  `Decimal128("1.00")` are stored differently (the scale is data: a price
  written with two decimals), so they differ;
- doubles compare by their bits: NaN equals NaN, `-0.0` differs from `0.0`;
- dates compare as UTC instants at millisecond precision (BSON's), a naive
  datetime being UTC; a date outside years 1-9999 (a `DatetimeMS`) by its
  milliseconds;
- binary compares by subtype and bytes;
- key order inside sub-documents is ignored (MongoDB may order new fields
  differently from a fold); array order matters.

`diff` walks both states depth first. Order (stable, and the order of the API's
`changes`): at each level the keys of `before` in its document order (removed or
changed, descending into sub-documents and arrays in place), then the keys only
in `after`, in `after`'s order. Arrays compare element by element by index; when
the lengths differ, the extra elements are `added` or `removed` entries of their
own (`items.3`). A sub-document replaced by an array or a scalar (or the reverse)
is one `changed` entry with both whole values. A `changed` entry whose two
sides are of different BSON types names them (`before_type`, `after_type`):
their JSON renderings may be the same (`Decimal128("1.0")` and `"1.0"`).

`path` joins the components with "."; a field name containing a dot therefore
makes a path ambiguous, which `parts` resolves (field names as strings, array
indices as ints, like MongoDB's `disambiguatedPaths`).
"""

from __future__ import annotations

import re
import struct
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal

import msgspec
from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.datetime_ms import DatetimeMS

Op = Literal["added", "removed", "changed"]
Part = str | int


class FieldChange(msgspec.Struct, frozen=True, kw_only=True):
    """One field that differs between two states (`before` is None when added, `after` when removed)."""

    path: str
    op: Op
    before: Any = None
    after: Any = None
    parts: tuple[Part, ...] = ()
    # A `changed` entry's BSON types (`bson_type`), only when they differ; else None.
    before_type: str | None = None
    after_type: str | None = None


# MongoDB's `$type` aliases of the Python types PyMongo decodes BSON into (exact types).
_ALIASES: Final[dict[type, str]] = {
    type(None): "null",
    bool: "bool",
    float: "double",
    str: "string",
    dict: "object",
    list: "array",
    tuple: "array",
    Int64: "long",
    ObjectId: "objectId",
    datetime: "date",
    DatetimeMS: "date",
    Decimal128: "decimal",
    Timestamp: "timestamp",
    Binary: "binData",
    bytes: "binData",
    uuid.UUID: "binData",
    Regex: "regex",
    re.Pattern: "regex",
    MinKey: "minKey",
    MaxKey: "maxKey",
    DBRef: "object",  # a sub-document {$ref, $id} in BSON
}
_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1


def bson_type(value: Any) -> str:
    """The BSON type of a value as MongoDB's `$type` alias: `int`, `long`, `double`,
    `decimal`, `string`, `date`, `binData`, `timestamp`, `objectId`, `object`, …

    A Python `int` is an `int` (int32) when 32 bits hold it, else a `long`, as PyMongo
    stores it; a `bson.Int64` is always a `long`.
    """
    kind = type(value)
    if kind is int:
        return "int" if _INT32_MIN <= value <= _INT32_MAX else "long"
    alias = _ALIASES.get(kind)
    if alias is not None:
        return alias
    if isinstance(value, Code):  # a str subclass
        return "javascript" if value.scope is None else "javascriptWithScope"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Int64):
        return "long"
    if isinstance(value, int):
        return "int" if _INT32_MIN <= value <= _INT32_MAX else "long"
    for base, name in _BASES:
        if isinstance(value, base):
            return name
    return kind.__name__


# Subclasses (SON, RawBSONDocument, an aware datetime's subclass, …), in this order.
_BASES: Final[tuple[tuple[type | tuple[type, ...], str], ...]] = (
    (float, "double"),
    (str, "string"),
    (Mapping, "object"),
    ((list, tuple), "array"),
    (datetime, "date"),
    ((bytes, bytearray), "binData"),
)


def is_ambiguous(parts: Sequence[Part]) -> bool:
    """True when the dotted path of `parts` could name another field: one of its field
    names looks like an array index or contains a dot (MongoDB's rule for
    `disambiguatedPaths`)."""
    return any(isinstance(p, str) and ("." in p or (p.isascii() and p.isdigit())) for p in parts)


def same_value(a: Any, b: Any) -> bool:
    """True when two BSON values are the same stored value (see the module notes)."""
    if a is b:
        return True
    if isinstance(a, dict):
        if not isinstance(b, dict) or len(a) != len(b):
            return False
        return all(key in b and same_value(value, b[key]) for key, value in a.items())
    if isinstance(a, (list, tuple)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            return False
        return all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(b, (dict, list, tuple)):
        return False
    return _same_scalar(a, b)


def _same_scalar(a: Any, b: Any) -> bool:
    kind = bson_type(a)
    if kind != bson_type(b):
        return False
    if kind == "int" or kind == "long":
        return int(a) == int(b)
    if kind == "double":
        return struct.pack("<d", a) == struct.pack("<d", b)
    if kind == "decimal":
        return bool(a.bid == b.bid)
    if kind == "date":
        return _ms(a) == _ms(b)
    if kind == "binData":
        return _binary(a) == _binary(b)
    if kind == "bool":
        return bool(a) is bool(b)
    return type(a) is type(b) and bool(a == b)


def _ms(value: Any) -> int:
    """A date's milliseconds since 1970 (UTC; a naive datetime is UTC), as BSON stores it."""
    return int(value if isinstance(value, DatetimeMS) else DatetimeMS(value))


def _binary(value: Any) -> tuple[int, bytes]:
    """A binary value's (subtype, bytes): `bytes` is subtype 0, a UUID subtype 4."""
    if isinstance(value, uuid.UUID):
        return 4, value.bytes
    return getattr(value, "subtype", 0), bytes(value)


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[FieldChange]:
    """The field changes from `before` to `after`, in the stable order the module describes.

    No document on one side (the entity did not exist, or was deleted): every
    top-level field of the other side is one `added` or `removed` entry.
    """
    out: list[FieldChange] = []
    if before is None and after is None:
        return out
    if before is None:
        assert after is not None
        out.extend(_entry("added", (k,), None, v) for k, v in after.items())
        return out
    if after is None:
        out.extend(_entry("removed", (k,), v, None) for k, v in before.items())
        return out
    _diff_doc(before, after, (), out)
    return out


def _path(parts: tuple[Part, ...]) -> str:
    return ".".join(str(p) for p in parts)


def _entry(
    op: Op,
    parts: tuple[Part, ...],
    before: Any,
    after: Any,
    types: tuple[str, str] | tuple[None, None] = (None, None),
) -> FieldChange:
    return FieldChange(
        path=_path(parts),
        op=op,
        before=before,
        after=after,
        parts=parts,
        before_type=types[0],
        after_type=types[1],
    )


def _diff_value(a: Any, b: Any, parts: tuple[Part, ...], out: list[FieldChange]) -> None:
    if a is b:
        # The fold copies on write: a subtree an event left alone is the same object on
        # both sides, so a diff costs the changed paths, not the document.
        return
    if isinstance(a, dict) and isinstance(b, dict):
        _diff_doc(a, b, parts, out)
    elif isinstance(a, list) and isinstance(b, list):
        _diff_array(a, b, parts, out)
    elif not same_value(a, b):
        types = bson_type(a), bson_type(b)
        out.append(_entry("changed", parts, a, b, types if types[0] != types[1] else (None, None)))


def _diff_doc(
    a: dict[str, Any], b: dict[str, Any], parts: tuple[Part, ...], out: list[FieldChange]
) -> None:
    for key, value in a.items():
        if key in b:
            _diff_value(value, b[key], (*parts, key), out)
        else:
            out.append(_entry("removed", (*parts, key), value, None))
    for key, value in b.items():
        if key not in a:
            out.append(_entry("added", (*parts, key), None, value))


def _diff_array(
    a: list[Any], b: list[Any], parts: tuple[Part, ...], out: list[FieldChange]
) -> None:
    common = min(len(a), len(b))
    for i in range(common):
        _diff_value(a[i], b[i], (*parts, i), out)
    for i in range(common, len(a)):
        out.append(_entry("removed", (*parts, i), a[i], None))
    for i in range(common, len(b)):
        out.append(_entry("added", (*parts, i), None, b[i]))


__all__ = ["FieldChange", "bson_type", "diff", "is_ambiguous", "same_value"]
