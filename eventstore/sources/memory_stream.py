"""Reading the memory change feed: the `ChangeSource` and its open streams.

A stream is a position in the feed's history (feed_history.py); an idle stream
reports the token of the feed's newest change of any collection (its
postBatchResumeToken), so its position advances while other collections are
written. Snapshots list the documents (feed_documents.py).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

from bson import Timestamp

from eventstore.awaiting import wait_set
from eventstore.badinput import rename_target
from eventstore.model import ChangeBatch, ResumePoint
from eventstore.ports import ChangeSource, ChangeStream, HistoryLost, SourceError
from eventstore.sources.feed_documents import FeedDocuments
from eventstore.sources.feed_history import (
    DATABASE_OPS,
    IMAGE_OPS,
    FeedEntry,
    FeedHistory,
    make_token,
    token_position,
)

PRE_IMAGE_MODES: Final = {
    "off": "off",
    "whenAvailable": "whenAvailable",
    "when-available": "whenAvailable",  # the PRE_IMAGES setting's spelling
    "required": "required",
}


class MemoryChangeSource:
    """The feed as a `ChangeSource`: snapshots of its documents, changes from its history."""

    def __init__(
        self,
        history: FeedHistory,
        documents: FeedDocuments,
        collections: Iterable[str],
        *,
        pre_images: str = "off",
        batch_size: int = 1000,
        max_await: float = 0.05,
    ) -> None:
        if pre_images not in PRE_IMAGE_MODES:
            raise ValueError(f"pre_images takes off, whenAvailable or required, got {pre_images!r}")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.history = history
        self.documents = documents
        self.collections = frozenset(collections)
        self.pre_images = PRE_IMAGE_MODES[pre_images]
        self.batch_size = batch_size
        self.max_await = max_await

    @property
    def name(self) -> str:
        """`memory`: the in-process change feed."""
        return "memory"

    @property
    def can_snapshot(self) -> bool:
        """True: the current documents can be listed."""
        return True

    @property
    def finite(self) -> bool:
        """False: the feed never ends."""
        return False

    async def cluster_time(self) -> Timestamp:
        """The feed's current cluster time."""
        return self.history.cluster_time()

    async def scan(
        self, collection: str, batch_size: int = 1000
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The collection's current documents sorted by `_id`, read at once, in batches."""
        docs = self.documents.find(collection, {}, sort=[("_id", 1)])
        step = max(1, batch_size)
        for start in range(0, len(docs), step):
            yield docs[start : start + step]

    def watch(self, resume: ResumePoint | None) -> AbstractAsyncContextManager[ChangeStream]:
        """Open a stream at the resume point; a lost or invalid one raises from `next_batch`."""
        return _opened(MemoryChangeStream(self, resume))


@asynccontextmanager
async def _opened(stream: MemoryChangeStream) -> AsyncIterator[ChangeStream]:
    yield stream


class MemoryChangeStream:
    """An open stream: a position in the feed's history, read in batches."""

    def __init__(self, source: MemoryChangeSource, resume: ResumePoint | None) -> None:
        self._source = source
        self._feed = source.history
        self._error: Exception | None = None
        self._closed = False
        # Invariant: _token is the token of position _position (the last change examined).
        self._position = self._feed.position
        self._token = self._feed.current_token()
        self._cluster_time: Timestamp | None = None
        if resume is not None:
            self._error = self._start(resume)

    def _start(self, resume: ResumePoint) -> Exception | None:
        """Position the stream; the error the resume point deserves, raised by `next_batch`."""
        feed = self._feed
        given = [resume.resume_after, resume.start_after, resume.start_at_operation_time]
        if sum(g is not None for g in given) > 1:
            return SourceError(
                "resumeAfter, startAfter and startAtOperationTime are mutually exclusive"
            )
        token = resume.resume_after or resume.start_after
        if token is not None:
            try:
                position = token_position(token)
            except SourceError as exc:
                return exc
            if position > feed.position:
                return SourceError(f"resume token {token!r} is ahead of the feed")
            # MongoDB needs the token's own change in the oplog, not only the ones after it.
            if feed.horizon and position <= feed.horizon:
                return HistoryLost(f"resume point {token!r} is no longer in the history")
            if resume.resume_after is not None and feed.is_invalidate(position):
                return SourceError("cannot resumeAfter an invalidate event: use startAfter")
            self._position, self._token = position, dict(token)
            return None
        at = resume.start_at_operation_time
        assert at is not None
        horizon_time = feed.horizon_time
        if horizon_time is not None and at <= horizon_time:
            return HistoryLost(f"operation time {at} is no longer in the history")
        self._position = feed.first_at_or_after(at) - 1
        return None

    async def next_batch(self) -> ChangeBatch | None:
        """Up to batch_size changes, or an empty batch after max_await; None once invalidated."""
        if self._closed:
            return None
        changes = self._collect()
        if not changes and not self._closed:
            changed = self._feed.changed
            await wait_set(changed, self._source.max_await)
            changes = self._collect()
        return ChangeBatch(
            changes=changes, resume_token=dict(self._token), cluster_time=self._cluster_time
        )

    def _collect(self) -> list[dict[str, Any]]:
        if self._error is not None:
            raise self._error
        feed = self._feed
        if self._position < feed.horizon:
            self._error = HistoryLost("the stream fell behind the feed's history")
            raise self._error
        changes: list[dict[str, Any]] = []
        position = self._position
        while position < feed.position and len(changes) < self._source.batch_size:
            position += 1
            entry = feed.entry_at(position)
            if entry is None or not self._matches(entry.event):
                continue
            try:
                change = self._deliver(entry)
            except SourceError as exc:
                if not changes:
                    raise
                self._error = exc  # raised once the changes before it are delivered
                return changes
            changes.append(change)
            self._position, self._token = entry.position, dict(entry.event["_id"])
            self._cluster_time = entry.event.get("clusterTime")
            if entry.event["operationType"] == "invalidate":
                self._closed = True  # the cursor closes; only startAfter goes on
                return changes
        if not changes and position >= feed.position:
            # Idle: everything so far examined; the token moves to the feed's position.
            self._position, self._token = feed.position, feed.current_token()
            self._cluster_time = feed.latest_time if feed.position else None
        return changes

    def _matches(self, event: Mapping[str, Any]) -> bool:
        # The $match of DESIGN.md: ns.coll (or a rename's to.coll) among the collections, or a
        # database-level event.
        if event.get("operationType") in DATABASE_OPS:
            return True
        ns, collections = event.get("ns"), self._source.collections
        return (isinstance(ns, Mapping) and ns.get("coll") in collections) or (
            rename_target(event) in collections
        )

    def _deliver(self, entry: FeedEntry) -> dict[str, Any]:
        change = copy.deepcopy(entry.event)
        mode = self._source.pre_images
        if mode != "off" and change["operationType"] in IMAGE_OPS:
            if entry.image is None and mode == "required":
                raise SourceError(
                    f"no pre-image for change {change['_id']!r} "
                    "(fullDocumentBeforeChange: required)"
                )
            change["fullDocumentBeforeChange"] = copy.deepcopy(entry.image)
        return change


if TYPE_CHECKING:  # the type checker proves the port is implemented

    def _implements_port(source: MemoryChangeSource) -> ChangeSource:
        return source


__all__ = [
    "DATABASE_OPS",
    "IMAGE_OPS",
    "PRE_IMAGE_MODES",
    "FeedEntry",
    "MemoryChangeSource",
    "MemoryChangeStream",
    "make_token",
    "token_position",
]
