"""Read models in process memory: a dict of rows per collection; swap is one assignment."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import Any

from eventstore.memory.sorted_keys import merge_in


class _KeyOrder:
    """A table's keys in sorted order, kept up to date lazily (the `_id` index of a collection).

    Invariant after `settle()`: `keys` is sorted and holds every key of the table,
    plus the keys in `stale` (deleted since, skipped by readers). Between settles,
    keys added since are in `fresh`. A settle merges them in (`merge_in`): never a
    sort of the whole table for each page.
    """

    __slots__ = ("fresh", "keys", "stale")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.fresh: set[str] = set()
        self.stale: set[str] = set()

    def added(self, key: str) -> None:
        if key in self.stale:
            self.stale.discard(key)  # still in `keys`: present again
        else:
            self.fresh.add(key)

    def removed(self, key: str) -> None:
        if key in self.fresh:
            self.fresh.discard(key)
        else:
            self.stale.add(key)

    def settle(self) -> list[str]:
        merge_in(self.keys, self.fresh)
        self.fresh.clear()
        if len(self.stale) > len(self.keys) // 2:
            self.keys = [k for k in self.keys if k not in self.stale]
            self.stale.clear()
        return self.keys


class MemoryReadModels:
    """The `ReadModels` port over dicts (rows are copied in and out).

    A table holds each row as written, without its key; reads add `_id` to the
    copies they return (a write, the frequent side, copies the row once). Each
    table's keys are also kept in order, so a page of `query` starts with a
    bisection wherever it is in the table.
    """

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, dict[str, Any]]] = {}
        self._orders: dict[str, _KeyOrder] = {}

    async def get_many(self, collection: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The rows with these keys that exist."""
        table = self._tables.get(collection, {})
        return {k: {"_id": k, **table[k]} for k in keys if k in table}

    async def write(
        self,
        collection: str,
        writes: Sequence[tuple[str, dict[str, Any] | None]],
        *,
        session: Any = None,
    ) -> None:
        """Upsert or delete rows by key."""
        table = self._tables.setdefault(collection, {})
        order = self._orders.get(collection)
        if order is None:
            order = self._orders[collection] = _KeyOrder()
        for key, row in writes:
            if row is None:
                if table.pop(key, None) is not None:
                    order.removed(key)
            else:
                if key not in table:
                    order.added(key)
                table[key] = row.copy()

    async def query(
        self, collection: str, *, filters: Mapping[str, Any], limit: int, after: str | None = None
    ) -> list[dict[str, Any]]:
        """Rows matching equality filters, in key order."""
        table = self._tables.get(collection)
        if not table:
            return []
        keys = self._orders[collection].settle()
        out = []
        for i in range(0 if after is None else bisect_right(keys, after), len(keys)):
            key = keys[i]
            row = table.get(key)
            if row is None:
                continue  # deleted since the keys were last compacted
            if all(
                (row.get(f, key) if f == "_id" else row.get(f)) == v for f, v in filters.items()
            ):
                out.append({"_id": key, **row})
                if len(out) >= limit:
                    break
        return out

    async def swap(self, building: str, live: str) -> None:
        """`building` becomes `live` at once."""
        self._tables[live] = self._tables.pop(building, {})
        self._orders[live] = self._orders.pop(building, _KeyOrder())

    async def drop(self, collection: str) -> None:
        """Forget a collection."""
        self._tables.pop(collection, None)
        self._orders.pop(collection, None)

    async def collections(self) -> list[str]:
        """Collections that hold rows."""
        return sorted(self._tables)
