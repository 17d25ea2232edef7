"""The listings' index of the log on MongoDB: each entity's newest event, each stream's counts.

`streams()` and `entities()` read it instead of grouping the whole log on every call
(which costs O(events) a page, and overruns `maxTimeMS` on a large log).

- `entity_heads`: one document per entity, `_id: {s: stream, k: typed key}` (int 42 and
  "42" are two entities, as everywhere in the log), holding the `stream`,
  `entity_id`, `entity_key`, `version`, `type`, `occurred_at` and `seq` of its newest event
  indexed. Index (stream, seq): a page of a stream's entities is one index range.
- `stream_stats`: `_id: stream`, `{events, entities, last_seq, last_event_at}`: exactly the
  counts of the stream's events up to its `last_seq`; the document `_id: -1` holds `seq`
  and `hash`, the writer's watermark: every event up to it is indexed, and the hash of the
  event at it.

It is a cache of the log, written by the capturing instance after each stored batch and
outside the batch's transaction (`extend`), and caught up from the log's events in pages
on start (`catch_up`). Never ahead of the log (written only for stored events; an index
whose watermark event the log no longer holds, as after a restore, is emptied and built
again by `catch_up`); possibly behind it (a failed write, a crash between writes, a log older than the index). Readers
add what it lacks from the log itself, the stream's events after its `last_seq` (normally
none), so every answer is the log's; when that tail is long (an index far behind), they
group the log as before.

Invariants (the writes' order): an event's head is written before its stream's stats count
it, and the watermark moves only after both; so a stream's heads cover its events up to
its `last_seq`. Every write is guarded by seq: writing a range again changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from bson import Int64
from pymongo import DESCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from eventstore.keys import typed_key
from eventstore.model import STREAM_ENTITY_ID, Event
from eventstore.mongo.collections import ENTITY_HEADS, EVENTS, STREAM_STATS
from eventstore.tree import Heartbeat

log = logging.getLogger(__name__)

WATERMARK_ID: Final = -1
DUPLICATE_KEY: Final = 11000
# (keys, options) of the index of `entity_heads`; migration m0013 creates the same one.
HEADS_INDEX: Final[list[tuple[str, int]]] = [("stream", 1), ("seq", DESCENDING)]
# Events read back from the log per page while catching up, and pages per call (100,000
# events: a few seconds of capture's time; each batch after it catches up as much again).
PAGE: Final = 5000
CATCH_UP_PAGES: Final = 20
# A reader adds at most this many events the index lacks; beyond, it groups the log.
TAIL_MAX: Final = 10_000
# The fields of a listed entity, as the log's event documents name them.
SUMMARY_FIELDS: Final = ("entity_id", "entity_key", "version", "type", "occurred_at", "seq")


class IndexConflict(Exception):
    """Another writer moved a stream's counts meanwhile: this one reloads and tries again later."""


def head_id(stream: str, entity_id: Any) -> dict[str, str]:
    """The `_id` of an entity's head document."""
    return {"s": stream, "k": typed_key(entity_id)}


