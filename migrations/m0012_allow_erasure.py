"""Erasure: the `erased` event type, the `erasure_requests` collection and the eraser role.

- `events` validator: `collMod` sends m0007's whole validator again with `erased`
  added to the type list (collMod replaces the validator whole).
- `erasure_requests`: created when missing; the writer role (which queues requests
  from the API and carries them out while capturing) may find, insert and update it.
- `eventstoreEraser`: its own role, the only one that may `update` events (an
  erasure removes payload and salt) and remove snapshots of an erased entity. The
  writer role keeps find and insert only on `events` (m0005). Grant it, besides
  the writer role, to the user the capturing instance runs as.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, OperationFailure

from eventstore.migrate import MigrationContext, Skip
from eventstore.mongo.collections import ERASURE_REQUESTS, EVENTS, SNAPSHOTS

from . import NAMESPACE_EXISTS, NAMESPACE_NOT_FOUND, UNAUTHORIZED
from .m0007_allow_rejected_events import OPTIONS as M0007_OPTIONS
from .m0007_allow_rejected_events import TYPES as M0007_TYPES

TYPES: Final = tuple(sorted((*M0007_TYPES, "erased")))
WRITER: Final = "eventstoreWriter"
ERASER: Final = "eventstoreEraser"
ROLE_NOT_FOUND: Final = 31
# Codes a server has used for "role already exists" (a concurrent createRole).
_ROLE_EXISTS: Final = (11000, 51002)


def _options() -> dict[str, Any]:
    options = copy.deepcopy(M0007_OPTIONS)
    options["validator"]["$jsonSchema"]["properties"]["type"] = {"enum": list(TYPES)}
    return options


OPTIONS: Final[dict[str, Any]] = _options()


def eraser_privileges(db_name: str) -> list[dict[str, Any]]:
    """The eraser role: update events (payload and salt only, by the code), remove snapshots."""
    return [
        {"resource": {"db": db_name, "collection": EVENTS}, "actions": ["find", "update"]},
        {"resource": {"db": db_name, "collection": SNAPSHOTS}, "actions": ["find", "remove"]},
        {
            "resource": {"db": db_name, "collection": ERASURE_REQUESTS},
            "actions": ["find", "insert", "update"],
        },
    ]


def writer_privileges(db_name: str) -> list[dict[str, Any]]:
    """What the writer role gains: requests may be queued, read and marked done; never removed."""
    return [
        {
            "resource": {"db": db_name, "collection": ERASURE_REQUESTS},
            "actions": ["find", "insert", "update"],
        }
    ]


async def up(db: AsyncDatabase[Any], ctx: MigrationContext) -> None:
    """Validator with `erased`; the requests collection; the eraser role; the writer's grant."""
    try:
        await db.command({"collMod": EVENTS, **OPTIONS})
    except OperationFailure as exc:
        if exc.code != NAMESPACE_NOT_FOUND:
            raise
        await db.command({"create": EVENTS, **OPTIONS})
    if ERASURE_REQUESTS not in set(await db.list_collection_names()):
        try:
            await db.create_collection(ERASURE_REQUESTS)
        except CollectionInvalid:  # created since we listed
            pass
        except OperationFailure as exc:
            if exc.code != NAMESPACE_EXISTS:
                raise
    if not ctx.real_server:
        return
    try:
        await _eraser_role(db)
        try:
            await db.command(
                {"grantPrivilegesToRole": WRITER, "privileges": writer_privileges(db.name)}
            )
        except OperationFailure as exc:
            if exc.code != ROLE_NOT_FOUND:
                raise  # no writer role in this deployment (m0005 was skipped): nothing to grant
    except OperationFailure as exc:
        if exc.code == UNAUTHORIZED:
            raise Skip(
                f"the connected user may not manage roles (code {exc.code}); run migrate as a "
                f"user with userAdmin on {db.name!r} to create {ERASER}"
            ) from exc
        raise


async def _eraser_role(db: AsyncDatabase[Any]) -> None:
    """`createRole` eventstoreEraser, or `updateRole` when it exists."""
    info = await db.command({"rolesInfo": ERASER})
    command = "updateRole" if info.get("roles") else "createRole"
    privileges = eraser_privileges(db.name)
    try:
        await db.command({command: ERASER, "privileges": privileges, "roles": []})
    except OperationFailure as exc:
        message = str((exc.details or {}).get("errmsg", ""))
        if command != "createRole" or not (exc.code in _ROLE_EXISTS or "already exists" in message):
            raise
        await db.command({"updateRole": ERASER, "privileges": privileges, "roles": []})
