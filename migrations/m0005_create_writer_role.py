"""Create (or update) the role `eventstoreWriter`: append-only on `events`, read-write on the state."""

from __future__ import annotations

from typing import Any, Final

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from eventstore.migrate import MigrationContext, Skip
from eventstore.mongo.collections import CHECKPOINTS, EVENTS, JOBS, LEASES, SNAPSHOTS

from . import UNAUTHORIZED

ROLE: Final = "eventstoreWriter"
# Codes a server has used for "role already exists" (a concurrent createRole).
_ROLE_EXISTS: Final = (11000, 51002)


def privileges(db_name: str) -> list[dict[str, Any]]:
    """The role's privileges: `events` gets find and insert only, never update or remove."""
    found: list[dict[str, Any]] = [
        {"resource": {"db": db_name, "collection": EVENTS}, "actions": ["find", "insert"]}
    ]
    found.extend(
        {
            "resource": {"db": db_name, "collection": name},
            "actions": ["find", "insert", "update", "remove"],
        }
        for name in (CHECKPOINTS, SNAPSHOTS, LEASES, JOBS)
    )
    return found


async def up(db: AsyncDatabase[Any], ctx: MigrationContext) -> None:
    """`createRole` in the store database, or `updateRole` when it exists."""
    try:
        info = await db.command({"rolesInfo": ROLE})
        command = "updateRole" if info.get("roles") else "createRole"
        try:
            await db.command({command: ROLE, "privileges": privileges(db.name), "roles": []})
        except OperationFailure as exc:
            if command != "createRole" or not _role_exists(exc):
                raise
            await db.command({"updateRole": ROLE, "privileges": privileges(db.name), "roles": []})
    except OperationFailure as exc:
        if exc.code == UNAUTHORIZED:
            raise Skip(
                f"the connected user may not manage roles (code {exc.code}); "
                f"run migrate as a user with userAdmin on {db.name!r} to create {ROLE}"
            ) from exc
        raise


def _role_exists(exc: OperationFailure) -> bool:
    message = str((exc.details or {}).get("errmsg", ""))
    return exc.code in _ROLE_EXISTS or "already exists" in message
