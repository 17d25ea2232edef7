"""The memory change feed: collections held by `_id` whose writes are recorded as MongoDB change events.

Tests and the demo write through `MemoryChangeFeed.collection(name)`; every
write appends the change events MongoDB would produce (CHANGE_EVENTS.md), and
`feed.source(...)` reads them back as a `ChangeSource` with resume tokens,
resuming, a history horizon and idle resume tokens, like a change stream on
the source database opened with `showExpandedEvents` (see memory_stream.py).

The documents are held by `_id` (feed_documents.py) and each write is applied
with mongomock's semantics to the one document it addresses, so a write by
`_id` costs the same at any collection size. History is a list of changes,
oldest first, with dense positions from 1 (feed_history.py); the oldest ones
can be forgotten (`forget_before`, `history_limit`), as an oplog rolls over.
"""

from __future__ import annotations

import contextvars
import copy
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from bson import Binary, Int64, Timestamp

from eventstore.clock import SystemClock
from eventstore.codec import utc_ms
from eventstore.ports import Clock, SourceError
from eventstore.sources.feed_collection import FeedCollection
from eventstore.sources.feed_documents import Doc, FeedDocuments, normalized
from eventstore.sources.feed_history import (
    DATABASE_OPS,
    IMAGE_OPS,
    FeedEntry,
    FeedHistory,
    make_token,
    token_position,
)
from eventstore.sources.memory_stream import MemoryChangeSource, MemoryChangeStream


