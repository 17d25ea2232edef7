"""The memory change feed: mongomock-motor collections whose writes are recorded as MongoDB change events.

Tests and the demo write through `MemoryChangeFeed.collection(name)`; every
write appends the change events MongoDB would produce (CHANGE_EVENTS.md), and
`feed.source(...)` reads them back as a `ChangeSource` with resume tokens,
resuming, a history horizon and idle resume tokens, like a change stream on
the source database opened with `showExpandedEvents` (see memory_stream.py).

History is a list of changes, oldest first, with dense positions from 1; the
oldest ones can be forgotten (`forget_before`, `history_limit`), as an oplog
rolls over.
"""

from __future__ import annotations

import asyncio
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
from eventstore.sources.feed_collection import FeedCollection, normalized
from eventstore.sources.memory_stream import (
    DATABASE_OPS,
    IMAGE_OPS,
    FeedEntry,
    MemoryChangeSource,
    MemoryChangeStream,
    make_token,
    token_position,
)


class _Txn:
    """Writes of an open transaction: their changes wait for the commit; `undo` rolls back."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
        self.undo: list[tuple[str, str, Any, dict[str, Any] | None]] = []


class MemoryChangeFeed:
    """An in-process change feed over mongomock-motor collections of one database."""

    def __init__(
        self,
        client: Any = None,
        *,
        db_name: str = "shop",
        clock: Clock | None = None,
        history_limit: int | None = None,
    ) -> None:
        if client is None:
            from mongomock_motor import AsyncMongoMockClient  # only the memory feed uses it

            client = AsyncMongoMockClient(tz_aware=True)
        if history_limit is not None and history_limit < 1:
            raise ValueError("history_limit must be at least 1")
        self.client: Any = client
        self.db_name = db_name
        self.clock: Clock = clock or SystemClock()
        # History: entries[i].position == lost_through + 1 + i (dense, oldest first).
        self._entries: list[FeedEntry] = []
        self._position = 0
        self._lost_through = 0
        self._lost_time: Timestamp | None = None
        self._history_limit = history_limit
        self._last_time = Timestamp(0, 0)
        self._last_token: dict[str, Any] | None = None
        self._invalidates: set[int] = set()
        self._pre_images: set[str] = set()
        self._uuids: dict[str, Binary] = {}
        self._changed = asyncio.Event()
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
        return FeedCollection(self, name)

    def enable_pre_images(self, name: str, enabled: bool = True) -> None:
        """Keep pre-images of the collection's later writes (`changeStreamPreAndPostImages`)."""
        if enabled:
            self._pre_images.add(name)
        else:
            self._pre_images.discard(name)

    async def collection_names(self) -> list[str]:
        """The database's collections, sorted."""
        return sorted(await self.client[self.db_name].list_collection_names())

    async def drop_collection(self, name: str) -> bool:
        """Drop a collection: a `drop` event. False (and no event) when it does not exist."""
        self._check_ddl()
        if name not in await self.collection_names():
            return False
        await self.client[self.db_name].drop_collection(name)
        self._emit(name, {"operationType": "drop", "ns": self._ns(name)}, before=None)
        self._forget_collection(name)
        return True

    async def rename_collection(self, old: str, new: str, *, drop_target: bool = False) -> None:
        """Rename a collection: a `rename` event with `to` (and `operationDescription`)."""
        self._check_ddl()
        names = await self.collection_names()
        if old not in names:
            raise SourceError(f"cannot rename {self.db_name}.{old}: no such collection")
        if new in names and not drop_target:
            raise SourceError(
                f"cannot rename to {self.db_name}.{new}: it exists (drop_target=False)"
            )
        description: dict[str, Any] = {"to": self._ns(new)}
        if new in names:
            description["dropTarget"] = self._uuid(new)
        await self.client[self.db_name][old].rename(new, dropTarget=drop_target)
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
        names = await self.collection_names()
        await self.client.drop_database(self.db_name)
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
        when, wall = self._tick(), utc_ms(self.clock.now())  # one commit: one time for all
        extra = {"lsid": copy.deepcopy(self._lsid), "txnNumber": Int64(self._txn_number)}
        for coll, body, before in txn.changes:
            self._append(coll, {**body, **extra}, before=before, cluster_time=when, wall_time=wall)

    async def _roll_back(self, txn: _Txn) -> None:
        for op, coll, doc_id, before in reversed(txn.undo):
            col = self.client[self.db_name][coll]
            if op == "insert":
                await col.delete_one({"_id": doc_id})
            elif op == "delete" and before is not None:
                await col.insert_one(before)
            elif before is not None:
                await col.replace_one({"_id": doc_id}, before)

    def _check_ddl(self) -> None:
        if self._txn.get() is not None:
            raise RuntimeError("collection and database commands are not allowed in a transaction")

    # -- recording ---------------------------------------------------------------------------------

    def _emit(
        self, coll: str | None, body: dict[str, Any], *, before: dict[str, Any] | None
    ) -> None:
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
        before: dict[str, Any] | None,
        cluster_time: Timestamp | None = None,
        wall_time: datetime | None = None,
        with_uuid: bool = True,
    ) -> dict[str, Any]:
        position = self._position + 1
        when = cluster_time or self._tick()
        token = make_token(when, position)
        event: dict[str, Any] = {
            "_id": token,
            "operationType": body["operationType"],
            "clusterTime": when,
            "wallTime": wall_time or utc_ms(self.clock.now()),
        }
        if with_uuid and coll and body["operationType"] not in DATABASE_OPS:
            event["collectionUUID"] = self._uuid(coll)
        event.update((k, v) for k, v in body.items() if k != "operationType")
        op = event["operationType"]
        image = None
        if op in IMAGE_OPS and before is not None and coll in self._pre_images:
            image = normalized(before)
        self._entries.append(FeedEntry(position, event, image))
        self._position = position
        self._last_token = token
        if op == "invalidate":
            self._invalidates.add(position)
        if self._history_limit is not None and len(self._entries) > self._history_limit:
            self._drop_oldest(len(self._entries) - self._history_limit)
        self._changed.set()  # wake waiting streams; the next waiters get a fresh event
        self._changed = asyncio.Event()
        return token

    def _tick(self) -> Timestamp:
        """The next clusterTime: strictly increasing, seconds from the clock."""
        seconds = int(self.clock.now().timestamp())
        if seconds > self._last_time.time:
            self._last_time = Timestamp(seconds, 1)
        else:
            self._last_time = Timestamp(self._last_time.time, self._last_time.inc + 1)
        return self._last_time

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
        return dict(self._last_token) if self._last_token else None

    @property
    def position(self) -> int:
        """How many changes were recorded."""
        return self._position

    def current_token(self) -> dict[str, Any]:
        """A token at the feed's current position (what an idle stream reports)."""
        return self.last_token or make_token(Timestamp(0, 0), 0)

    def cluster_time(self) -> Timestamp:
        """The current cluster time: never before the newest change's, never going back."""
        now = Timestamp(int(self.clock.now().timestamp()), 0)
        if now > self._last_time:
            self._last_time = now
        return self._last_time

    def forget_before(self, token: Mapping[str, Any] | None = None) -> None:
        """Drop history before `token` (None: everything before the newest change), as an oplog rolls over.

        Resuming after a token older than the horizon raises `HistoryLost`.
        """
        keep = self._position if token is None else min(token_position(token), self._position)
        count = keep - (self._lost_through + 1)
        if count > 0:
            self._drop_oldest(count)

    def _drop_oldest(self, count: int) -> None:
        self._lost_time = self._entries[count - 1].event.get("clusterTime")
        self._lost_through = self._entries[count - 1].position
        del self._entries[:count]
        self._invalidates = {p for p in self._invalidates if p > self._lost_through}

    # -- what streams read -----------------------------------------------------------------------

    @property
    def horizon(self) -> int:
        """The newest forgotten position (0: nothing forgotten)."""
        return self._lost_through

    @property
    def horizon_time(self) -> Timestamp | None:
        """The clusterTime of the newest forgotten change (None: nothing forgotten)."""
        return self._lost_time

    @property
    def latest_time(self) -> Timestamp:
        """The newest cluster time handed out."""
        return self._last_time

    @property
    def changed(self) -> asyncio.Event:
        """Set at the next recorded change."""
        return self._changed

    def entry_at(self, position: int) -> FeedEntry | None:
        """The remembered change at a position, or None."""
        index = position - self._lost_through - 1
        return self._entries[index] if 0 <= index < len(self._entries) else None

    def is_invalidate(self, position: int) -> bool:
        """True when the change at the position is a remembered `invalidate`."""
        return position in self._invalidates

    def first_at_or_after(self, at: Timestamp) -> int:
        """The position of the first remembered change at or after `at` (position + 1 if none)."""
        for entry in self._entries:
            if entry.event["clusterTime"] >= at:
                return entry.position
        return self._position + 1

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
            self, collections, pre_images=pre_images, batch_size=batch_size, max_await=max_await
        )


__all__ = [
    "MemoryChangeFeed",
    "MemoryChangeSource",
    "MemoryChangeStream",
    "make_token",
    "token_position",
]