class LogIndex:
    """Reads and writes `entity_heads` and `stream_stats`."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], *, max_time_ms: int) -> None:
        self._events = db[EVENTS]
        self._heads = db[ENTITY_HEADS]
        self._stats = db[STREAM_STATS]
        self._max_time_ms = max_time_ms
        # The watermark as this instance last wrote or read it (None: read it first).
        self._watermark: int | None = None
        # Each stream's `last_seq` as this instance last wrote or read it (0: no counts yet),
        # so that a batch of known streams reads nothing; forgotten with the watermark.
        self._counted: dict[str, int] = {}

    async def ensure_indexes(self) -> None:
        await self._heads.create_index(HEADS_INDEX)

    # -- writing -------------------------------------------------------------------------
    async def watermark(self) -> int:
        """The seq every event up to which is indexed (0: none)."""
        return (await self._marked())[0]

    async def _marked(self) -> tuple[int, str | None]:
        doc = await self._stats.find_one({"_id": WATERMARK_ID})
        return (int(doc["seq"]), doc.get("hash")) if doc is not None else (0, None)

    async def extend(
        self, events: Sequence[Event], read: Reader, heartbeat: Heartbeat | None = None
    ) -> int:
        """Index a stored batch (in seq order), or catch up from the log if it skips ahead.

        Returns the events a catch-up indexed (0 for the batch alone).
        """
        if self._watermark is None:
            self._watermark = await self.watermark()
        mark = self._watermark
        if not events or events[-1].seq <= mark:
            return 0
        if events[0].seq <= mark:
            events = [e for e in events if e.seq > mark]
        if events[0].seq != mark + 1:
            return await self.catch_up(read, heartbeat)
        await self._add(events)
        return 0

    async def catch_up(self, read: Reader, heartbeat: Heartbeat | None = None) -> int:
        """Index the stored events the index lacks, a page at a time, at most `CATCH_UP_PAGES`
        pages (capture waits meanwhile: a long log is indexed over several calls, the next
        batch's `extend` going on); returns how many it indexed."""
        mark, marked_hash = await self._marked()
        if mark > 0:
            at = await read(mark - 1, 1)
            if not at or at[0].seq != mark or at[0].hash != marked_hash:
                # The log lost events the index counts (restored from a backup, rolled back)
                # and may have gone on with others: nothing of the index can be trusted.
                log.error(
                    "the listings' index covers the log up to seq %d, which the log no longer"
                    " holds as it was: emptying the index and building it again from the log",
                    mark,
                )
                await self._heads.delete_many({})
                await self._stats.delete_many({})
                self._counted.clear()
                mark = 0
        self._watermark = mark
        added = 0
        for _ in range(CATCH_UP_PAGES):
            page = await read(mark, PAGE)
            if not page:
                break
            await self._add(page)
            added += len(page)
            mark = page[-1].seq
            if heartbeat is not None:
                await heartbeat()
        return added

    async def _add(self, events: Sequence[Event]) -> None:
        """Heads, then each stream's counts, then the watermark (the module's invariants)."""
        last = events[-1].seq
        try:
            await self._write_heads(events)
            await self._count(events)
            await self._advance(last, events[-1].hash)
        except BaseException:
            self._watermark = None  # unknown now: read it again next time
            self._counted.clear()
            raise
        self._watermark = last

    async def _advance(self, seq: int, event_hash: str) -> None:
        """Move the watermark to `seq`, the event whose hash is `event_hash` (never back)."""
        with contextlib.suppress(DuplicateKeyError):  # at `seq` or beyond already
            await self._stats.update_one(
                {"_id": WATERMARK_ID, "seq": {"$lt": Int64(seq)}},
                {"$set": {"seq": Int64(seq), "hash": event_hash}},
                upsert=True,
            )

    async def _write_heads(self, events: Sequence[Event]) -> None:
        newest: dict[tuple[str, str], Event] = {}
        for e in events:
            if e.entity_id is not STREAM_ENTITY_ID:  # not the stream's own record
                newest[(e.stream, typed_key(e.entity_id))] = e  # in seq order: the last wins
        if not newest:
            return
        writes = [
            # An existing head at this seq or later does not match: the upsert then collides
            # on `_id` (a duplicate key), which leaves the newer head as it is.
            UpdateOne(
                {"_id": head_id(stream, e.entity_id), "seq": {"$lt": Int64(e.seq)}},
                {
                    "$set": {
                        "stream": stream,
                        "entity_id": e.entity_id,
                        "entity_key": e.entity_key,
                        "version": Int64(e.version),
                        "type": e.type,
                        "occurred_at": e.occurred_at,
                        "seq": Int64(e.seq),
                    }
                },
                upsert=True,
            )
            for (stream, _), e in newest.items()
        ]
        try:
            await self._heads.bulk_write(writes, ordered=False)
        except BulkWriteError as exc:
            errors = (exc.details or {}).get("writeErrors") or []
            if not errors or any(err.get("code") != DUPLICATE_KEY for err in errors):
                raise

    async def _count(self, events: Sequence[Event]) -> None:
        by_stream: dict[str, list[Event]] = {}
        for e in events:
            by_stream.setdefault(e.stream, []).append(e)
        counted = self._counted
        if unknown := sorted(s for s in by_stream if s not in counted):
            counted.update(dict.fromkeys(unknown, 0))
            cursor = self._stats.find({"_id": {"$in": unknown}})
            for doc in await cursor.to_list(None):
                counted[doc["_id"]] = int(doc["last_seq"])
        for stream, found in by_stream.items():
            last = counted[stream]
            new = [e for e in found if e.seq > last]  # counted already up to `last`
            if not new:
                continue
            entities = sum(1 for e in new if e.version == 1 and e.entity_id is not STREAM_ENTITY_ID)
            newest = new[-1]
            moved = {"last_seq": Int64(newest.seq), "last_event_at": newest.occurred_at}
            if last == 0:  # no counts stored (seq starts at 1)
                try:
                    await self._stats.insert_one(
                        {"_id": stream, "events": len(new), "entities": entities, **moved}
                    )
                except DuplicateKeyError as exc:
                    raise IndexConflict(f"stream {stream!r} was counted meanwhile") from exc
            else:
                result = await self._stats.update_one(
                    {"_id": stream, "last_seq": Int64(last)},
                    {"$inc": {"events": len(new), "entities": entities}, "$set": moved},
                )
                if result.matched_count != 1:
                    raise IndexConflict(f"stream {stream!r} was counted meanwhile")
            counted[stream] = newest.seq

    # -- reading -------------------------------------------------------------------------
    async def stream_docs(self) -> tuple[int, dict[str, Mapping[str, Any]]]:
        """(the watermark, each indexed stream's counts by name)."""
        mark, stats = 0, dict[str, Mapping[str, Any]]()
        for doc in await self._stats.find({}).max_time_ms(self._max_time_ms).to_list(None):
            if doc["_id"] == WATERMARK_ID:
                mark = int(doc["seq"])
            elif isinstance(doc["_id"], str):
                stats[doc["_id"]] = doc
        return mark, stats

    async def covered(self, stream: str) -> int:
        """The seq up to which the index covers the stream's events."""
        mark, last = 0, 0
        cursor = self._stats.find({"_id": {"$in": [WATERMARK_ID, stream]}})
        for doc in await cursor.max_time_ms(self._max_time_ms).to_list(None):
            if doc["_id"] == WATERMARK_ID:
                mark = int(doc["seq"])
            else:
                last = int(doc["last_seq"])
        # A stream's events between its last counted one and the watermark do not exist.
        return max(mark, last)

    async def heads_page(
        self, stream: str, *, limit: int, before_seq: int | None
    ) -> list[dict[str, Any]]:
        """The stream's heads by seq descending, below `before_seq`."""
        found: dict[str, Any] = {"stream": stream}
        if before_seq is not None:
            found["seq"] = {"$lt": Int64(before_seq)}
        cursor = (
            self._heads.find(found, {f: 1 for f in SUMMARY_FIELDS})
            .sort("seq", DESCENDING)
            .limit(limit)
            .max_time_ms(self._max_time_ms)
        )
        docs: list[dict[str, Any]] = await cursor.to_list(None)
        return docs


Reader = Callable[[int, int], Awaitable[list[Event]]]
"""Reads the log: (after_seq, limit) -> events in seq order."""

__all__ = [
    "CATCH_UP_PAGES",
    "HEADS_INDEX",
    "PAGE",
    "TAIL_MAX",
    "IndexConflict",
    "LogIndex",
    "Reader",
    "head_id",
]
