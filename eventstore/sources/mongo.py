"""The production change source: one PyMongo Async change stream on the source database."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Final

from bson import Timestamp
from pymongo import ASCENDING
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.asynchronous.mongo_client import AsyncMongoClient
from pymongo.errors import (
    ConnectionFailure,
    InvalidOperation,
    NotPrimaryError,
    OperationFailure,
    PyMongoError,
)

from eventstore.badinput import BadChange, stream_position
from eventstore.codec import unheld_wall_time
from eventstore.model import ChangeBatch, ResumePoint
from eventstore.mongo import compat
from eventstore.ports import HistoryLost, SourceError
from eventstore.settings import PRE_IMAGE_MODES
from eventstore.split_events import SPLIT_STAGE, Fragments

log = logging.getLogger(__name__)

CHANGE_STREAM_HISTORY_LOST: Final = 286
# "The $changeStream stage is only supported on replica sets"
CHANGE_STREAM_NEEDS_REPLICA_SET: Final = 40573
# "Unrecognized pipeline stage name": a server before 6.0.9 has no $changeStreamSplitLargeEvent.
UNRECOGNIZED_STAGE: Final = 40324
# A change event over 16 MB, on a stream that cannot split it.
BSON_OBJECT_TOO_LARGE: Final = 10334

# PRE_IMAGES setting -> the `fullDocumentBeforeChange` option (off: not sent at all).
_BEFORE_CHANGE: Final[Mapping[str, str | None]] = {
    "off": None,
    "when-available": "whenAvailable",
    "required": "required",
}
# Lifecycle events the stream must see whatever the captured collections:
# `dropDatabase` has no `ns.coll`, `invalidate` no `ns` at all.
_DATABASE_EVENTS: Final = ("dropDatabase", "invalidate")


def change_pipeline(collections: Sequence[str], *, split: bool = True) -> list[dict[str, Any]]:
    """The stages after `$changeStream`: the captured collections plus database lifecycle.

    With `split`, events over 16 MB come as fragments (put together again by the
    stream) instead of failing the stream at every resume.
    """
    match = {
        "$match": {
            "$or": [
                {"ns.coll": {"$in": list(collections)}},
                # a rename into a captured collection (only a rename has `to`)
                {"to.coll": {"$in": list(collections)}},
                {"operationType": {"$in": list(_DATABASE_EVENTS)}},
            ]
        }
    }
    return [match, {SPLIT_STAGE: {}}] if split else [match]


def hosts_of(client: AsyncMongoClient[Any]) -> str:
    """The deployment's `host:port` list, for messages (never the URI: it may hold credentials)."""
    addresses = sorted(client.topology_description.server_descriptions())
    return ", ".join(f"{host}:{port}" for host, port in addresses) or "(no hosts)"


def source_error(client: AsyncMongoClient[Any], exc: PyMongoError) -> Exception:
    """The port's exception for a driver error: `HistoryLost` for 286, else `SourceError`."""
    if isinstance(exc, NotPrimaryError):  # a ConnectionFailure: the server answered, though
        return SourceError(
            f"MongoDB at {hosts_of(client)} is not the primary now (it stepped down or is"
            f" shutting down): {_not_primary_reason(exc)}"
        )
    if isinstance(exc, ConnectionFailure):
        timeout_ms = round(client.options.server_selection_timeout * 1000)
        return SourceError(f"cannot reach MongoDB at {hosts_of(client)} within {timeout_ms} ms")
    if isinstance(exc, OperationFailure):
        message = _errmsg(exc)
        if exc.code == CHANGE_STREAM_HISTORY_LOST:
            return HistoryLost(message)
        if exc.code == BSON_OBJECT_TOO_LARGE:
            return SourceError(
                "a change event is over 16 MB and this server cannot split it "
                "($changeStreamSplitLargeEvent needs MongoDB 7.0 or 6.0.9+): capture cannot "
                f"pass it until the server is upgraded ({message})"
            )
        if (
            exc.code == CHANGE_STREAM_NEEDS_REPLICA_SET
            or "only supported on replica sets" in message
        ):
            return SourceError(
                "change streams need a replica set or sharded cluster; "
                f"{hosts_of(client)} is a standalone server"
            )
        return SourceError(f"MongoDB refused the change stream (code {exc.code}): {message}")
    return SourceError(f"MongoDB error: {exc}")


