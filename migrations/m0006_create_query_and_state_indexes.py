"""The indexes added after m0002: audit queries and listings on `events`, snapshots, jobs.

Audit queries page in `seq` order within a type, an actor or a changed field, so
those indexes end with `seq`; they supersede m0002's single-field ones, which
are dropped. Stores opened by the commands create the same indexes when missing;
this step lets an operator create them ahead (and remove the superseded ones).
"""

from __future__ import annotations

from typing import Any, Final

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from eventstore.migrate import MigrationContext
from eventstore.mongo.collections import EVENTS, JOBS, SNAPSHOTS
from eventstore.mongo.eventlog import INDEXES
from eventstore.mongo.jobs import ACTIVE_INDEX
from eventstore.mongo.snapshots import INDEX as SNAPSHOT_INDEX

# m0002's single-field indexes, replaced by (field, seq) ones.
SUPERSEDED: Final = ("changed_fields_1", "actor_1", "type_1")


async def up(db: AsyncDatabase[Any], ctx: MigrationContext) -> None:
    """Create the indexes (idempotent), then drop the superseded ones that exist."""
    await db[EVENTS].create_indexes([IndexModel(keys, **options) for keys, options in INDEXES])
    await db[SNAPSHOTS].create_indexes([IndexModel(SNAPSHOT_INDEX, unique=True)])
    await db[JOBS].create_indexes([IndexModel(ACTIVE_INDEX, unique=True, sparse=True)])
    existing = await db[EVENTS].index_information()
    for name in SUPERSEDED:
        if name in existing:
            await db[EVENTS].drop_index(name)
