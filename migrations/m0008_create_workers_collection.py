"""Create the `workers` collection: each instance's worker states, for `/v1/workers` and status."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, OperationFailure

from eventstore.migrate import MigrationContext
from eventstore.mongo.collections import WORKERS

from . import NAMESPACE_EXISTS


async def up(db: AsyncDatabase[Any], ctx: MigrationContext) -> None:
    """Create it unless it exists (the adapter's upserts would create it too, without a migration)."""
    if WORKERS in set(await db.list_collection_names()):
        return
    try:
        await db.create_collection(WORKERS)
    except CollectionInvalid:  # created since we listed
        pass
    except OperationFailure as exc:
        if exc.code != NAMESPACE_EXISTS:
            raise
