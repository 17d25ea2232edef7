"""The Merkle tree on MongoDB: one document per complete subtree node, one per checkpoint.

`merkle_nodes`: `_id` = level * 2**48 + index (one `$in` fetches a proof's nodes),
`h` = the 32-byte hash (empty once `truncate` cut it off: read as absent); the document `_id: -1` holds the tree size.
`merkle_checkpoints`: `_id` = tree size.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Final

from pymongo import ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from eventstore.codec import utc_ms
from eventstore.merkle import NodeId
from eventstore.model import TreeCheckpoint
from eventstore.mongo.collections import MERKLE_CHECKPOINTS, MERKLE_NODES

SIZE_ID: Final = -1
DUPLICATE_KEY: Final = 11000
BLANK: Final = b""  # the hash of a node cut off by `truncate`: read as absent
_SHIFT: Final = 48


def node_key(level: int, index: int) -> int:
    """The `_id` of node (level, index)."""
    return (level << _SHIFT) | index


def _node_id(key: int) -> NodeId:
    return key >> _SHIFT, key & ((1 << _SHIFT) - 1)


class MongoMerkleTree:
    """The `MerkleTree` port on a MongoDB database."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._nodes = db[MERKLE_NODES]
        self._checkpoints = db[MERKLE_CHECKPOINTS]
        self.queries = 0

    async def ensure_indexes(self) -> None:
        """Both collections are keyed by `_id` only: nothing to create."""

    async def size(self) -> int:
        """How many leaves the stored tree covers."""
        doc = await self._nodes.find_one({"_id": SIZE_ID})
        return int(doc["size"]) if doc else 0

    async def put_nodes(self, nodes: Sequence[tuple[int, int, bytes]], *, size: int) -> None:
        """Store the nodes (a node stored before is replaced), then raise the size to `size`.

        Capture writes each node once, so plain inserts (about two per event) are the
        path; only a batch redone after a crash meets nodes already there, and those
        are replaced one by one.
        """
        if nodes:
            docs = [{"_id": node_key(lv, ix), "h": bytes(h)} for lv, ix, h in nodes]
            try:
                await self._nodes.insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                again = [docs[e["index"]] for e in errors]
                await self._nodes.bulk_write(
                    [ReplaceOne({"_id": d["_id"]}, {"h": d["h"]}) for d in again],
                    ordered=False,
                )
        await self._nodes.update_one({"_id": SIZE_ID}, {"$max": {"size": size}}, upsert=True)

    async def get_nodes(self, ids: Collection[NodeId]) -> dict[NodeId, bytes]:
        """The stored nodes among `ids`, in one `$in` query."""
        self.queries += 1
        keys = [node_key(lv, ix) for lv, ix in ids]
        docs = await self._nodes.find({"_id": {"$in": keys}}).to_list(None)
        return {_node_id(d["_id"]): bytes(d["h"]) for d in docs if d["h"]}  # blank: absent

    async def truncate(self, size: int) -> None:
        """Blank the nodes past `size` leaves (one range per level), then lower the size.

        Blanked (`h` emptied), not deleted: the writer role has no `remove` on the
        tree's collections (m0011), and a blank node reads as absent.
        """
        # Node (level, index) covers leaves up to (index + 1) << level: past `size`
        # exactly when index >= size >> level.
        past = [
            {"_id": {"$gte": node_key(level, size >> level), "$lt": node_key(level + 1, 0)}}
            for level in range(_SHIFT)
        ]
        await self._nodes.update_many({"$or": past}, {"$set": {"h": BLANK}})
        await self._nodes.update_one({"_id": SIZE_ID}, {"$min": {"size": size}}, upsert=True)

    async def add_checkpoint(self, checkpoint: TreeCheckpoint) -> bool:
        """Insert the checkpoint; False when one of that size exists."""
        doc = {
            "_id": checkpoint.size,
            "root": checkpoint.root,
            "note": checkpoint.note,
            "signed": checkpoint.signed,
            "created_at": checkpoint.created_at,
            "cosignatures": list(checkpoint.cosignatures),
        }
        try:
            await self._checkpoints.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def checkpoint(self, size: int | None = None) -> TreeCheckpoint | None:
        """The checkpoint of `size`, or the latest."""
        if size is None:
            docs = await self._checkpoints.find({}).sort("_id", -1).limit(1).to_list(1)
            doc = docs[0] if docs else None
        else:
            doc = await self._checkpoints.find_one({"_id": size})
        return None if doc is None else _checkpoint(doc)

    async def checkpoints(self, *, after: int = 0, limit: int = 100) -> list[TreeCheckpoint]:
        """The checkpoints above `after`, by size (one find on `_id`, the size)."""
        if limit <= 0:
            return []  # the driver reads limit 0 as "no limit"
        cursor = self._checkpoints.find({"_id": {"$gt": after}}).sort("_id", 1).limit(limit)
        return [_checkpoint(doc) for doc in await cursor.to_list(None)]

    async def add_cosignature(self, size: int, line: str) -> None:
        """Add a cosignature line once (`$addToSet`)."""
        await self._checkpoints.update_one({"_id": size}, {"$addToSet": {"cosignatures": line}})


def _checkpoint(doc: dict[str, Any]) -> TreeCheckpoint:
    return TreeCheckpoint(
        size=int(doc["_id"]),
        root=doc["root"],
        note=doc["note"],
        signed=bool(doc["signed"]),
        created_at=utc_ms(doc["created_at"]),
        cosignatures=list(doc.get("cosignatures", [])),
    )
