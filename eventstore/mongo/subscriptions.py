"""Subscriptions on MongoDB: records, settled positions, parked events and the admin trail."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from pymongo import ASCENDING, ReplaceOne

from eventstore.codec import as_utc, utc_ms
from eventstore.mongo.collections import (
    ADMIN_ACTIONS,
    SUBSCRIPTION_PARKED,
    SUBSCRIPTION_SETTLED,
    SUBSCRIPTIONS,
)
from eventstore.subscription_records import AdminAction, ParkedEvent, SubscriptionRecord

T = TypeVar("T", bound=msgspec.Struct)
_TIMES = ("created_at", "updated_at", "last_delivery_at", "parked_at", "at")


def _doc(struct: msgspec.Struct) -> dict[str, Any]:
    doc: dict[str, Any] = msgspec.to_builtins(struct, builtin_types=(datetime,))
    for k in _TIMES:
        if isinstance(doc.get(k), datetime):
            doc[k] = utc_ms(doc[k])
    return doc


def _read(cls: type[T], doc: dict[str, Any]) -> T:
    fields = {k: v for k, v in doc.items() if k in cls.__struct_fields__}
    for k in _TIMES:
        if fields.get(k) is not None:
            fields[k] = as_utc(fields[k])
    return cls(**fields)


class MongoSubscriptions:
    """The `Subscriptions` port over the `subscriptions` collection (`_id` = name)."""

    def __init__(self, db: Any) -> None:
        self._coll = db[SUBSCRIPTIONS]

    async def get(self, name: str) -> SubscriptionRecord | None:
        """The record, or None."""
        doc = await self._coll.find_one({"_id": name})
        return None if doc is None else _read(SubscriptionRecord, doc)

    async def all(self) -> list[SubscriptionRecord]:
        """Every record, by name."""
        return [_read(SubscriptionRecord, d) async for d in self._coll.find({}).sort("_id", 1)]

    async def create(self, record: SubscriptionRecord) -> bool:
        """Store a new record (an upsert that only inserts); False when the name exists."""
        doc = {"_id": record.name, **_doc(record)}
        result = await self._coll.update_one(
            {"_id": record.name}, {"$setOnInsert": doc}, upsert=True
        )
        return result.upserted_id is not None

    async def patch(self, name: str, fields: Mapping[str, Any]) -> bool:
        """Set top-level fields."""
        values = {k: utc_ms(v) if isinstance(v, datetime) else v for k, v in dict(fields).items()}
        result = await self._coll.update_one({"_id": name}, {"$set": values})
        return bool(result.matched_count)

    async def delete(self, name: str) -> bool:
        """Remove a record."""
        return bool((await self._coll.delete_one({"_id": name})).deleted_count)

    async def push_command(self, name: str, command: Mapping[str, Any]) -> bool:
        """Queue a command ($push: concurrent requests all land)."""
        result = await self._coll.update_one({"_id": name}, {"$push": {"commands": dict(command)}})
        return bool(result.matched_count)

    async def drop_commands(self, name: str, ids: Sequence[str]) -> None:
        """Remove carried-out commands ($pull by id)."""
        await self._coll.update_one(
            {"_id": name}, {"$pull": {"commands": {"id": {"$in": list(ids)}}}}
        )


class MongoDeliveries:
    """The `Deliveries` port: `subscription_settled` and `subscription_parked` (`_id` = name:seq)."""

    def __init__(self, db: Any) -> None:
        self._settled = db[SUBSCRIPTION_SETTLED]
        self._parked = db[SUBSCRIPTION_PARKED]

    async def settle(self, name: str, seqs: Sequence[int]) -> None:
        """Record settled seqs (upserts: idempotent)."""
        if seqs:
            await self._settled.bulk_write(
                [
                    ReplaceOne({"_id": f"{name}:{s}"}, {"name": name, "seq": s}, upsert=True)
                    for s in seqs
                ],
                ordered=False,
            )

    async def settled(self, name: str, *, above: int) -> list[int]:
        """Settled seqs above a position."""
        cursor = self._settled.find({"name": name, "seq": {"$gt": above}}).sort("seq", ASCENDING)
        return [int(d["seq"]) async for d in cursor]

    async def forget_settled(self, name: str, *, up_to: int) -> None:
        """Drop settled seqs covered by the checkpoint."""
        await self._settled.delete_many({"name": name, "seq": {"$lte": up_to}})

    async def park(self, events: Sequence[ParkedEvent]) -> None:
        """Store parked events."""
        for e in events:
            doc = {"_id": f"{e.name}:{e.seq}", **_doc(e)}
            await self._parked.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def parked(
        self, name: str, *, after_seq: int = 0, up_to: int | None = None, limit: int | None = None
    ) -> list[ParkedEvent]:
        """Parked events in seq order."""
        bounds: dict[str, int] = {"$gt": after_seq}
        if up_to is not None:
            bounds["$lte"] = up_to
        cursor = self._parked.find({"name": name, "seq": bounds}).sort("seq", ASCENDING)
        if limit is not None:
            cursor = cursor.limit(limit)
        return [_read(ParkedEvent, d) async for d in cursor]

    async def count_parked(self, name: str) -> int:
        """How many are parked."""
        return int(await self._parked.count_documents({"name": name}))

    async def unpark(self, name: str, seqs: Sequence[int]) -> int:
        """Remove parked events."""
        result = await self._parked.delete_many({"name": name, "seq": {"$in": list(seqs)}})
        return int(result.deleted_count)

    async def clear(self, name: str) -> None:
        """Forget everything of a subscription."""
        await self._settled.delete_many({"name": name})
        await self._parked.delete_many({"name": name})


class MongoAdminActions:
    """The `AdminActions` port over `admin_actions` (`_id` = the action's sortable id)."""

    def __init__(self, db: Any) -> None:
        self._coll = db[ADMIN_ACTIONS]

    async def append(self, action: AdminAction) -> None:
        """Add an action (an insert: the trail is never rewritten)."""
        await self._coll.insert_one({"_id": action.id, **_doc(action)})

    async def page(self, *, after: str | None = None, limit: int = 100) -> list[AdminAction]:
        """Actions after a cursor."""
        query = {} if after is None else {"_id": {"$gt": after}}
        cursor = self._coll.find(query).sort("_id", ASCENDING).limit(limit)
        return [_read(AdminAction, d) async for d in cursor]
