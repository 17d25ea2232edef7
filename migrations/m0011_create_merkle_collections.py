"""Create the Merkle tree's collections and let the writer role maintain them.

`merkle_nodes` (complete subtree nodes and the tree size) and `merkle_checkpoints`
(every checkpoint made, with witnesses' cosignatures) are keyed by `_id` only.
`eventstoreWriter` gets find, insert and update on both (upserts of nodes that
never change, cosignatures added to a checkpoint), never remove.
"""

from __future__ import annotations

from typing import Any, Final

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, OperationFailure

from eventstore.migrate import MigrationContext
from eventstore.mongo.collections import MERKLE_CHECKPOINTS, MERKLE_NODES

from . import NAMESPACE_EXISTS
from .grants import grant_writer

COLLECTIONS: Final = (MERKLE_NODES, MERKLE_CHECKPOINTS)


def privileges(db_name: str) -> list[dict[str, Any]]:
    """What the writer role gains: find, insert and update on the tree's collections."""
    return [
        {"resource": {"db": db_name, "collection": name}, "actions": ["find", "insert", "update"]}
        for name in COLLECTIONS
    ]


async def up(db: AsyncDatabase[Any], ctx: MigrationContext) -> None:
    """Create the collections that do not exist; grant the writer role where it exists."""
    existing = set(await db.list_collection_names())
    for name in COLLECTIONS:
        if name in existing:
            continue
        try:
            await db.create_collection(name)
        except CollectionInvalid:  # created since we listed
            pass
        except OperationFailure as exc:
            if exc.code != NAMESPACE_EXISTS:
                raise
    if not ctx.real_server:
        return
    await grant_writer(db, privileges(db.name), "the Merkle collections")
