"""A collection of the memory change feed: the write methods record MongoDB's change events.

Each write finds the documents it addresses (by key when its filter names the
`_id`, so a write costs the same whatever the collection's size), applies itself
to each one with mongomock's semantics (`FeedDocuments`), and hands the feed one
change per document that changed (none for a no-op, as MongoDB writes no oplog
entry for one). Invariant: nothing here suspends between reading a document and
recording its change, so the writes of one feed are never interleaved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError
from pymongo.results import DeleteResult, InsertManyResult, InsertOneResult, UpdateResult

from eventstore.sources.feed_documents import Doc, FeedDocuments, normalized, normalized_doc
from eventstore.sources.update_description import describe_update, same_value

# Records one change: (collection, change body without _id/clusterTime/wallTime, document before).
Recorder = Callable[[str, dict[str, Any], Doc | None], None]


class FeedCollection:
    """A captured collection: the write methods record change events, the reads pass through."""

    def __init__(self, documents: FeedDocuments, name: str, *, db_name: str, record: Recorder):
        self._documents = documents
        self._record_change = record
        self.db_name = db_name
        self.name = name

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
        return self._documents.find(
            self.name, filter or {}, projection, sort=sort, skip=skip, limit=limit
        )

    async def count_documents(self, filter: Mapping[str, Any] | None = None) -> int:
        """How many documents match."""
        return self._documents.count(self.name, filter or {})

    def _first(self, filter: Mapping[str, Any], sort: Any = None) -> Doc | None:
        """The stored document a one-document write addresses (the first in `sort` order)."""
        if not sort:
            found = self._documents.matching(self.name, filter, limit=1)
            return found[0] if found else None
        firsts = self._documents.find(self.name, filter, {"_id": 1}, sort=sort, limit=1)
        if not firsts:
            return None
        found = self._documents.matching(self.name, {"_id": firsts[0]["_id"]}, limit=1)
        return found[0] if found else None

    # -- writes ----------------------------------------------------------------------------------

    async def insert_one(self, document: dict[str, Any]) -> InsertOneResult:
        """Insert a document: an `insert` event with its `fullDocument`."""
        stored = self._documents.insert(self.name, document)
        self._record("insert", None, stored)
        return InsertOneResult(stored["_id"], acknowledged=True)

    async def insert_many(
        self, documents: Sequence[dict[str, Any]], *, ordered: bool = True
    ) -> InsertManyResult:
        """Insert documents: one `insert` event per inserted document, in order.

        On a duplicate key the documents that were inserted still get their events;
        BulkWriteError says which failed (as PyMongo's and mongomock's do).
        """
        if not documents:
            raise TypeError("documents must be a non-empty list")
        ids: list[Any] = []
        errors: list[dict[str, Any]] = []
        for index, document in enumerate(documents):
            try:
                stored = self._documents.insert(self.name, document)
            except DuplicateKeyError as exc:
                errors.append({"index": index, "code": 11000, "errmsg": str(exc), "op": document})
                if ordered:
                    break
                continue
            self._record("insert", None, stored)
            ids.append(stored["_id"])
        if errors:
            raise BulkWriteError({"writeErrors": errors, "nInserted": len(ids)})
        return InsertManyResult(ids, acknowledged=True)

    async def update_one(
        self, filter: Mapping[str, Any], update: Any, *, upsert: bool = False
    ) -> Any:
        """Update the first match: an `update` event (a `replace` where MongoDB would log one)."""
        return self._update(self._first(filter), filter, update, upsert=upsert)

    async def update_many(
        self, filter: Mapping[str, Any], update: Any, *, upsert: bool = False
    ) -> UpdateResult:
        """Update every match: one event per changed document, in natural order."""
        befores = self._documents.matching(self.name, filter)
        if not befores:
            result = self._update(None, filter, update, upsert=upsert)
            return UpdateResult(
                {
                    "n": 1 if result.upserted_id is not None else 0,
                    "nModified": 0,
                    "upserted": result.upserted_id,
                },
                acknowledged=True,
            )
        modified = 0
        for before in befores:
            result = self._update(before, filter, update, upsert=False)
            modified += result.modified_count
        return UpdateResult({"n": len(befores), "nModified": modified}, acknowledged=True)

    async def replace_one(
        self, filter: Mapping[str, Any], replacement: Mapping[str, Any], *, upsert: bool = False
    ) -> Any:
        """Replace the first match: a `replace` event with the new `fullDocument`."""
        before = self._first(filter)
        result, after = self._documents.update(
            self.name, before, filter, dict(replacement), upsert=upsert, replace=True
        )
        if after is None:
            return result
        if before is None:
            self._record("insert", None, after)
        elif not same_value(normalized(before), normalized(after)):
            self._record("replace", before, after)
        return result

    async def delete_one(self, filter: Mapping[str, Any]) -> DeleteResult:
        """Delete the first match: a `delete` event (documentKey only)."""
        before = self._first(filter)
        if before is None:
            return DeleteResult({"n": 0}, acknowledged=True)
        self._documents.delete(self.name, before)
        self._record("delete", before, None)
        return DeleteResult({"n": 1}, acknowledged=True)

    async def delete_many(self, filter: Mapping[str, Any]) -> DeleteResult:
        """Delete every match: one `delete` event per document, in natural order."""
        befores = self._documents.matching(self.name, filter)
        for before in befores:
            self._documents.delete(self.name, before)
            self._record("delete", before, None)
        return DeleteResult({"n": len(befores)}, acknowledged=True)

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
        before = self._first(filter, sort)
        result = self._update(before, filter, update, upsert=upsert)
        if before is None:
            if result.upserted_id is None or return_document != ReturnDocument.AFTER:
                return None
            return await self.find_one({"_id": result.upserted_id}, projection)
        if return_document == ReturnDocument.AFTER:
            return await self.find_one({"_id": before["_id"]}, projection)
        if projection is None:
            return normalized_doc(before)
        return _project(before, projection)  # top-level inclusion or exclusion only

    # -- events ----------------------------------------------------------------------------------

    def _update(
        self, before: Doc | None, filter: Mapping[str, Any], update: Any, *, upsert: bool
    ) -> Any:
        """Apply an update to `before` (None: nothing matched) and record what it changed."""
        result, after = self._documents.update(self.name, before, filter, update, upsert=upsert)
        if after is None:
            return result
        if before is None:
            self._record("insert", None, after)  # an upsert
            return result
        old, new = normalized(before), normalized(after)
        if same_value(old, new):
            return result  # a no-op writes no oplog entry, so no event
        description = describe_update(old, new, update)
        if description is None:
            self._record("replace", before, after)
        else:
            self._record("update", before, after, description=description)
        return result

    def _record(
        self,
        op: str,
        before: Doc | None,
        after: Doc | None,
        *,
        description: dict[str, Any] | None = None,
    ) -> None:
        doc = after if after is not None else before
        assert doc is not None
        body: dict[str, Any] = {"operationType": op}
        if op in ("insert", "replace"):
            body["fullDocument"] = normalized(after)
        body["ns"] = {"db": self.db_name, "coll": self.name}
        body["documentKey"] = {"_id": normalized(doc["_id"])}
        if description is not None:
            body["updateDescription"] = description
        self._record_change(self.name, body, before)


def _project(doc: Doc, projection: Any) -> dict[str, Any]:
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


__all__ = ["FeedCollection", "Recorder", "normalized", "normalized_doc"]
