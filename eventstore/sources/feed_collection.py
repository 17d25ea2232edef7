"""A collection of the memory change feed: mongomock-motor writes that record MongoDB change events.

Each write reads the affected documents before, performs the write with
mongomock, reads them after, and hands the feed one change per document that
changed (none for a no-op, as MongoDB writes no oplog entry for one).
Invariant: mongomock-motor's coroutines never suspend, so a write and its
before/after reads are not interleaved with other writes of the same feed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from bson import ObjectId
from pymongo import ReturnDocument

from eventstore.codec import utc_ms
from eventstore.sources.update_description import describe_update, same_value


class FeedRecorder(Protocol):
    """What a collection needs of its feed (`MemoryChangeFeed` is the one)."""

    client: Any
    db_name: str

    def _emit(
        self, coll: str | None, body: dict[str, Any], *, before: dict[str, Any] | None
    ) -> None: ...


def normalized(value: Any) -> Any:
    """A document as PyMongo with `tz_aware=True` returns it: plain dicts, aware UTC datetimes (ms)."""
    if isinstance(value, Mapping):
        return {str(k): normalized(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalized(v) for v in value]
    if isinstance(value, datetime):
        return utc_ms(value)
    return value


def normalized_doc(doc: Mapping[str, Any]) -> dict[str, Any]:
    """`normalized` for a whole document."""
    return {str(k): normalized(v) for k, v in doc.items()}


def _pinned(filter: Mapping[str, Any], doc_id: Any) -> dict[str, Any]:
    """The filter narrowed to one matched document (top-level conditions AND together).

    Keeps the original conditions so positional (`items.$.qty`) updates still work.
    """
    if "_id" in filter:
        return dict(filter)
    return {**filter, "_id": doc_id}


class FeedCollection:
    """A captured collection: the write methods record change events, the reads pass through."""

    def __init__(self, feed: FeedRecorder, name: str) -> None:
        self._feed = feed
        self.name = name

    @property
    def _col(self) -> Any:
        return self._feed.client[self._feed.db_name][self.name]

    # -- reads -----------------------------------------------------------------------------------

    async def find_one(
        self,
        filter: Mapping[str, Any] | None = None,
        projection: Any = None,
        *,
        sort: Sequence[tuple[str, int]] | None = None,
    ) -> dict[str, Any] | None:
        """The first matching document (aware datetimes), or None."""
        docs = await self.find(filter, projection, sort=sort, limit=1)
        return docs[0] if docs else None

    async def find(
        self,
        filter: Mapping[str, Any] | None = None,
        projection: Any = None,
        *,
        sort: Sequence[tuple[str, int]] | None = None,
        skip: int = 0,
        limit: int = 0,
    ) -> list[dict[str, Any]]:
        """The matching documents as a list."""
        cursor = self._col.find(dict(filter or {}), projection)
        if sort:
            cursor = cursor.sort(list(sort))
        if skip:
            cursor = cursor.skip(skip)
        if limit:
            cursor = cursor.limit(limit)
        return [normalized_doc(doc) for doc in await cursor.to_list(None)]

    async def count_documents(self, filter: Mapping[str, Any] | None = None) -> int:
        """How many documents match."""
        return int(await self._col.count_documents(dict(filter or {})))

    async def _raw(self, filter: Mapping[str, Any], sort: Any = None) -> list[dict[str, Any]]:
        cursor = self._col.find(dict(filter))
        if sort:
            cursor = cursor.sort(list(sort))
        return list(await cursor.to_list(None))

    async def _raw_one(self, filter: Mapping[str, Any], sort: Any = None) -> dict[str, Any] | None:
        cursor = self._col.find(dict(filter))
        if sort:
            cursor = cursor.sort(list(sort))
        docs = await cursor.limit(1).to_list(None)
        return dict(docs[0]) if docs else None

    # -- writes ----------------------------------------------------------------------------------

    async def insert_one(self, document: dict[str, Any]) -> Any:
        """Insert a document: an `insert` event with its `fullDocument`."""
        result = await self._col.insert_one(document)
        await self._inserted([result.inserted_id])
        return result

    async def insert_many(
        self, documents: Sequence[dict[str, Any]], *, ordered: bool = True
    ) -> Any:
        """Insert documents: one `insert` event per inserted document, in order.

        On a duplicate key the documents that were inserted still get their events.
        """
        for doc in documents:
            doc.setdefault("_id", ObjectId())  # as PyMongo does, so partial inserts are known
        ids = [doc["_id"] for doc in documents]
        existing = {_key(d["_id"]) for d in await self._raw({"_id": {"$in": ids}})}
        try:
            return await self._col.insert_many(list(documents), ordered=ordered)
        finally:
            now = {_key(d["_id"]) for d in await self._raw({"_id": {"$in": ids}})}
            await self._inserted([i for i in ids if _key(i) in now and _key(i) not in existing])

    async def update_one(
        self, filter: Mapping[str, Any], update: Any, *, upsert: bool = False
    ) -> Any:
        """Update the first match: an `update` event (a `replace` where MongoDB would log one)."""
        before = await self._raw_one(filter)
        if before is None:
            result = await self._col.update_one(dict(filter), update, upsert=upsert)
            if result.upserted_id is not None:
                await self._inserted([result.upserted_id])
            return result
        result = await self._col.update_one(_pinned(filter, before["_id"]), update)
        await self._updated(before, update)
        return result

    async def update_many(
        self, filter: Mapping[str, Any], update: Any, *, upsert: bool = False
    ) -> Any:
        """Update every match: one event per changed document, in natural order."""
        befores = await self._raw(filter)
        result = await self._col.update_many(dict(filter), update, upsert=upsert)
        for before in befores:
            await self._updated(before, update)
        if not befores and result.upserted_id is not None:
            await self._inserted([result.upserted_id])
        return result

    async def replace_one(
        self, filter: Mapping[str, Any], replacement: Mapping[str, Any], *, upsert: bool = False
    ) -> Any:
        """Replace the first match: a `replace` event with the new `fullDocument`."""
        before = await self._raw_one(filter)
        if before is None:
            result = await self._col.replace_one(dict(filter), dict(replacement), upsert=upsert)
            if result.upserted_id is not None:
                await self._inserted([result.upserted_id])
            return result
        result = await self._col.replace_one(_pinned(filter, before["_id"]), dict(replacement))
        after = await self._raw_one({"_id": before["_id"]})
        if after is not None and not same_value(normalized(before), normalized(after)):
            self._record("replace", before, after)
        return result

    async def delete_one(self, filter: Mapping[str, Any]) -> Any:
        """Delete the first match: a `delete` event (documentKey only)."""
        before = await self._raw_one(filter)
        if before is None:
            return await self._col.delete_one(dict(filter))
        result = await self._col.delete_one({"_id": before["_id"]})
        self._record("delete", before, None)
        return result

    async def delete_many(self, filter: Mapping[str, Any]) -> Any:
        """Delete every match: one `delete` event per document, in natural order."""
        befores = await self._raw(filter)
        result = await self._col.delete_many({"_id": {"$in": [b["_id"] for b in befores]}})
        for before in befores:
            self._record("delete", before, None)
        return result

    async def find_one_and_update(
        self,
        filter: Mapping[str, Any],
        update: Any,
        *,
        projection: Any = None,
        sort: Sequence[tuple[str, int]] | None = None,
        upsert: bool = False,
        return_document: bool = ReturnDocument.BEFORE,
    ) -> dict[str, Any] | None:
        """Update the first match (in `sort` order) and return it before or after the update."""
        before = await self._raw_one(filter, sort)
        if before is None:
            result = await self._col.update_one(dict(filter), update, upsert=upsert)
            if result.upserted_id is None:
                return None
            await self._inserted([result.upserted_id])
            if return_document == ReturnDocument.AFTER:
                return await self.find_one({"_id": result.upserted_id}, projection)
            return None
        await self._col.update_one(_pinned(filter, before["_id"]), update)
        await self._updated(before, update)
        if return_document == ReturnDocument.AFTER:
            return await self.find_one({"_id": before["_id"]}, projection)
        if projection is None:
            return normalized_doc(before)
        return _project(before, projection)  # top-level inclusion or exclusion only

    # -- events ----------------------------------------------------------------------------------

    async def _inserted(self, ids: Sequence[Any]) -> None:
        for doc_id in ids:
            after = await self._raw_one({"_id": doc_id})
            if after is not None:
                self._record("insert", None, after)

    async def _updated(self, before: dict[str, Any], update: Any) -> None:
        after = await self._raw_one({"_id": before["_id"]})
        if after is None:
            return
        old, new = normalized(before), normalized(after)
        if same_value(old, new):
            return  # a no-op writes no oplog entry, so no event
        description = describe_update(old, new, update)
        if description is None:
            self._record("replace", before, after)
        else:
            self._record("update", before, after, description=description)

    def _record(
        self,
        op: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        *,
        description: dict[str, Any] | None = None,
    ) -> None:
        doc = after if after is not None else before
        assert doc is not None
        body: dict[str, Any] = {"operationType": op}
        if op in ("insert", "replace"):
            body["fullDocument"] = normalized(after)
        body["ns"] = {"db": self._feed.db_name, "coll": self.name}
        body["documentKey"] = {"_id": doc["_id"]}
        if description is not None:
            body["updateDescription"] = description
        self._feed._emit(self.name, body, before=before)


def _key(value: Any) -> Any:
    """A hashable stand-in for an `_id` (documents and lists are not hashable)."""
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return (type(value).__name__, value)


def _project(doc: dict[str, Any], projection: Any) -> dict[str, Any]:
    fields = projection if isinstance(projection, Mapping) else dict.fromkeys(projection, 1)
    include = [k for k, v in fields.items() if v and k != "_id"]
    out: dict[str, Any] = {}
    if fields.get("_id", 1):
        out["_id"] = doc["_id"]
    if include:
        out.update({k: doc[k] for k in include if k in doc})
    else:
        out.update({k: v for k, v in doc.items() if k not in fields and k != "_id"})
    return normalized_doc(out)


__all__ = ["FeedCollection", "normalized", "normalized_doc"]
