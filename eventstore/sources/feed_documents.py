"""The documents behind the memory change feed: each collection held by `_id`, each write applied to one document.

A collection is a dict from an `_id` key to its stored document, in natural
(insertion) order. A filter that names its `_id` by equality (`{"_id": x, ...}`,
`{"_id": {"$eq": x}}`, `{"_id": {"$in": [...]}}`) finds its documents by key and
looks at no other: a write addressed by `_id` costs the same whatever the size
of the collection. Any other filter is a scan (as it is on a server without an
index).

MongoDB's write semantics are mongomock's, applied to the one document: the
stored document is placed alone in a scratch mongomock collection and the
caller's own write (filter, update document or pipeline, replacement, upsert)
runs there through mongomock's public write methods, so operators, positional
`$` paths, pipelines, upserts, the immutable `_id` and their errors behave as
they did when the feed wrote to whole mongomock collections. Only the placing
and taking of that one document reach past mongomock's public API (its
collection's `_store` mapping, keyed as mongomock keys it): inserting it
through `insert_one` would validate and copy it again on every write.

Stored documents are in mongomock's stored form (naive UTC datetimes, ms);
`normalized` turns them into what PyMongo with `tz_aware=True` returns.

`examined` counts the stored documents lookups looked at (a scaling test holds
an `_id`-addressed write to one).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import mongomock
from bson import Decimal128, Int64, ObjectId
from mongomock import filtering, helpers
from pymongo.errors import DuplicateKeyError

from eventstore.codec import utc_ms

Doc = dict[str, Any]
# Values `normalized` returns as they are (exact types: subclasses take the slow path).
_PLAIN: Final = frozenset({str, int, float, bool, type(None), bytes, ObjectId, Decimal128, Int64})

# mongomock's untyped helpers, typed once here (the very functions its collections use).
_applies: Final[Callable[[Mapping[str, Any], Mapping[str, Any]], bool]] = filtering.filter_applies
_patched: Final[Callable[[Any], Any]] = helpers.patch_datetime_awareness_in_document
_hashdict: Final[Callable[[Mapping[str, Any]], Hashable]] = helpers.hashdict


def normalized(value: Any) -> Any:
    """A value as PyMongo with `tz_aware=True` returns it: plain dicts, aware UTC datetimes (ms)."""
    kind = type(value)
    if kind is dict:  # the common cases first: ABC checks are slow and this runs on every write
        return {str(k): normalized(v) for k, v in value.items()}
    if kind is list:
        return [normalized(v) for v in value]
    if kind in _PLAIN:
        return value
    if isinstance(value, datetime):
        return utc_ms(value)
    if isinstance(value, Mapping):
        return {str(k): normalized(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalized(v) for v in value]
    return value


def normalized_doc(doc: Mapping[str, Any]) -> Doc:
    """`normalized` for a whole document (a copy: changing it changes nothing stored)."""
    return {str(k): normalized(v) for k, v in doc.items()}


def id_key(value: Any) -> Hashable:
    """The key of an `_id` in a collection, as mongomock keys its store (1 and 1.0 are one key)."""
    if isinstance(value, dict):
        return _hashdict(value)
    try:
        hash(value)
    except TypeError:
        return ("unhashable", repr(value))  # not a valid _id (MongoDB refuses arrays)
    key: Hashable = value
    return key


def addressed_ids(filter: Mapping[str, Any]) -> list[Any] | None:
    """The `_id` values a filter is limited to by equality, or None when it is not (a scan)."""
    if "_id" not in filter:
        return None
    condition = filter["_id"]
    if isinstance(condition, Mapping) and any(str(k).startswith("$") for k in condition):
        if set(condition) == {"$eq"}:
            values = [condition["$eq"]]
        elif set(condition) == {"$in"} and isinstance(condition["$in"], (list, tuple)):
            values = list(condition["$in"])
        else:
            return None
    else:
        values = [condition]
    # A regex or an array matches more than itself: those filters are scans.
    if any(isinstance(v, (list, tuple, re.Pattern)) or _is_regex(v) for v in values):
        return None
    return values


def _is_regex(value: Any) -> bool:
    return type(value).__name__ == "Regex"


class FeedDocuments:
    """The collections of one database: documents by `_id` key, writes applied one document at a time."""

    def __init__(self) -> None:
        self._collections: dict[str, dict[Hashable, Doc]] = {}
        # Holds the documents of one operation at a time; empty between operations.
        self._scratch: Any = mongomock.MongoClient(tz_aware=True)["feed"]["scratch"]
        self.examined = 0

    # -- collections -----------------------------------------------------------------------------

    def names(self) -> list[str]:
        """The existing collections (created by a write, until dropped), sorted."""
        return sorted(self._collections)

    def drop(self, name: str) -> bool:
        """Drop a collection; False when it does not exist."""
        return self._collections.pop(name, None) is not None

    def rename(self, old: str, new: str) -> None:
        """Rename a collection (an existing `new` is replaced)."""
        self._collections[new] = self._collections.pop(old)

    def drop_all(self) -> None:
        """Drop every collection."""
        self._collections.clear()

    def _docs(self, name: str) -> dict[Hashable, Doc]:
        return self._collections.get(name) or {}

    def _created(self, name: str) -> dict[Hashable, Doc]:
        return self._collections.setdefault(name, {})

    # -- lookups ---------------------------------------------------------------------------------

    def matching(self, name: str, filter: Mapping[str, Any], *, limit: int = 0) -> list[Doc]:
        """The stored documents the filter matches, in natural order (at most `limit`; 0: all).

        By key when the filter names its `_id`s, else a scan. The documents are the
        stored ones: callers copy before changing them.
        """
        spec = _patched(dict(filter))
        docs = self._docs(name)
        ids = addressed_ids(spec)
        if ids is None:
            candidates: Iterable[Doc] = list(docs.values())
        else:
            found = (docs.get(id_key(i)) for i in ids)
            keyed = {id(d): d for d in found if d is not None}  # `$in` may repeat an _id
            candidates = (
                sorted(keyed.values(), key=_order(docs)) if len(keyed) > 1 else keyed.values()
            )
        out: list[Doc] = []
        for doc in candidates:
            self.examined += 1
            if _applies(spec, doc):
                out.append(doc)
                if len(out) == limit:
                    break
        if not docs:  # an invalid filter fails even with nothing to match, as in mongomock
            _applies(spec, {})
        return out

    def find(
        self,
        name: str,
        filter: Mapping[str, Any],
        projection: Any = None,
        *,
        sort: Sequence[tuple[str, int]] | None = None,
        skip: int = 0,
        limit: int = 0,
    ) -> list[Doc]:
        """The matching documents, sorted, skipped, limited and projected by mongomock; normalized."""
        if projection is None and not sort and skip >= 0 and limit >= 0:
            # Natural order: the first skip + limit matches are all there is to look at.
            docs = self.matching(name, filter, limit=skip + limit if limit else 0)[skip:]
            return [normalized_doc(d) for d in docs]
        docs = self.matching(name, filter)
        scratch = self._scratch
        try:
            for doc in docs:  # read only: mongomock's find copies what it returns
                scratch._store[id_key(doc["_id"])] = doc
            cursor = scratch.find({}, projection)
            if sort:
                cursor = cursor.sort(list(sort))
            if skip:
                cursor = cursor.skip(skip)
            if limit:
                cursor = cursor.limit(limit)
            return [normalized_doc(d) for d in cursor]
        finally:
            scratch.drop()

    def count(self, name: str, filter: Mapping[str, Any]) -> int:
        """How many documents match."""
        return len(self.matching(name, filter))

    # -- writes ----------------------------------------------------------------------------------

    def insert(self, name: str, document: Doc) -> Doc:
        """Insert as mongomock's `insert_one` does (`_id` added to `document`); the stored document.

        A duplicate `_id` raises DuplicateKeyError (E11000) and stores nothing.
        """
        docs = self._docs(name)
        if "_id" in document and id_key(_patched(document["_id"])) in docs:
            raise DuplicateKeyError("E11000 Duplicate Key Error", 11000)
        scratch = self._scratch
        try:
            scratch.insert_one(document)  # validates, adds _id, truncates datetimes to ms
            stored: Doc = scratch._store[id_key(document["_id"])]  # mongomock's own key
        finally:
            scratch.drop()
        # Keyed by the stored `_id`, as filters are looked up (after the same datetime patch).
        self._created(name)[id_key(stored["_id"])] = stored
        return stored

    def update(
        self,
        name: str,
        current: Doc | None,
        filter: Mapping[str, Any],
        update: Any,
        *,
        upsert: bool = False,
        replace: bool = False,
    ) -> tuple[Any, Doc | None]:
        """Apply one update (or replacement) to `current`, a stored document the filter matched.

        `current` None: nothing matched, and an upsert inserts. Returns mongomock's
        result and the stored document after the write (None when nothing was written).
        `current` itself is never changed: it stays the document before.
        """
        scratch = self._scratch
        docs = self._docs(name)
        key = None if current is None else id_key(current["_id"])
        try:
            if current is not None:
                scratch._store[key] = copy.deepcopy(current)
            if replace:
                result = scratch.replace_one(dict(filter), update, upsert=upsert)
            else:
                result = scratch.update_one(dict(filter), update, upsert=upsert)
            if result.upserted_id is not None:
                key = id_key(result.upserted_id)
                if key in docs:  # the filter named an _id whose document did not match
                    raise DuplicateKeyError("E11000 Duplicate Key Error", 11000)
            elif not result.matched_count:
                return result, None
            after: Doc = scratch._store[key]
        finally:
            scratch.drop()
        self._created(name)[key] = after  # an existing key keeps its place in natural order
        return result, after

    def delete(self, name: str, doc: Mapping[str, Any]) -> None:
        """Remove a stored document."""
        self._docs(name).pop(id_key(_patched(doc["_id"])), None)

    def restore(self, name: str, doc: Doc) -> None:
        """Put a document back as it was (a rolled-back write)."""
        self._created(name)[id_key(_patched(doc["_id"]))] = doc


def _order(docs: dict[Hashable, Doc]) -> Callable[[Doc], int]:
    """Natural order of a few documents (O(n) once: only for `$in` of several `_id`s)."""
    index = {id(d): n for n, d in enumerate(docs.values())}
    return lambda d: index[id(d)]


__all__ = [
    "Doc",
    "FeedDocuments",
    "addressed_ids",
    "id_key",
    "normalized",
    "normalized_doc",
]
