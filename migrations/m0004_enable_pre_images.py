"""Turn on `changeStreamPreAndPostImages` for the captured collections when PRE_IMAGES asks for them."""

from __future__ import annotations

from typing import Any, Final

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from eventstore.migrate import MigrationContext, Skip

from . import NAMESPACE_NOT_FOUND

PRE_AND_POST_IMAGES: Final = {"changeStreamPreAndPostImages": {"enabled": True}}


def fingerprint(ctx: MigrationContext) -> str:
    """The source database and captured collections: a new collection makes the step run again."""
    return f"{ctx.settings.source_db}:{','.join(sorted(ctx.settings.collections))}"


async def up(db: AsyncDatabase[Any], ctx: MigrationContext) -> None:
    """`collMod` each captured collection of the source database (`create` it if missing)."""
    if ctx.settings.pre_images == "off":
        raise Skip("PRE_IMAGES is off")
    for name in ctx.settings.collections:
        try:
            await ctx.source.command({"collMod": name, **PRE_AND_POST_IMAGES})
        except OperationFailure as exc:
            if exc.code != NAMESPACE_NOT_FOUND:
                raise
            # Images exist only for writes made while the option is on: set it before the first.
            await ctx.source.command({"create": name, **PRE_AND_POST_IMAGES})
