"""Create the listings' index (`entity_heads`, `stream_stats`) and let the writer role keep it.

`GET /v1/streams` and a stream's entity listing read it instead of grouping the whole log
(eventstore/mongo/log_index.py). The capturing instance fills it from the log when it
starts (a log written before it is indexed then, in pages, with progress in the log) and
after each batch; until then the listings read the log as before. `eventstoreWriter`
gets find, insert, update and remove on both collections (an index the log no longer
matches, after a restore, is emptied and built again).
"""

from __future__ import annotations

from typing import Any, Final

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from eventstore.migrate import MigrationContext
from eventstore.mongo.collections import ENTITY_HEADS, STREAM_STATS
from eventstore.mongo.log_index import HEADS_INDEX

from .grants import grant_writer

COLLECTIONS: Final = (ENTITY_HEADS, STREAM_STATS)


def privileges(db_name: str) -> list[dict[str, Any]]:
    """What the writer role gains: read and write on the index's collections."""
    return [
        {
            "resource": {"db": db_name, "collection": name},
            "actions": ["find", "insert", "update", "remove"],
        }
        for name in COLLECTIONS
    ]


async def up(db: AsyncDatabase[Any], ctx: MigrationContext) -> None:
    """Create the heads' index (and with it the collection); grant the writer role."""
    await db[ENTITY_HEADS].create_indexes([IndexModel(HEADS_INDEX)])
    if not ctx.real_server:
        return
    await grant_writer(db, privileges(db.name), "the listings' index")
