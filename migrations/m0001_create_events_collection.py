"""Create `events` with a `$jsonSchema` validator (or put the validator on an existing one)."""

from __future__ import annotations

from typing import Any, Final

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from eventstore.migrate import MigrationContext
from eventstore.mongo.collections import EVENTS

from . import NAMESPACE_EXISTS

_INTEGER: Final = {"bsonType": ["long", "int"], "minimum": 1}
_STRING: Final = {"bsonType": "string"}
_DATE: Final = {"bsonType": "date"}
# The event types when this step was written; later types come with their own step
# (m0007: rejected), so this step means the same on every store it ever ran on.
TYPES: Final = (
    "created",
    "deleted",
    "dropped",
    "gap",
    "renamed",
    "replaced",
    "snapshot",
    "updated",
)

# What every stored event has. Other fields are allowed: old readers must survive
# new fields, and `entity_id` keeps its original BSON type (null for `$stream`).
VALIDATOR: Final[dict[str, Any]] = {
    "$jsonSchema": {
        "bsonType": "object",
        "required": [
            "_id",
            "seq",
            "stream",
            "entity_key",
            "version",
            "type",
            "occurred_at",
            "recorded_at",
            "hash",
            "prev_hash",
            "log_hash",
        ],
        "properties": {
            "_id": _STRING,
            "seq": _INTEGER,
            "stream": _STRING,
            "entity_key": _STRING,
            "version": _INTEGER,
            "type": {"enum": list(TYPES)},
            "occurred_at": _DATE,
            "recorded_at": _DATE,
            "hash": _STRING,
            "prev_hash": _STRING,
            "log_hash": _STRING,
        },
    }
}
# Strict: every insert is checked; an invalid event is refused, never stored with a warning.
OPTIONS: Final[dict[str, Any]] = {
    "validator": VALIDATOR,
    "validationLevel": "strict",
    "validationAction": "error",
}


async def up(db: AsyncDatabase[Any], ctx: MigrationContext) -> None:
    """`create` events with the validator; when it exists, `collMod` the validator onto it."""
    try:
        await db.command({"create": EVENTS, **OPTIONS})
    except OperationFailure as exc:
        if exc.code != NAMESPACE_EXISTS:
            raise
        await db.command({"collMod": EVENTS, **OPTIONS})