def _not_primary_reason(exc: NotPrimaryError) -> str:
    """The server's own words (`errmsg`, code) when the error carries its reply."""
    details = exc.details if isinstance(exc.details, dict) else {}
    message = details.get("errmsg") or str(exc)
    code = details.get("code")
    return f"{message} (code {code})" if code is not None else str(message)


def _unknown_split_stage(exc: OperationFailure) -> bool:
    """True when the server refused the pipeline for not knowing the split stage."""
    return exc.code == UNRECOGNIZED_STAGE and SPLIT_STAGE in _errmsg(exc)


def _errmsg(exc: OperationFailure) -> str:
    details = exc.details or {}
    message = details.get("errmsg")
    return message if isinstance(message, str) else str(exc)


class MongoChangeStream:
    """An open database change stream; each `next_batch` is at most one server round trip."""

    def __init__(
        self,
        stream: AsyncChangeStream[dict[str, Any]],
        client: AsyncMongoClient[Any],
        *,
        batch_size: int,
    ) -> None:
        self._stream = stream
        self._client = client
        self._batch_size = batch_size
        self._bad: BadChange | None = None
        self._fragments: Fragments[None] = Fragments()

    async def next_batch(self) -> ChangeBatch | None:
        """What the driver has (up to `batch_size`), or an empty batch with the advanced token.

        None once the stream is closed (after an `invalidate`): reopen with `start_after`.
        A change without a resume token raises `BadChange` whatever the BAD_INPUT policy
        (the changes before it are returned first): the driver closes the stream on it,
        and reopening after the last good token would deliver it again.
        """
        if self._bad is not None:
            raise self._bad
        if not self._stream.alive:
            return None
        changes: list[dict[str, Any]] = []
        try:
            # The first try_next runs at most one getMore (waiting up to max_await_ms);
            # the rest only drain the batch the driver already holds, or read the rest
            # of an event split into fragments (the server sends them one after another).
            while len(changes) < self._batch_size:
                change = await self._stream.try_next()
                if change is None:
                    break
                for whole, _ in self._fragments.add(change, None):
                    unheld_wall_time(whole, "mongo")
                    changes.append(whole)
                if not _buffered(self._stream) and not self._fragments.pending:
                    break
        except InvalidOperation as exc:
            if "resume token is missing" not in str(exc):
                raise source_error(self._client, exc) from exc
            at = self._stream.resume_token  # the driver's token is still the last good change's
            self._bad = BadChange("mongo", stream_position(at, None), "no resume token (_id)")
            if not changes:
                raise self._bad from None
        except PyMongoError as exc:
            raise source_error(self._client, exc) from exc
        # The driver's token is the last change's `_id`, or the postBatchResumeToken
        # once a server batch is drained (also after an empty getMore): saving it after
        # the batch is stored is how an idle stream keeps its place in the oplog.
        # Inside a split event the driver's token is a fragment's: saved, a restart would
        # go on from the next fragment without the first ones. The ingester then saves
        # the last whole change's token instead (None here), and the restart reads the
        # unfinished event again from its first fragment.
        token = None if self._fragments.pending else self._stream.resume_token
        return ChangeBatch(
            changes=changes, resume_token=dict(token) if isinstance(token, Mapping) else None
        )

    async def close(self) -> None:
        """Close the cursor; a failure here loses nothing (the server times cursors out)."""
        try:
            await self._stream.close()
        except PyMongoError as exc:
            log.debug("closing the change stream failed: %s", exc)


def _buffered(stream: AsyncChangeStream[Any]) -> bool:
    """True while the driver holds more changes of the last server batch.

    PyMongo has no public way to ask; its own change stream uses the cursor's
    `_has_next()`. Without it, keep draining (each further call may wait for a getMore).
    """
    has_next = getattr(getattr(stream, "_cursor", None), "_has_next", None)
    return bool(has_next()) if callable(has_next) else True


class _Watch:
    """The async context of `MongoChangeSource.watch`: opens the stream, always closes it."""

    def __init__(self, source: MongoChangeSource, resume: ResumePoint | None) -> None:
        self._source = source
        self._resume = resume
        self._stream: MongoChangeStream | None = None

    async def __aenter__(self) -> MongoChangeStream:
        self._stream = await self._source.open(self._resume)
        return self._stream

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            await self._stream.close()


