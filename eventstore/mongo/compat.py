"""The one place where PyMongo Async and mongomock-motor (which imitates Motor) differ.

- `aggregate`: PyMongo Async returns a coroutine of a cursor; mongomock-motor the cursor.
- `session=`: mongomock refuses the keyword even when it is None.
- `close`: a coroutine on `AsyncMongoClient`, a plain method on mongomock's client.
"""

from __future__ import annotations

import inspect
from typing import Any


async def aggregate_list(
    collection: Any, pipeline: list[dict[str, Any]], **kw: Any
) -> list[dict[str, Any]]:
    """Run an aggregation and return every result document."""
    cursor = collection.aggregate(pipeline, **kw)
    if inspect.isawaitable(cursor):
        cursor = await cursor
    docs: list[dict[str, Any]] = await cursor.to_list(None)
    return docs


def session_kw(session: Any) -> dict[str, Any]:
    """`{"session": session}` for the driver, or nothing when there is no session."""
    return {} if session is None else {"session": session}


async def close_client(client: Any) -> None:
    """Close a client whether its `close()` is a coroutine (PyMongo Async) or not (mongomock)."""
    result = client.close()
    if inspect.isawaitable(result):
        await result
