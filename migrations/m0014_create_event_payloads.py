"""Events too large for one document: `event_payloads` holds their payload in parts.

An event over the server's 16 MiB document limit (a replace of a large document with
its pre-image) is stored with its payload in parts beside it
(eventstore/mongo/payload_parts.py). This step creates the collection with the index an
erasure removes an entity's parts by, and grants the roles what they do with it:
`eventstoreWriter` stores and reads parts (find, insert; never update or remove, as
for events), `eventstoreEraser` removes an erased entity's parts (find, remove).
"""

from __future__ import annotations

from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from eventstore.migrate import MigrationContext
from eventstore.mongo.collections import EVENT_PAYLOADS
from eventstore.mongo.eventlog import PARTS_INDEX

from .grants import ERASER, WRITER, grant


def privileges(db_name: str, actions: list[str]) -> list[dict[str, Any]]:
    """These actions on `event_payloads`."""
    return [{"resource": {"db": db_name, "collection": EVENT_PAYLOADS}, "actions": actions}]


async def up(db: AsyncDatabase[Any], ctx: MigrationContext) -> None:
    """Create the parts' index (and with it the collection); grant the writer and the eraser."""
    await db[EVENT_PAYLOADS].create_indexes([IndexModel(PARTS_INDEX)])
    if not ctx.real_server:
        return
    await grant(db, WRITER, privileges(db.name, ["find", "insert"]), "large events' payloads")
    await grant(db, ERASER, privileges(db.name, ["find", "remove"]), "large events' payloads")
