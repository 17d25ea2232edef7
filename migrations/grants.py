"""Granting the store's roles what a step's collections need (shared by the steps that do)."""

from __future__ import annotations

from typing import Any, Final

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from eventstore.migrate import Skip

from . import UNAUTHORIZED

WRITER: Final = "eventstoreWriter"
ERASER: Final = "eventstoreEraser"
ROLE_NOT_FOUND: Final = 31


async def grant_writer(db: AsyncDatabase[Any], privileges: list[dict[str, Any]], what: str) -> None:
    """`grantPrivilegesToRole` on the writer role; nothing when the deployment has none.

    A user who may not manage roles gets `Skip`, saying what to run to grant `what`.
    """
    await grant(db, WRITER, privileges, what)


async def grant(
    db: AsyncDatabase[Any], role: str, privileges: list[dict[str, Any]], what: str
) -> None:
    """`grantPrivilegesToRole` on one of the store's roles; nothing when the deployment has none.

    A user who may not manage roles gets `Skip`, saying what to run to grant `what`.
    """
    try:
        await db.command({"grantPrivilegesToRole": role, "privileges": privileges})
    except OperationFailure as exc:
        if exc.code == ROLE_NOT_FOUND:
            return  # the step that creates the role was skipped here: nothing to grant
        if exc.code == UNAUTHORIZED:
            raise Skip(
                f"the connected user may not manage roles (code {exc.code}); run migrate as a "
                f"user with userAdmin on {db.name!r} to grant {role} {what}"
            ) from exc
        raise
