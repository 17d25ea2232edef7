"""Create the subscription collections and their indexes.

`subscriptions` (one record per name), `subscription_settled` (settled seqs above
each checkpoint), `subscription_parked` (parked events) and `admin_actions` (the
append-only operator trail). Idempotent: existing collections and indexes stay.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, OperationFailure

from eventstore.migrate import MigrationContext
from eventstore.mongo.collections import (
    ADMIN_ACTIONS,
    SUBSCRIPTION_PARKED,
    SUBSCRIPTION_SETTLED,
    SUBSCRIPTIONS,
)

from . import NAMESPACE_EXISTS

# The worker reads settled and parked seqs of one subscription in seq order.
BY_NAME_AND_SEQ = [("name", ASCENDING), ("seq", ASCENDING)]
# The trail is read in `at` order too (its `_id` sorts by time already).
BY_TIME = [("at", ASCENDING)]


async def up(db: AsyncDatabase[Any], ctx: MigrationContext) -> None:
    """Create each collection unless it exists, then the indexes (create_indexes is idempotent)."""
    existing = set(await db.list_collection_names())
    for name in (SUBSCRIPTIONS, SUBSCRIPTION_SETTLED, SUBSCRIPTION_PARKED, ADMIN_ACTIONS):
        if name in existing:
            continue
        try:
            await db.create_collection(name)
        except CollectionInvalid:  # created since we listed
            pass
        except OperationFailure as exc:
            if exc.code != NAMESPACE_EXISTS:
                raise
    await db[SUBSCRIPTION_SETTLED].create_indexes([IndexModel(BY_NAME_AND_SEQ, unique=True)])
    await db[SUBSCRIPTION_PARKED].create_indexes([IndexModel(BY_NAME_AND_SEQ, unique=True)])
    await db[ADMIN_ACTIONS].create_indexes([IndexModel(BY_TIME)])
