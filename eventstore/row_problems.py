"""How many problems a read-model row holds (pure; what a projection's status counts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def held_problems(row: Mapping[str, Any] | None) -> int:
    """The problems a row holds now: its `problems` records, and the older ones it dropped.

    What a projection's status counts (`problems`): the sum over its rows, kept as
    each write replaces a row (the new row's minus the old one's), and as an erasure
    deletes one (`ErasureRequest.row_problems`). A row without records holds none,
    whatever its `problems_dropped` says.
    """
    found = row.get("problems") if row is not None else None
    if not isinstance(found, list) or not found:
        return 0
    assert row is not None
    dropped = row.get("problems_dropped")
    extra = max(dropped, 0) if isinstance(dropped, int) and not isinstance(dropped, bool) else 0
    return sum(1 for p in found if isinstance(p, dict)) + extra


__all__ = ["held_problems"]
