"""Allow the `rejected` event type in the `events` collection's `$jsonSchema` validator.

A change the source delivered that cannot be interpreted is recorded, under
EVENTSTORE_BAD_INPUT=record, as a stream-level `rejected` event; a real server
refuses an insert whose `type` the validator does not list. `collMod` replaces
the whole validator, so this step sends m0001's with the longer type list.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from eventstore.migrate import MigrationContext
from eventstore.mongo.collections import EVENTS

from . import NAMESPACE_NOT_FOUND
from .m0001_create_events_collection import OPTIONS as M0001_OPTIONS
from .m0001_create_events_collection import TYPES as M0001_TYPES

TYPES: Final = tuple(sorted((*M0001_TYPES, "rejected")))


def _options() -> dict[str, Any]:
    options = copy.deepcopy(M0001_OPTIONS)
    options["validator"]["$jsonSchema"]["properties"]["type"] = {"enum": list(TYPES)}
    return options


OPTIONS: Final[dict[str, Any]] = _options()


async def up(db: AsyncDatabase[Any], ctx: MigrationContext) -> None:
    """`collMod` the validator with `rejected` onto `events`; create it when it does not exist."""
    try:
        await db.command({"collMod": EVENTS, **OPTIONS})
    except OperationFailure as exc:
        if exc.code != NAMESPACE_NOT_FOUND:
            raise
        await db.command({"create": EVENTS, **OPTIONS})
