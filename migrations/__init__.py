"""Numbered, idempotent MongoDB migrations; `eventstore.migrate` finds and runs them in order.

Each `mNNNN_<verb>_<object>` module has `async def up(db, ctx) -> None` (db: the
store database, ctx: `eventstore.migrate.MigrationContext`) and may have
`def fingerprint(ctx) -> str`. Running a step twice leaves the same result.

The runner loads this package from its own files under a private name (never the
`migrations` that comes first on `sys.path`), so steps import it relatively:
`from . import NAMESPACE_EXISTS`.
"""

from __future__ import annotations

from typing import Final

# Server error codes the steps react to.
UNAUTHORIZED: Final = 13
NAMESPACE_NOT_FOUND: Final = 26
NAMESPACE_EXISTS: Final = 48
