"""Sorted key lists of the memory adapters: new keys merged in without sorting the whole list."""

from __future__ import annotations

from bisect import insort
from collections.abc import Collection
from typing import Final, TypeVar

# Up to this many new keys are inserted one by one (a bisection and a move each); more
# are merged in one sort, whose pass over the whole list is then shared by them all.
INSERT_EACH: Final = 32

K = TypeVar("K", str, int)


def merge_in(keys: list[K], new: Collection[K]) -> None:
    """Add `new` (none of them in `keys` already) to the sorted list `keys`, keeping it sorted.

    O(k log n) comparisons for a few new keys; O(n + k log k) for many (the list sort
    merges the two sorted runs): never a sort of the whole list for each key.
    """
    if len(new) <= INSERT_EACH:
        for key in new:
            insort(keys, key)
    else:
        keys.extend(sorted(new))
        keys.sort()
