"""Entity snapshots in MongoDB: one document per (stream, entity_id, version)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from bson import Int64
from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.errors import BulkWriteError

from eventstore.codec import as_utc, utc_ms
from eventstore.model import EntitySnapshot
from eventstore.mongo import compat
from eventstore.mongo.collections import SNAPSHOTS

# Unique (stream, entity_id, version): one snapshot per entity and version (migrations use it too).
INDEX: Final = [("stream", ASCENDING), ("entity_id", ASCENDING), ("version", ASCENDING)]

_DUPLICATE_KEY = 11000


def _write(s: EntitySnapshot) -> UpdateOne:
    """An upsert of one snapshot: the state is replaced, `next_version` only moves down."""
    key = {"stream": s.stream, "entity_id": s.entity_id, "version": Int64(s.version)}
    update: dict[str, Any] = {
        "$set": {
            **key,
            "entity_key": s.entity_key,
            "occurred_at": utc_ms(s.occurred_at),
            "exists": s.exists,
            "document": s.document,
            "event_hash": s.event_hash,
            "findings": s.findings,
        }
    }
    if s.next_version is not None:
        # $min sets a missing field and keeps a nearer link already stored.
        update["$min"] = {"next_version": Int64(s.next_version)}
    return UpdateOne(key, update, upsert=True)


def _snapshot(d: dict[str, Any]) -> EntitySnapshot:
    next_version = d.get("next_version")
    return EntitySnapshot(
        stream=d["stream"],
        entity_id=d["entity_id"],
        entity_key=d["entity_key"],
        version=int(d["version"]),
        occurred_at=as_utc(d["occurred_at"]),
        exists=bool(d["exists"]),
        document=d.get("document"),
        event_hash=d.get("event_hash", ""),
        next_version=int(next_version) if next_version is not None else None,
        findings=list(d.get("findings") or []),
    )


class MongoSnapshots:
    """The `Snapshots` port over the `snapshots` collection."""

    def __init__(self, db: Any) -> None:
        self._coll = db[SNAPSHOTS]

    async def ensure_indexes(self) -> None:
        """Unique (stream, entity_id, version): one snapshot per entity and version."""
        await self._coll.create_index(INDEX, unique=True)

    async def put_many(self, snapshots: Sequence[EntitySnapshot], *, session: Any = None) -> None:
        """Upsert snapshots in one bulk write (unordered)."""
        if not snapshots:
            return
        try:
            await self._coll.bulk_write(
                [_write(s) for s in snapshots], ordered=False, **compat.session_kw(session)
            )
        except BulkWriteError as exc:
            # Two readers laying the same snapshot race on the unique index: the state
            # they write is the same (the fold is deterministic), so the loser has nothing to add.
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != _DUPLICATE_KEY for e in errors):
                raise

    async def purge_entity(self, stream: str, entity_id: Any) -> int:
        """Delete every snapshot of one entity."""
        result = await self._coll.delete_many({"stream": stream, "entity_id": entity_id})
        return int(result.deleted_count)

    async def latest(
        self,
        stream: str,
        entity_id: Any,
        *,
        max_version: int | None = None,
        at: datetime | None = None,
    ) -> EntitySnapshot | None:
        """The newest snapshot at or before a version and a time (one find, sort + limit)."""
        query: dict[str, Any] = {"stream": stream, "entity_id": entity_id}
        if max_version is not None:
            query["version"] = {"$lte": max_version}
        if at is not None:
            query["occurred_at"] = {"$lte": utc_ms(at)}
        docs = await self._coll.find(query).sort("version", DESCENDING).limit(1).to_list(1)
        return _snapshot(docs[0]) if docs else None
