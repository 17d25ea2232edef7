"""Equality filters on read-model rows, read as MongoDB reads `{field: value}`.

A filter's field is a path (`customer.id`): it reaches into sub-documents, and into
every element of an array on its way (`items.sku` reaches each item's `sku`; a
component of ASCII digits also names an array's position, `items.0.sku`). A row
matches when a value the path reaches equals the filter's value, or is an array holding
an element equal to it (MongoDB's match of an array: `{"tags": "a"}` finds
`{"tags": ["a", "b"]}`). The memory adapter and the projection runner read filters by
this one rule, so a filter finds the same rows on both stores.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def reached(row: Mapping[str, Any], field: str) -> list[Any]:
    """The values the path `field` reaches in `row`; none, or None for a missing top-level
    field, when it reaches nothing (every caller reads nothing as null)."""
    if "." not in field:  # the usual top-level field
        return [row.get(field)]
    found: list[Any] = []
    _walk(row, field.split("."), found)
    return found


def _walk(value: Any, parts: list[str], found: list[Any]) -> None:
    if not parts:
        found.append(value)
        return
    head, rest = parts[0], parts[1:]
    if isinstance(value, Mapping):
        if head in value:
            _walk(value[head], rest, found)
    elif isinstance(value, list):
        if head.isascii() and head.isdigit() and int(head) < len(value):
            _walk(value[int(head)], rest, found)  # a position
        for item in value:  # and each element's field of that name
            if isinstance(item, Mapping):
                _walk(item, parts, found)


def holds(stored: Any, wanted: Any) -> bool:
    """True when a field holding `stored` matches a filter's `wanted` value."""
    if stored == wanted:
        return True
    return stored.__class__ is list and wanted in stored


def matches(row: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    """True when `row` matches every `field: value` of `filters`."""
    return all(
        # a path that reaches nothing reads as null, as MongoDB's `{field: null}` finds it
        any(holds(value, wanted) for value in reached(row, field) or (None,))
        for field, wanted in filters.items()
    )


__all__ = ["holds", "matches", "reached"]
