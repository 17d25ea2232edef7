"""Read models in process memory: a dict of rows per collection; swap is one assignment."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import Any, Final

from eventstore.memory.sorted_keys import merge_in
from eventstore.row_filters import matches, reached


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


class _FieldIndex:
    """The keys of one table by the value of one of its fields (equality filters).

    Invariant: every key of the table is in `by_value[v]` for the field's value `v`, or
    for each element `v` of it when it is an array (a filter matches an array by an
    element: `eventstore.row_filters`), or in `loose` when such a value cannot be hashed
    (a sub-document, a Decimal128); equal values hash alike, so a hashable filter
    value's matches are among `candidates(value)`.
    """

    __slots__ = ("by_value", "field", "loose")

    def __init__(self, field: str, table: Mapping[str, dict[str, Any]]) -> None:
        self.field = field
        self.by_value: dict[Any, set[str]] = {}
        self.loose: set[str] = set()
        for key, row in table.items():
            self.add(key, row)

    def add(self, key: str, row: Mapping[str, Any]) -> None:
        for value in _indexed(row, self.field):
            try:
                self.by_value.setdefault(value, set()).add(key)
            except TypeError:  # unhashable: looked at by every filter on this field
                self.loose.add(key)

    def remove(self, key: str, row: Mapping[str, Any]) -> None:
        for value in _indexed(row, self.field):
            try:
                keys = self.by_value.get(value)
            except TypeError:
                self.loose.discard(key)
                continue
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self.by_value[value]

    def candidates(self, value: Any) -> set[str] | None:
        """The keys whose row may hold `value` in the field; None when `value` cannot be hashed."""
        try:
            found = self.by_value.get(value, set())
        except TypeError:
            return None
        return found | self.loose if self.loose else found


def _indexed(row: Mapping[str, Any], field: str) -> list[Any]:
    """The values a row is indexed by for a field (a path: `eventstore.row_filters`): each
    value the path reaches, an array's elements in its place (a multikey index); a row
    the path reaches nothing in, by None (as `row.get` reads a missing field).

    An array itself needs no entry: a filter by a whole array cannot be hashed, so it
    walks the table (`candidates` is None).
    """
    out: list[Any] = []
    for value in reached(row, field) or (None,):
        if value.__class__ is list:
            out.extend(value)
        else:
            out.append(value)
    return out


# A filtered page reads its index's candidates (sorted) when they are at most this share
# of the table; denser matches are found sooner by walking the keys in order.
_SPARSE: Final = 16


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
        # Built at a table's first filter on a field, kept up to date by every write after.
        self._indexes: dict[str, dict[str, _FieldIndex]] = {}

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
        indexes = list(self._indexes.get(collection, {}).values())
        for key, row in writes:
            # One look-up a row, as before the indexes: the row removed, or the one replaced.
            old = table.pop(key, None) if row is None else table.get(key)
            if old is not None:
                for index in indexes:
                    index.remove(key, old)
            if row is None:
                if old is not None:
                    order.removed(key)
            else:
                if old is None:
                    order.added(key)
                table[key] = row.copy()
                for index in indexes:
                    index.add(key, row)

    async def query(
        self, collection: str, *, filters: Mapping[str, Any], limit: int, after: str | None = None
    ) -> list[dict[str, Any]]:
        """Rows matching equality filters, in key order."""
        table = self._tables.get(collection)
        if not table:
            return []
        # Few matches: their keys, sorted, instead of the whole table's.
        sparse = self._sparse_candidates(collection, table, filters)
        keys = sorted(sparse) if sparse is not None else self._orders[collection].settle()
        rest = {f: v for f, v in filters.items() if f != "_id"}  # the key is no field of a row
        out = []
        for i in range(0 if after is None else bisect_right(keys, after), len(keys)):
            key = keys[i]
            row = table.get(key)
            if row is None:
                continue  # deleted since the keys were last compacted
            if ("_id" not in filters or filters["_id"] == key) and matches(row, rest):
                out.append({"_id": key, **row})
                if len(out) >= limit:
                    break
        return out

    def _sparse_candidates(
        self, collection: str, table: Mapping[str, dict[str, Any]], filters: Mapping[str, Any]
    ) -> set[str] | None:
        """The keys a filtered page need look at, when they are few (None: walk the table).

        The smallest candidate set among the filtered fields' indexes: each match is in
        it (`_FieldIndex`), and each candidate is checked against every filter.
        """
        if not filters:
            return None
        if "_id" in filters:  # one row at most: its key
            key = filters["_id"]
            return {key} if isinstance(key, str) and key in table else set()
        indexes = self._indexes.setdefault(collection, {})
        best: set[str] | None = None
        for field, value in filters.items():
            index = indexes.get(field)
            if index is None:
                index = indexes[field] = _FieldIndex(field, table)
            found = index.candidates(value)
            if found is not None and (best is None or len(found) < len(best)):
                best = found
        if best is None or len(best) * _SPARSE > len(table):
            return None
        return best

    async def ensure_indexes(self, collection: str, fields: Sequence[str]) -> None:
        """Nothing to do ahead: a field's index is built at its first filter and kept by every
        write after (`_sparse_candidates`), and `swap` leaves it to be built from the new rows."""

    async def swap(self, building: str, live: str) -> None:
        """`building` becomes `live` at once."""
        self._tables[live] = self._tables.pop(building, {})
        self._orders[live] = self._orders.pop(building, _KeyOrder())
        self._indexes.pop(live, None)  # built again from the new rows when filtered
        self._indexes.pop(building, None)

    async def drop(self, collection: str) -> None:
        """Forget a collection."""
        self._tables.pop(collection, None)
        self._orders.pop(collection, None)
        self._indexes.pop(collection, None)

    async def collections(self) -> list[str]:
        """Collections that hold rows."""
        return sorted(self._tables)
