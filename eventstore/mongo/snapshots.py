"""Entity snapshots in MongoDB: one document per (stream, entity_id, version)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bson import Int64
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import BulkWriteError

from eventstore.codec import as_utc, utc_ms
from eventstore.model import EntitySnapshot
from eventstore.mongo import compat
from eventstore.mongo.collections import SNAPSHOTS

_DUPLICATE_KEY = 11000


class MongoSnapshots:
    """The `Snapshots` port over the `snapshots` collection."""

    def __init__(self, db: Any) -> None:
        self._coll = db[SNAPSHOTS]

    async def ensure_indexes(self) -> None:
        """Unique (stream, entity_id, version): a snapshot is written once."""
        await self._coll.create_index(
            [("stream", ASCENDING), ("entity_id", ASCENDING), ("version", ASCENDING)], unique=True
        )

    async def put_many(self, snapshots: Sequence[EntitySnapshot], *, session: Any = None) -> None:
        """Insert snapshots; ones already stored (same entity and version) are kept as they are."""
        if not snapshots:
            return
        docs = [
            {
                "stream": s.stream,
                "entity_id": s.entity_id,
                "entity_key": s.entity_key,
                "version": Int64(s.version),
                "occurred_at": s.occurred_at,
                "exists": s.exists,
                "document": s.document,
                "event_hash": s.event_hash,
            }
            for s in snapshots
        ]
        try:
            await self._coll.insert_many(docs, ordered=False, **compat.session_kw(session))
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != _DUPLICATE_KEY for e in errors):
                raise

    async def latest(
        self,
        stream: str,
        entity_id: Any,
        *,
        max_version: int | None = None,
        at: datetime | None = None,
    ) -> EntitySnapshot | None:
        """The newest snapshot at or before a version and a time (one query)."""
        query: dict[str, Any] = {"stream": stream, "entity_id": entity_id}
        if max_version is not None:
            query["version"] = {"$lte": max_version}
        if at is not None:
            query["occurred_at"] = {"$lte": utc_ms(at)}
        cursor = self._coll.find(query).sort("version", DESCENDING).limit(1)
        docs = await cursor.to_list(1)
        if not docs:
            return None
        d = docs[0]
        return EntitySnapshot(
            stream=d["stream"],
            entity_id=d["entity_id"],
            entity_key=d["entity_key"],
            version=int(d["version"]),
            occurred_at=as_utc(d["occurred_at"]),
            exists=bool(d["exists"]),
            document=d.get("document"),
            event_hash=d.get("event_hash", ""),
        )
