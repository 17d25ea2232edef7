"""Create the state collections: checkpoints, snapshots, leases, jobs."""

from __future__ import annotations

from typing import Any, Final

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, OperationFailure

from eventstore.migrate import MigrationContext
from eventstore.mongo.collections import CHECKPOINTS, JOBS, LEASES, SNAPSHOTS

from . import NAMESPACE_EXISTS

STATE_COLLECTIONS: Final = (CHECKPOINTS, SNAPSHOTS, LEASES, JOBS)


async def up(db: AsyncDatabase[Any], ctx: MigrationContext) -> None:
    """Create those that do not exist yet."""
    existing = set(await db.list_collection_names())
    for name in STATE_COLLECTIONS:
        if name in existing:
            continue
        try:
            await db.create_collection(name)
        except CollectionInvalid:  # created since we listed
            pass
        except OperationFailure as exc:
            if exc.code != NAMESPACE_EXISTS:
                raise
