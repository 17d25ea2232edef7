"""Checkpoints on MongoDB: one document per consumer, replaced whole."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from eventstore.codec import checkpoint_doc, checkpoint_from_doc
from eventstore.model import Checkpoint
from eventstore.mongo import compat
from eventstore.mongo.collections import CHECKPOINTS


class MongoCheckpoints:
    """The `Checkpoints` port on a MongoDB database (collection `checkpoints`, `_id` = name)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._coll = db[CHECKPOINTS]

    async def get(self, name: str) -> Checkpoint | None:
        """The checkpoint, or None before the first one."""
        doc = await self._coll.find_one({"_id": name})
        return None if doc is None else checkpoint_from_doc(doc)

    async def put(self, checkpoint: Checkpoint, *, session: Any = None) -> None:
        """Store (replace) a checkpoint; the resume token is kept whole."""
        await self._coll.replace_one(
            {"_id": checkpoint.name},
            checkpoint_doc(checkpoint),
            upsert=True,
            **compat.session_kw(session),
        )
