"""Read models in MongoDB: one collection per projection, rows keyed by `_id`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import ASCENDING, DeleteOne, ReplaceOne

from eventstore.mongo import compat

READ_MODEL_PREFIX = "rm_"


class MongoReadModels:
    """The `ReadModels` port: bulk writes, and a rebuild swapped in with `renameCollection`."""

    def __init__(self, db: Any) -> None:
        self._db = db

    async def get_many(self, collection: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The rows with these keys that exist (one find)."""
        if not keys:
            return {}
        docs = await self._db[collection].find({"_id": {"$in": list(keys)}}).to_list(None)
        return {d["_id"]: d for d in docs}

    async def write(
        self,
        collection: str,
        writes: Sequence[tuple[str, dict[str, Any] | None]],
        *,
        session: Any = None,
    ) -> None:
        """One bulk write: a replace-upsert per row, a delete per None."""
        ops: list[Any] = [
            DeleteOne({"_id": key})
            if row is None
            else ReplaceOne({"_id": key}, {"_id": key, **row}, upsert=True)
            for key, row in writes
        ]
        if ops:
            await self._db[collection].bulk_write(ops, ordered=True, **compat.session_kw(session))

    async def query(
        self, collection: str, *, filters: Mapping[str, Any], limit: int, after: str | None = None
    ) -> list[dict[str, Any]]:
        """Rows matching equality filters, in key order, after a key."""
        query: dict[str, Any] = dict(filters)
        if after is not None:  # with an `_id` filter too: both hold
            past = {"$gt": after}
            query["_id"] = {"$eq": query["_id"], **past} if "_id" in query else past
        cursor = self._db[collection].find(query).sort("_id", ASCENDING).limit(limit)
        return list(await cursor.to_list(None))

    async def ensure_indexes(self, collection: str, fields: Sequence[str]) -> None:
        """An index on (field, `_id`) for each field: a filtered page is a walk of its matches
        in key order (`query`), not of the whole collection. Creating one that exists is a
        no-op; made on a collection not yet there, it creates the collection."""
        for field in fields:
            await self._db[collection].create_index([(field, ASCENDING), ("_id", ASCENDING)])

    async def swap(self, building: str, live: str) -> None:
        """Rename `building` over `live` (dropTarget): readers see the old model or the new."""
        if building not in await self._db.list_collection_names():
            await self._db[live].drop()
            return
        await self._db[building].rename(live, dropTarget=True)

    async def drop(self, collection: str) -> None:
        """Drop a collection."""
        await self._db[collection].drop()

    async def collections(self) -> list[str]:
        """Read-model collections (by prefix)."""
        names = await self._db.list_collection_names()
        return sorted(n for n in names if n.startswith(READ_MODEL_PREFIX))