class _Txn:
    """Writes of an open transaction: their changes wait for the commit; `undo` rolls back."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, dict[str, Any], Doc | None]] = []
        self.undo: list[tuple[str, str, Any, Doc | None]] = []


class MemoryChangeFeed:
    """An in-process change feed over the collections of one database."""

    def __init__(
        self,
        *,
        db_name: str = "shop",
        clock: Clock | None = None,
        history_limit: int | None = None,
    ) -> None:
        self.db_name = db_name
        self.clock: Clock = clock or SystemClock()
        self.documents = FeedDocuments()
        self.history = FeedHistory(self.clock, limit=history_limit)
        self._pre_images: set[str] = set()
        self._uuids: dict[str, Binary] = {}
        self._txn: contextvars.ContextVar[_Txn | None] = contextvars.ContextVar(
            f"memory-feed-txn-{id(self)}", default=None
        )
        self._lsid = {
            "id": Binary.from_uuid(uuid.uuid4()),
            "uid": Binary(hashlib.sha256(b"").digest(), 0),
        }
        self._txn_number = 0

    # -- collections -----------------------------------------------------------------------------

    def collection(self, name: str) -> FeedCollection:
        """A collection whose writes are recorded."""
        return FeedCollection(self.documents, name, db_name=self.db_name, record=self._emit)

    def enable_pre_images(self, name: str, enabled: bool = True) -> None:
        """Keep pre-images of the collection's later writes (`changeStreamPreAndPostImages`)."""
        if enabled:
            self._pre_images.add(name)
        else:
            self._pre_images.discard(name)

    async def collection_names(self) -> list[str]:
        """The database's collections, sorted."""
        return self.documents.names()

    async def drop_collection(self, name: str) -> bool:
        """Drop a collection: a `drop` event. False (and no event) when it does not exist."""
        self._check_ddl()
        if not self.documents.drop(name):
            return False
        self._emit(name, {"operationType": "drop", "ns": self._ns(name)}, before=None)
        self._forget_collection(name)
        return True

    async def rename_collection(self, old: str, new: str, *, drop_target: bool = False) -> None:
        """Rename a collection: a `rename` event with `to` (and `operationDescription`)."""
        self._check_ddl()
        names = self.documents.names()
        if old not in names:
            raise SourceError(f"cannot rename {self.db_name}.{old}: no such collection")
        if new in names and not drop_target:
            raise SourceError(
                f"cannot rename to {self.db_name}.{new}: it exists (drop_target=False)"
            )
        description: dict[str, Any] = {"to": self._ns(new)}
        if new in names:
            description["dropTarget"] = self._uuid(new)
        self.documents.rename(old, new)
        body = {
            "operationType": "rename",
            "ns": self._ns(old),
            "to": self._ns(new),
            "operationDescription": description,
        }
        self._emit(old, body, before=None)
        self._forget_collection(new)
        self._uuids[new] = self._uuid(old)
        if old in self._pre_images:
            self._pre_images.add(new)
        self._forget_collection(old)

    async def drop_database(self) -> None:
        """Drop the database: a `drop` per collection, `dropDatabase`, then `invalidate`."""
        self._check_ddl()
        names = self.documents.names()
        self.documents.drop_all()
        for name in names:
            self._emit(name, {"operationType": "drop", "ns": self._ns(name)}, before=None)
            self._forget_collection(name)
        self._emit(None, {"operationType": "dropDatabase", "ns": {"db": self.db_name}}, before=None)
        self._emit(None, {"operationType": "invalidate"}, before=None)

    def _ns(self, coll: str) -> dict[str, Any]:
        return {"db": self.db_name, "coll": coll}

    def _uuid(self, coll: str) -> Binary:
        if coll not in self._uuids:
            self._uuids[coll] = Binary.from_uuid(uuid.uuid4())
        return self._uuids[coll]

    def _forget_collection(self, name: str) -> None:
        self._uuids.pop(name, None)
        self._pre_images.discard(name)

    # -- transactions ----------------------------------------------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Group this task's writes: on commit their events share a clusterTime, `lsid`, `txnNumber`.

        An exception rolls the writes back (no events). Other tasks' writes are not
        isolated from the open transaction (mongomock has none): keep them apart.
        """
        if self._txn.get() is not None:
            raise RuntimeError("transactions do not nest")
        txn = _Txn()
        reset = self._txn.set(txn)
        try:
            yield
        except BaseException:
            self._txn.reset(reset)
            await self._roll_back(txn)
            raise
        self._txn.reset(reset)
        if not txn.changes:
            return
        self._txn_number += 1
        when, wall = self.history.tick(), utc_ms(self.clock.now())  # one commit: one time for all
        extra = {"lsid": copy.deepcopy(self._lsid), "txnNumber": Int64(self._txn_number)}
        for coll, body, before in txn.changes:
            self._append(coll, {**body, **extra}, before=before, cluster_time=when, wall_time=wall)

    async def _roll_back(self, txn: _Txn) -> None:
        for op, coll, doc_id, before in reversed(txn.undo):
            if op == "insert":
                self.documents.delete(coll, {"_id": doc_id})
            elif before is not None:  # a delete, update or replace: the document as it was
                self.documents.restore(coll, before)

    def _check_ddl(self) -> None:
        if self._txn.get() is not None:
            raise RuntimeError("collection and database commands are not allowed in a transaction")

    # -- recording ---------------------------------------------------------------------------------

    def _emit(self, coll: str | None, body: dict[str, Any], before: Doc | None) -> None:
        """Record one change of a write (held back while this task's transaction is open)."""
        txn = self._txn.get()
        if txn is None:
            self._append(coll, body, before=before)
            return
        txn.changes.append((coll or "", body, before))
        key = body.get("documentKey") or {}
        txn.undo.append((body["operationType"], coll or "", key.get("_id"), before))

    def _append(
        self,
        coll: str | None,
        body: Mapping[str, Any],
        *,
        before: Doc | None,
        cluster_time: Timestamp | None = None,
        wall_time: datetime | None = None,
        with_uuid: bool = True,
    ) -> dict[str, Any]:
        op = body["operationType"]
        image = None
        if op in IMAGE_OPS and before is not None and coll in self._pre_images:
            image = normalized(before)
        uuid_ = None
        if with_uuid and coll and op not in DATABASE_OPS:
            uuid_ = self._uuid(coll)
        return self.history.append(
            body, image=image, uuid=uuid_, cluster_time=cluster_time, wall_time=wall_time
        )

    def inject(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Append a raw change (any operationType); its token, clusterTime and wallTime are assigned."""
        body = {
            k: copy.deepcopy(v)
            for k, v in raw.items()
            if k not in ("_id", "clusterTime", "wallTime")
        }
        if not isinstance(body.get("operationType"), str):
            raise ValueError("an injected change needs an operationType")
        ns = body.get("ns")
        coll = ns.get("coll") if isinstance(ns, Mapping) else None
        coll_name = None if coll is None else str(coll)
        return dict(self._append(coll_name, body, before=None, with_uuid=False))

    # -- position and history ----------------------------------------------------------------------

    @property
    def last_token(self) -> dict[str, Any] | None:
        """The newest change's resume token (None before the first change)."""
        return self.history.last_token

    @property
    def position(self) -> int:
        """How many changes were recorded."""
        return self.history.position

    def current_token(self) -> dict[str, Any]:
        """A token at the feed's current position (what an idle stream reports)."""
        return self.history.current_token()

    def cluster_time(self) -> Timestamp:
        """The current cluster time: never before the newest change's, never going back."""
        return self.history.cluster_time()

    def forget_before(self, token: Mapping[str, Any] | None = None) -> None:
        """Drop history before `token` (None: everything before the newest change), as an oplog rolls over.

        Resuming after a token older than the horizon raises `HistoryLost`.
        """
        self.history.forget_before(token)

    @property
    def horizon(self) -> int:
        """The newest forgotten position (0: nothing forgotten)."""
        return self.history.horizon

    def entry_at(self, position: int) -> FeedEntry | None:
        """The remembered change at a position, or None."""
        return self.history.entry_at(position)

    # -- reading -----------------------------------------------------------------------------------

    def source(
        self,
        collections: Iterable[str],
        *,
        pre_images: str = "off",
        batch_size: int = 1000,
        max_await: float = 0.05,
    ) -> MemoryChangeSource:
        """A change source over these collections (`pre_images`: off, whenAvailable, required)."""
        return MemoryChangeSource(
            self.history,
            self.documents,
            collections,
            pre_images=pre_images,
            batch_size=batch_size,
            max_await=max_await,
        )


__all__ = [
    "FeedEntry",
    "MemoryChangeFeed",
    "MemoryChangeSource",
    "MemoryChangeStream",
    "make_token",
    "token_position",
]