class MongoChangeSource:
    """`ChangeSource` over a MongoDB replica set or sharded cluster (PyMongo Async)."""

    def __init__(
        self,
        client: AsyncMongoClient[Any],
        *,
        source_db: str,
        collections: Sequence[str],
        pre_images: str = "off",
        batch_size: int = 1000,
        max_await_ms: int = 1000,
    ) -> None:
        if not collections:
            raise ValueError("MongoChangeSource needs at least one collection")
        if pre_images not in PRE_IMAGE_MODES:
            raise ValueError(f"pre_images takes one of {', '.join(PRE_IMAGE_MODES)}")
        if batch_size < 1 or max_await_ms < 1:
            raise ValueError("batch_size and max_await_ms must be at least 1")
        self._client = client
        # Dates outside years 1-9999 (JavaScript's last date, a "never") decode as DatetimeMS:
        # with the client's own options PyMongo refuses the whole batch holding one.
        self._db: AsyncDatabase[dict[str, Any]] = compat.database(client, source_db)
        self._collections = list(collections)
        self._pre_images = pre_images
        self._batch_size = batch_size
        self._max_await_ms = max_await_ms
        # Whether the stream asks the server to split large events (until it says it cannot).
        self._split = True

    @property
    def name(self) -> str:
        """`mongo`: a MongoDB change stream."""
        return "mongo"

    @property
    def can_snapshot(self) -> bool:
        """True: the source collections can be listed."""
        return True

    @property
    def finite(self) -> bool:
        """False: a change stream never ends by itself."""
        return False

    def watch(self, resume: ResumePoint | None) -> _Watch:
        """Open the change stream at a resume point (None: from now)."""
        return _Watch(self, resume)

    async def open(self, resume: ResumePoint | None) -> MongoChangeStream:
        """Open the change stream; the caller closes it (prefer `watch`)."""
        options: dict[str, Any] = {
            "show_expanded_events": True,
            "batch_size": self._batch_size,
            "max_await_time_ms": self._max_await_ms,
        }
        before = _BEFORE_CHANGE[self._pre_images]
        if before is not None:
            options["full_document_before_change"] = before
        options.update(resume_options(resume))
        try:
            try:
                stream = await self._watch(options)
            except OperationFailure as exc:
                if not (self._split and _unknown_split_stage(exc)):
                    raise
                self._split = False
                log.warning(
                    "MongoDB at %s has no %s (it needs 7.0 or 6.0.9+): a change event "
                    "over 16 MB will stop capture",
                    hosts_of(self._client),
                    SPLIT_STAGE,
                )
                stream = await self._watch(options)
        except PyMongoError as exc:
            raise source_error(self._client, exc) from exc
        return MongoChangeStream(stream, self._client, batch_size=self._batch_size)

    async def _watch(self, options: dict[str, Any]) -> AsyncChangeStream[dict[str, Any]]:
        pipeline = change_pipeline(self._collections, split=self._split)
        return await self._db.watch(pipeline, **options)

    async def cluster_time(self) -> Timestamp:
        """The deployment's current time, from `hello`: `operationTime`, else `$clusterTime`."""
        try:
            reply = await self._db.command("hello")
        except PyMongoError as exc:
            raise source_error(self._client, exc) from exc
        # operationTime (the last committed operation) is never after $clusterTime: the
        # earlier bound makes the snapshot and the stream overlap rather than leave a hole.
        found = reply.get("operationTime")
        if not isinstance(found, Timestamp):
            found = (reply.get("$clusterTime") or {}).get("clusterTime")
        if not isinstance(found, Timestamp):
            raise SourceError(
                f"{hosts_of(self._client)} reports no cluster time: change streams need a "
                "replica set or sharded cluster, not a standalone server"
            )
        return found

    async def scan(
        self, collection: str, *, batch_size: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The current documents of a captured collection in `_id` order, in batches."""
        cursor = self._db[collection].find({}).sort("_id", ASCENDING).batch_size(batch_size)
        try:
            while True:
                try:
                    batch = await cursor.to_list(batch_size)
                except PyMongoError as exc:
                    raise source_error(self._client, exc) from exc
                if not batch:
                    return
                yield batch
        finally:
            await cursor.close()


def resume_options(resume: ResumePoint | None) -> dict[str, Any]:
    """The one `watch()` keyword a resume point sets (none: start from now)."""
    if resume is None:
        return {}
    given = {
        "resume_after": resume.resume_after,
        "start_after": resume.start_after,
        "start_at_operation_time": resume.start_at_operation_time,
    }
    chosen = {name: value for name, value in given.items() if value is not None}
    if len(chosen) > 1:  # MongoDB refuses more than one, so say which ones here
        raise ValueError(f"a resume point sets one of its fields, got {', '.join(chosen)}")
    return chosen
