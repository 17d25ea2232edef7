"""Erasure requests in MongoDB (`erasure_requests`; requested_at orders them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from pymongo import ASCENDING, DESCENDING

from eventstore.codec import as_utc
from eventstore.model import ErasureRequest
from eventstore.mongo.collections import ERASURE_REQUESTS


def _doc(request: ErasureRequest) -> dict[str, Any]:
    doc = {"_id": request.id, **msgspec.to_builtins(request, builtin_types=(datetime,))}
    doc["entity_id"] = request.entity_id  # any BSON value, kept as it is
    del doc["id"]
    return doc


def _request(doc: dict[str, Any]) -> ErasureRequest:
    fields = {k: v for k, v in doc.items() if k in ErasureRequest.__struct_fields__}
    for name in ("requested_at", "finished_at"):
        fields[name] = as_utc(fields.get(name))
    return ErasureRequest(id=doc["_id"], **fields)


class MongoErasures:
    """The `Erasures` port over the `erasure_requests` collection."""

    def __init__(self, db: Any) -> None:
        self._coll = db[ERASURE_REQUESTS]

    async def create(self, request: ErasureRequest) -> None:
        """Insert a new request."""
        await self._coll.insert_one(_doc(request))

    async def get(self, request_id: str) -> ErasureRequest | None:
        """A request by id."""
        doc = await self._coll.find_one({"_id": request_id})
        return _request(doc) if doc else None

    async def queued(self) -> list[ErasureRequest]:
        """The queued requests, oldest first."""
        cursor = self._coll.find({"state": "queued"}).sort("requested_at", ASCENDING)
        return [_request(d) for d in await cursor.to_list(None)]

    async def done_for(self, stream: str, entity_key: str) -> ErasureRequest | None:
        """The newest carried-out request for this entity."""
        cursor = (
            self._coll.find({"state": "done", "stream": stream, "entity_key": entity_key})
            .sort("seq", DESCENDING)
            .limit(1)
        )
        docs = await cursor.to_list(None)
        return _request(docs[0]) if docs else None

    async def update(self, request: ErasureRequest) -> None:
        """Replace a request's record."""
        await self._coll.replace_one({"_id": request.id}, _doc(request), upsert=True)
