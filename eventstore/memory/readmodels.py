"""Read models in process memory: a dict of rows per collection; swap is one assignment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class MemoryReadModels:
    """The `ReadModels` port over dicts (rows are copied in and out).

    A table holds each row as written, without its key; reads add `_id` to the
    copies they return (a write, the frequent side, copies the row once).
    """

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, dict[str, Any]]] = {}

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
        for key, row in writes:
            if row is None:
                table.pop(key, None)
            else:
                table[key] = row.copy()

    async def query(
        self, collection: str, *, filters: Mapping[str, Any], limit: int, after: str | None = None
    ) -> list[dict[str, Any]]:
        """Rows matching equality filters, in key order."""
        table = self._tables.get(collection, {})
        out = []
        for key in sorted(table):
            if after is not None and key <= after:
                continue
            row = table[key]
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

    async def drop(self, collection: str) -> None:
        """Forget a collection."""
        self._tables.pop(collection, None)

    async def collections(self) -> list[str]:
        """Collections that hold rows."""
        return sorted(self._tables)
