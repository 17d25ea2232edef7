"""Leases on MongoDB: one document per role, taken and renewed with compare-and-set."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from eventstore.codec import as_utc, utc_ms
from eventstore.model import Lease
from eventstore.mongo.collections import LEASES


def _lease(doc: dict[str, Any]) -> Lease:
    return Lease(role=doc["_id"], owner=doc["owner"], expires_at=as_utc(doc["expires_at"]))


class MongoLeases:
    """The `Leases` port on a MongoDB database (collection `leases`, `_id` = role)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._coll = db[LEASES]

    async def acquire(self, role: str, owner: str, *, now: datetime, ttl: float) -> Lease | None:
        """Take or renew the role if it is free, expired (expires_at <= now), or `owner`'s."""
        now = utc_ms(now)
        expires_at = utc_ms(now + timedelta(seconds=ttl))
        try:
            # One atomic command: the filter is the compare, $set the swap. When the
            # role exists but is not ours to take, the upsert collides on `_id`.
            doc = await self._coll.find_one_and_update(
                {"_id": role, "$or": [{"owner": owner}, {"expires_at": {"$lte": now}}]},
                {"$set": {"owner": owner, "expires_at": expires_at}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return None
        return None if doc is None else _lease(doc)

    async def release(self, role: str, owner: str) -> bool:
        """Give the role up if `owner` holds it."""
        result = await self._coll.delete_one({"_id": role, "owner": owner})
        return result.deleted_count == 1

    async def get(self, role: str) -> Lease | None:
        """The current lease (possibly expired), or None."""
        doc = await self._coll.find_one({"_id": role})
        return None if doc is None else _lease(doc)
