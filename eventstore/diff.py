"""Field-level differences between two states of a document, and BSON-aware equality (pure).

Equality (`same_value`) follows what BSON stores, because an auditor cares about
what the database holds, not what Python considers equal:

- the type matters: `1` (int), `1.0` (double), `True` (bool) and
  `Decimal128("1")` are four different values;
- Decimal128 compares by representation: `Decimal128("1.0")` and
  `Decimal128("1.00")` are stored differently (the scale is data: a price
  written with two decimals), so they differ;
- doubles compare by their bits: NaN equals NaN, `-0.0` differs from `0.0`;
- int32 and int64 are not told apart (PyMongo decodes both to `int`);
- datetimes compare as UTC instants at millisecond precision (BSON's), a naive
  datetime being UTC;
- key order inside sub-documents is ignored (MongoDB may order new fields
  differently from a fold); array order matters.

`diff` walks both states depth first. Order (stable, and the order of the API's
`changes`): at each level the keys of `before` in its document order (removed or
changed, descending into sub-documents and arrays in place), then the keys only
in `after`, in `after`'s order. Arrays compare element by element by index; when
the lengths differ, the extra elements are `added` or `removed` entries of their
own (`items.3`). A sub-document replaced by an array or a scalar (or the reverse)
is one `changed` entry with both whole values.

`path` joins the components with "."; a field name containing a dot therefore
makes a path ambiguous, which `parts` resolves (field names as strings, array
indices as ints, like MongoDB's `disambiguatedPaths`).
"""

from __future__ import annotations

import struct
from datetime import datetime
from typing import Any, Literal

import msgspec
from bson import Decimal128

from eventstore.codec import utc_ms

Op = Literal["added", "removed", "changed"]
Part = str | int


class FieldChange(msgspec.Struct, frozen=True, kw_only=True):
    """One field that differs between two states (`before` is None when added, `after` when removed)."""

    path: str
    op: Op
    before: Any = None
    after: Any = None
    parts: tuple[Part, ...] = ()


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
    ta, tb = type(a), type(b)
    if ta is bool or tb is bool:
        return ta is tb and a == b
    if isinstance(a, int) and isinstance(b, int):
        # int and bson.Int64: one BSON "integer" once decoded
        return int(a) == int(b)
    if ta is float and tb is float:
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, Decimal128) and isinstance(b, Decimal128):
        return a.bid == b.bid
    if isinstance(a, datetime) and isinstance(b, datetime):
        return utc_ms(a) == utc_ms(b)
    return ta is tb and bool(a == b)


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


def _entry(op: Op, parts: tuple[Part, ...], before: Any, after: Any) -> FieldChange:
    return FieldChange(path=_path(parts), op=op, before=before, after=after, parts=parts)


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
        out.append(_entry("changed", parts, a, b))


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


__all__ = ["FieldChange", "diff", "same_value"]
