"""Equality filters on read-model rows, read as MongoDB reads `{field: value}`.

A row matches when the field equals the value, or when the field is an array
holding an element equal to it (MongoDB's match on an array field: `{"tags": "a"}`
finds `{"tags": ["a", "b"]}`). The memory adapter and the projection runner read
filters by this one rule, so a filter finds the same rows on both stores.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def holds(stored: Any, wanted: Any) -> bool:
    """True when a field holding `stored` matches a filter's `wanted` value."""
    if stored == wanted:
        return True
    return stored.__class__ is list and wanted in stored


def matches(row: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    """True when `row` matches every `field: value` of `filters`."""
    return all(holds(row.get(field), value) for field, value in filters.items())


__all__ = ["holds", "matches"]
