"""The one place where PyMongo Async and mongomock-motor (which imitates Motor) differ.

- `aggregate`: PyMongo Async returns a coroutine of a cursor; mongomock-motor the cursor.
- `session=`: mongomock refuses the keyword even when it is None.
- `close`: a coroutine on `AsyncMongoClient`, a plain method on mongomock's client.
- `watch`: a coroutine of a change stream in PyMongo Async; mongomock-motor has none.
- `codec_options`: bson's CodecOptions in PyMongo; mongomock has a look-alike of its own
  (which refuses DATETIME_AUTO, and keeps a DatetimeMS as it was stored).
- `database`: a client's database, reading dates outside years 1-9999 (PyMongo).
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from bson.codec_options import CodecOptions
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.asynchronous.collection import AsyncCollection

from eventstore.awaiting import within
from eventstore.codec import DATETIMES

log = logging.getLogger(__name__)


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


# How many times `close_client` calls a bounded `close`: each gives up one wait on the server.
CLOSE_ATTEMPTS = 3


async def close_client(client: Any, seconds: float | None = None) -> None:
    """Close a client whether its `close()` is a coroutine (PyMongo Async) or not (mongomock).

    `seconds` bounds each of PyMongo's waits in `close`. It first ends the client's
    sessions on the server, then kills the cursors queued for killing, each awaiting
    the answer (a server that stopped answering holds it for the whole reply timeout),
    and only then stops the monitors and closes the pools. Each step takes what it works
    on off the client before it waits, so a `close` given up on is followed by another
    that has that much less to wait for: within CLOSE_ATTEMPTS the client is closed.
    """
    result = client.close()
    if not inspect.isawaitable(result):
        return
    for attempt in range(CLOSE_ATTEMPTS):
        try:
            await within(result, seconds)
            return
        except TimeoutError:
            if attempt == 0:
                log.warning("closing the MongoDB client without the server's answers")
            result = client.close()
    result.close()  # never awaited: no "coroutine was never awaited" warning
    log.warning("left the MongoDB client unclosed: the server does not answer")


async def watch(
    collection: Any, pipeline: list[dict[str, Any]], **kw: Any
) -> AsyncChangeStream[dict[str, Any]]:
    """Open a change stream on a collection (the `aggregate` is sent before this returns).

    Raises `NotImplementedError` where the collection cannot have one: mongomock-motor
    (whose `watch` is a sub-collection named `watch`). A server without change streams
    (a standalone) answers the `aggregate` with an `OperationFailure` instead.
    """
    if not isinstance(collection, AsyncCollection):
        raise NotImplementedError(f"{type(collection).__name__} has no change streams")
    stream: AsyncChangeStream[dict[str, Any]] = await collection.watch(pipeline, **kw)
    return stream


def codec_options(collection: Any) -> CodecOptions[Any]:
    """The options the collection decodes with, as bson's `CodecOptions` (for `bson.encode`
    and `bson.decode`), reading a date outside years 1-9999 as a DatetimeMS (DATETIMES)."""
    options = collection.codec_options
    if isinstance(options, CodecOptions):
        return options.with_options(datetime_conversion=DATETIMES)
    return CodecOptions(
        tz_aware=bool(getattr(options, "tz_aware", False)), datetime_conversion=DATETIMES
    )


def database(client: Any, name: str) -> Any:
    """The database `name` of `client`, decoding every date BSON holds: one outside years
    1-9999 as a DatetimeMS (DATETIMES), where PyMongo's default refuses the whole reply.
    mongomock refuses the option and needs none (it hands back the DatetimeMS it keeps)."""
    options = client.codec_options
    if isinstance(options, CodecOptions):
        return client.get_database(
            name, codec_options=options.with_options(datetime_conversion=DATETIMES)
        )
    return client[name]
