"""Create the indexes of `events`: unique `seq` and (stream, entity_id, version), and the query ones."""

from __future__ import annotations

from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from eventstore.migrate import MigrationContext
from eventstore.mongo.collections import EVENTS
from eventstore.mongo.eventlog import INDEXES


async def up(db: AsyncDatabase[Any], ctx: MigrationContext) -> None:
    """One `createIndexes`; the same keys, options and default names as the event log's own."""
    await db[EVENTS].create_indexes([IndexModel(keys, **options) for keys, options in INDEXES])
