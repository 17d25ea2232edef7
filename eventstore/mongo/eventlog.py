"""The event log on MongoDB (PyMongo Async; runs unchanged on mongomock-motor)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any, Final

from bson import Int64
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from eventstore.actor_text import actor_values
from eventstore.codec import LAST_MS, as_utc, ceil_ms, event_doc, event_from_doc
from eventstore.field_match import WHOLE_DOCUMENT_TYPES, path_and_ancestors
from eventstore.keys import listed_key, typed_key
from eventstore.model import (
    COMMIT_SCHEME,
    LIVE_TYPES,
    MAX_DOCUMENT_BYTES,
    STREAM_ENTITY_ID,
    EntityHead,
    EntitySummary,
    Event,
    EventQuery,
    Head,
    StreamStats,
)
from eventstore.mongo import compat
from eventstore.mongo.append_watch import AppendWatcher
from eventstore.mongo.collections import EVENT_PAYLOADS, EVENTS
from eventstore.mongo.log_index import SUMMARY_FIELDS, TAIL_MAX, LogIndex
from eventstore.mongo.payload_parts import (
    PARTS_FIELD,
    join,
    split,
    wanted_parts,
)
from eventstore.ports import LogConflict
from eventstore.tree import Heartbeat

log = logging.getLogger(__name__)

# (keys, options) of every index of `events`; migrations create the same ones.
# The audit query's indexes end in `seq`, so a page by type, field or actor is
# read in seq order after `after_seq` (`changed_fields` is multikey).
INDEXES: Final[tuple[tuple[list[tuple[str, int]], dict[str, Any]], ...]] = (
    ([("seq", ASCENDING)], {"unique": True}),
    ([("stream", ASCENDING), ("entity_id", ASCENDING), ("version", ASCENDING)], {"unique": True}),
    ([("stream", ASCENDING), ("occurred_at", ASCENDING)], {}),
    ([("stream", ASCENDING), ("seq", ASCENDING)], {}),
    ([("occurred_at", ASCENDING)], {}),
    ([("changed_fields", ASCENDING), ("seq", ASCENDING)], {}),
    ([("actor", ASCENDING), ("seq", ASCENDING)], {}),
    ([("type", ASCENDING), ("seq", ASCENDING)], {}),
    ([("stream", ASCENDING), ("entity_key", ASCENDING)], {}),
)
# The server-side bound of one audit query page (maxTimeMS).
QUERY_MAX_TIME_MS: Final = 5000
# Waiting for an append without a change stream: head polls 50 ms apart, doubling to 1 s.
POLL_FIRST: Final = 0.05
POLL_MAX: Final = 1.0
_HEAD_FIELDS: Final = ("stream", "entity_id", "entity_key", "version", "hash", "type", "actor")
# Newest version first: the unique (stream, entity_id, version) index read backwards.
_NEWEST_FIRST: Final = {"stream": -1, "entity_id": -1, "version": -1}
_NEWEST_PER_ENTITY: Final = {
    "$group": {"_id": "$entity_id", **{f: {"$first": f"${f}"} for f in _HEAD_FIELDS}}
}
# The fields of an event a stream's counts read.
_COUNTED_FIELDS: Final = {
    "stream": 1,
    "seq": 1,
    "version": 1,
    "entity_id": 1,
    "occurred_at": 1,
}
_DUPLICATE_KEY: Final = 11000
# What an erasure removes an entity's payload parts by (migrations create it too).
PARTS_INDEX: Final = [("stream", ASCENDING), ("entity_id", ASCENDING), ("seq", ASCENDING)]


def _entity_head(doc: Mapping[str, Any]) -> EntityHead:
    return EntityHead(
        stream=doc["stream"],
        entity_id=doc["entity_id"],
        entity_key=doc["entity_key"],
        version=int(doc["version"]),
        hash=doc["hash"],
        type=doc["type"],
        actor=doc.get("actor"),
    )


def audit_filter(q: EventQuery, *, after_seq: int = 0) -> dict[str, Any]:
    """The `find` filter of an audit query page (every criterion ANDed, `seq > after_seq`)."""
    if q.entity_ids is not None and q.stream is None:
        raise ValueError("an audit query by entity needs the stream")
    found: dict[str, Any] = {}
    if q.stream is not None:
        found["stream"] = q.stream
    if q.entity_ids is not None:
        # `$in` keeps BSON types apart: int 42 is not "42".
        found["entity_id"] = {"$in": list(q.entity_ids)}
    if q.types:
        found["type"] = {"$in": sorted(set(q.types))}
    if q.field is not None:
        # The path itself or a path above it changed whole (keys of the index), one beneath
        # it (an anchored prefix, which the index bounds), or a whole document written over
        # or removed (the type index): each clause has its index, each in seq order.
        found["$or"] = [
            {"changed_fields": {"$in": path_and_ancestors(q.field)}},
            {"changed_fields": {"$regex": f"^{re.escape(q.field)}\\."}},
            {"type": {"$in": sorted(WHOLE_DOCUMENT_TYPES)}},
        ]
    if q.actor is not None:
        # The text and the values it spells (a number, an ObjectId, a boolean): points of
        # the (actor, seq) index. `$in` compares numbers by value: 42 finds 42.0 and NumberLong.
        values = actor_values(q.actor)
        found["actor"] = values[0] if len(values) == 1 else {"$in": list(values)}
    if q.since is not None or q.until is not None:
        # A bound past the last millisecond a date holds (ceil_ms gives PAST_LAST_MS) would
        # be cut to that millisecond by the server: `since` past it matches nothing, and
        # `until` past it bounds nothing.
        window: dict[str, Any] = {}
        if q.since is not None:
            window["$gte"] = ceil_ms(q.since)
        if q.until is not None and (until := ceil_ms(q.until)) <= LAST_MS:
            window["$lt"] = until
        if q.since is not None and window["$gte"] > LAST_MS:
            found["occurred_at"] = {"$in": []}  # after every date there is: none
        elif window:
            found["occurred_at"] = window
    found["seq"] = {"$gt": Int64(max(after_seq, 0))}
    return found


def _entity_summary(doc: Mapping[str, Any]) -> EntitySummary:
    return EntitySummary(
        entity_key=listed_key(doc["entity_id"]),
        entity_id=doc["entity_id"],
        version=int(doc["version"]),
        exists=doc["type"] in LIVE_TYPES,
        last_type=doc["type"],
        last_event_at=as_utc(doc["occurred_at"]),
        last_seq=int(doc["seq"]),
    )


def _check_batch_order(events: Sequence[Event]) -> None:
    """Refuse a batch whose `seq` values are not consecutive (a batch is one run of the log)."""
    for before, after in pairwise(events):
        if after.seq != before.seq + 1:
            raise LogConflict(
                f"batch is not one run of the log: seq {after.seq} follows seq {before.seq}"
            )


def _first_write_error(exc: BulkWriteError) -> Mapping[str, Any]:
    """The (only, the insert being ordered) write error of a bulk write."""
    errors = (exc.details or {}).get("writeErrors") or []
    if not errors:
        raise exc
    first: Mapping[str, Any] = errors[0]
    return first


def _duplicate_index(error: Mapping[str, Any]) -> str:
    """Which unique index a duplicate-key write error names, for messages.

    The server gives `keyPattern`; mongomock-motor puts it in `errmsg` only, and
    nothing at all for a duplicate `_id`.
    """
    pattern = error.get("keyPattern")
    if isinstance(pattern, Mapping):
        return ", ".join(pattern)
    message = str(error.get("errmsg", ""))
    if "version" in message:
        return "stream, entity_id, version"
    if "seq" in message:
        return "seq"
    return "_id"


class MongoEventLog:
    """The `EventLog` port on a MongoDB database (collection `events`)."""

    def __init__(
        self, db: AsyncDatabase[dict[str, Any]], *, query_max_time_ms: int = QUERY_MAX_TIME_MS
    ) -> None:
        if query_max_time_ms < 1:
            raise ValueError("query_max_time_ms must be at least 1")
        self._coll = db[EVENTS]
        self._parts = db[EVENT_PAYLOADS]
        # The largest document the server stores (`hello`'s maxBsonObjectSize, set by
        # the store's `detect`): a larger event is stored with its payload in parts.
        self.max_document_bytes = MAX_DOCUMENT_BYTES
        self._query_max_time_ms = query_max_time_ms
        # The newest seq this instance knows of: a hint that spares a head query
        # per append. A wrong hint costs one query, never a wrong answer.
        self._head_hint: int | None = None
        # One change stream per event log wakes every waiting live tail.
        self.watcher = AppendWatcher(self._coll, self._head_seq)
        # What `streams` and `entities` read instead of grouping the log.
        self.index = LogIndex(db, max_time_ms=query_max_time_ms)

    async def ensure_indexes(self) -> None:
        """Create the unique indexes on `seq` and (stream, entity_id, version), and the rest."""
        for keys, options in INDEXES:
            await self._coll.create_index(keys, **options)
        await self._parts.create_index(PARTS_INDEX)
        await self.index.ensure_indexes()

    async def index_listings(
        self, events: Sequence[Event] | None = None, *, heartbeat: Heartbeat | None = None
    ) -> int:
        """Bring the listings' index up to the log (`log_index`): a stored batch, or all it lacks.

        Called after a batch is stored, outside its transaction; returns the events
        indexed by a catch-up (0 for a batch that follows on).
        """
        if events is None:
            return await self.index.catch_up(self._read_page, heartbeat)
        return await self.index.extend(events, self._read_page, heartbeat)

    async def _read_page(self, after_seq: int, limit: int) -> list[Event]:
        return await self.read(after_seq=after_seq, limit=limit)

    async def append(self, events: Sequence[Event], *, session: Any = None) -> int:
        """Store the new events with one `insert_many`; a conflict keeps the valid prefix and raises."""
        if not events:
            return 0
        _check_batch_order(events)
        if events[0].seq != (self._head_hint or 0) + 1:
            await self._check_continues(events[0].id, events[0].seq, session)
        inserted: list[dict[str, Any]] = []
        pending = await self._stored_docs(events, session)
        while pending:
            try:
                await self._coll.insert_many(pending, ordered=True, **compat.session_kw(session))
            except BulkWriteError as exc:
                # Ordered: the writes before the failing one are stored.
                failed = int(_first_write_error(exc)["index"])
                inserted.extend(pending[:failed])
                pending = await self._after_error(exc, pending[failed:], inserted, session)
            else:
                inserted.extend(pending)
                pending = []
        if inserted:
            self._head_hint = int(inserted[-1]["seq"])
        return len(inserted)

    async def _stored_docs(self, events: Sequence[Event], session: Any) -> list[dict[str, Any]]:
        """The events' documents, after storing the payload parts of those too large for one."""
        docs: list[dict[str, Any]] = []
        parts: list[dict[str, Any]] = []
        options = compat.codec_options(self._coll)
        for event in events:
            doc, its_parts = split(
                event_doc(event), limit=self.max_document_bytes, codec_options=options
            )
            docs.append(doc)
            parts.extend(its_parts)
        if parts:
            # Inserted only where missing: a duplicate would abort a transaction.
            have = await self._parts.find(
                {"_id": {"$in": [p["_id"] for p in parts]}},
                {"_id": 1},
                **compat.session_kw(session),
            ).to_list(None)
            stored = {p["_id"] for p in have}
            new = [p for p in parts if p["_id"] not in stored]
            if new:
                await self._parts.insert_many(new, ordered=True, **compat.session_kw(session))
        return docs

    async def _events(self, docs: list[dict[str, Any]]) -> list[Event]:
        """Stored event documents as events, payloads stored in parts put back (one query)."""
        wanted = wanted_parts(docs)
        if wanted:
            found = await self._parts.find({"_id": {"$in": wanted}}).to_list(None)
            join(
                docs, {p["_id"]: p for p in found}, codec_options=compat.codec_options(self._parts)
            )
        return [event_from_doc(doc) for doc in docs]

    async def _after_error(
        self,
        exc: BulkWriteError,
        rest: list[dict[str, Any]],
        inserted: list[dict[str, Any]],
        session: Any,
    ) -> list[dict[str, Any]]:
        """What is left to insert after a write error whose write was already recorded.

        Anything else raises `LogConflict`. Events are never deleted, not even this
        call's own: the writes before the failing one are a valid continuation of
        the log (the unique indexes admitted each), so the log stays dense and chained.
        """
        error = _first_write_error(exc)
        if getattr(session, "in_transaction", False):
            # The server aborted the transaction: nothing of the batch is stored.
            raise LogConflict(
                f"write error in a transaction ({error.get('code')}); the batch was rolled back"
            ) from exc
        if error.get("code") != _DUPLICATE_KEY:
            self._head_hint = None
            raise exc
        # One query for the whole rest: a re-delivered batch costs three commands, not one per event.
        stored = await self.existing_ids([d["_id"] for d in rest], session=session)
        first = rest[0]
        if first["_id"] not in stored:
            self._head_hint = None
            raise LogConflict(
                f"event {first['_id']} (seq {first['seq']}, {first['stream']}/"
                f"{first['entity_key']} version {first['version']}) collides with a stored "
                f"event on the unique index ({_duplicate_index(error)})"
            ) from exc
        remaining = [d for d in rest if d["_id"] not in stored]
        if remaining:
            # Already-recorded events consume no seq: the next new one must still follow on.
            if inserted:
                expected = int(inserted[-1]["seq"]) + 1
                if int(remaining[0]["seq"]) != expected:
                    self._head_hint = None
                    raise LogConflict(
                        f"event {remaining[0]['_id']} has seq {remaining[0]['seq']} "
                        f"where the log continues at {expected}"
                    )
            else:
                await self._check_continues(remaining[0]["_id"], int(remaining[0]["seq"]), session)
        return remaining

    async def _check_continues(self, event_id: str, seq: int, session: Any) -> None:
        """Refuse a batch whose first new event would leave a hole after the stored head."""
        head = await self._read_head(session)
        if seq > head.seq + 1:
            raise LogConflict(
                f"event {event_id} has seq {seq} where the log continues at {head.seq + 1}"
            )

    async def erase_payloads(
        self, stream: str, entity_id: Any, *, erased_by: int, restamp: int | None = None
    ) -> int:
        """One update_many over the entity's unerased COMMIT_SCHEME events before `erased_by`."""
        result = await self._coll.update_many(
            {
                "stream": stream,
                "entity_id": entity_id,
                "hash_scheme": COMMIT_SCHEME,
                "seq": {"$lt": erased_by},
                "$or": [{"salt": {"$ne": None}}]
                + ([] if restamp is None else [{"erased_by": Int64(restamp)}]),
            },
            {
                "$set": {
                    "document": None,
                    "changes": None,
                    "before": None,
                    "salt": None,
                    "erased_by": Int64(erased_by),
                },
                "$unset": {PARTS_FIELD: ""},
            },
        )
        # After the events: a crash in between leaves parts no event names, and the
        # retry (`restamp`) removes them, whatever the events now say.
        await self._parts.delete_many(
            {
                "stream": stream,
                "entity_id": entity_id,
                "hash_scheme": COMMIT_SCHEME,
                "seq": {"$lt": erased_by},
            }
        )
        return int(result.modified_count)

    async def existing_ids(self, ids: Sequence[str], *, session: Any = None) -> set[str]:
        """Which of these event ids are stored (one query)."""
        if not ids:
            return set()
        cursor = self._coll.find(
            {"_id": {"$in": list(ids)}}, {"_id": 1}, **compat.session_kw(session)
        )
        return {doc["_id"] for doc in await cursor.to_list(None)}

    async def events_by_id(self, ids: Sequence[str]) -> dict[str, Event]:
        """The stored events of these ids, payloads stored in parts put back (two queries at most)."""
        if not ids:
            return {}
        docs = await self._coll.find({"_id": {"$in": list(ids)}}).to_list(None)
        return {event.id: event for event in await self._events(docs)}

    async def entity_heads(self, stream: str, entity_ids: Sequence[Any]) -> dict[str, EntityHead]:
        """The newest event of each entity that has one, keyed by typed key (one aggregate)."""
        if not entity_ids:
            return {}
        pipeline: list[dict[str, Any]] = [
            {"$match": {"stream": stream, "entity_id": {"$in": list(entity_ids)}}},
            {"$sort": _NEWEST_FIRST},
            _NEWEST_PER_ENTITY,
        ]
        docs = await compat.aggregate_list(self._coll, pipeline)
        return {typed_key(doc["entity_id"]): _entity_head(doc) for doc in docs}

    async def live_entities(self, stream: str) -> list[EntityHead]:
        """Entities whose newest event leaves a document, ordered by typed key."""
        pipeline: list[dict[str, Any]] = [
            {"$match": {"stream": stream, "entity_id": {"$ne": STREAM_ENTITY_ID}}},
            {"$sort": _NEWEST_FIRST},
            _NEWEST_PER_ENTITY,
            {"$match": {"type": {"$in": sorted(LIVE_TYPES)}}},
        ]
        docs = await compat.aggregate_list(self._coll, pipeline)
        heads = [_entity_head(doc) for doc in docs]
        return sorted(heads, key=lambda h: typed_key(h.entity_id))

    async def existing_entity_ids(self, stream: str, candidates: Sequence[Any]) -> list[Any]:
        """The candidates that have events in the stream, as stored, in the candidates' order."""
        if not candidates:
            return []
        # `$in` keeps BSON types apart: int 42 is not "42", an ObjectId is not its hex.
        found = await self._coll.distinct(
            "entity_id", {"stream": stream, "entity_id": {"$in": list(candidates)}}
        )
        stored = {typed_key(value): value for value in found}
        ordered: dict[str, Any] = {}
        for candidate in candidates:
            tk = typed_key(candidate)
            if tk in stored:
                ordered.setdefault(tk, stored[tk])
        return list(ordered.values())

    async def read_entity(
        self,
        stream: str,
        entity_id: Any,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """One entity's events in the version range, in version order."""
        if limit is not None and limit <= 0:
            return []  # the driver reads limit 0 as "no limit"
        versions: dict[str, int] = {"$gte": from_version}
        if to_version is not None:
            versions["$lte"] = to_version
        cursor = self._coll.find({"stream": stream, "entity_id": entity_id, "version": versions})
        cursor = cursor.sort("version", ASCENDING)
        if limit is not None:
            cursor = cursor.limit(limit)
        return await self._events(await cursor.to_list(None))

    async def read(self, *, after_seq: int = 0, limit: int = 1000) -> list[Event]:
        """Events after a position, in seq order."""
        if limit <= 0:
            return []
        cursor = self._coll.find({"seq": {"$gt": after_seq}}).sort("seq", ASCENDING).limit(limit)
        return await self._events(await cursor.to_list(None))

    async def head(self) -> Head:
        """The newest event's position (seq 0 when empty)."""
        return await self._read_head(None)

    async def _read_head(self, session: Any) -> Head:
        doc = await self._coll.find_one(
            {}, {"seq": 1, "log_hash": 1}, sort=[("seq", -1)], **compat.session_kw(session)
        )
        head = Head() if doc is None else Head(seq=int(doc["seq"]), log_hash=doc["log_hash"])
        self._head_hint = head.seq
        return head

    async def query(self, q: EventQuery, *, after_seq: int = 0, limit: int = 100) -> list[Event]:
        """One `find` in seq order, bounded by `maxTimeMS` (raises `ExecutionTimeout` past it).

        The planner picks the index: (stream, entity_id, version), (type, seq),
        (changed_fields, seq), (actor, seq), (occurred_at) or (stream, seq). A
        field (its path, the paths above it, those beneath it) or an actor (the
        values its text names) spans several keys of an index, so its matches
        may be sorted in memory: `maxTimeMS` bounds that too.
        """
        if limit <= 0:
            return []  # the driver reads limit 0 as "no limit"
        cursor = (
            self._coll.find(audit_filter(q, after_seq=after_seq))
            .sort("seq", ASCENDING)
            .limit(limit)
            .max_time_ms(self._query_max_time_ms)
        )
        return await self._events(await cursor.to_list(None))

    async def streams(self) -> list[StreamStats]:
        """The index's counts, with the events it lacks (normally none) counted from the log."""
        mark, stats = await self.index.stream_docs()
        cursor = (
            self._coll.find({"seq": {"$gt": Int64(mark)}}, _COUNTED_FIELDS)
            .sort("seq", ASCENDING)
            .limit(TAIL_MAX + 1)
            .max_time_ms(self._query_max_time_ms)
        )
        tail = await cursor.to_list(None)
        if len(tail) > TAIL_MAX:  # an index far behind the log (being built)
            return await self._grouped_streams()
        counts = {
            name: StreamStats(
                stream=name,
                entities=int(doc["entities"]),
                events=int(doc["events"]),
                last_seq=int(doc["last_seq"]),
                last_event_at=as_utc(doc["last_event_at"]),
            )
            for name, doc in stats.items()
        }
        for doc in tail:
            name, seq = doc["stream"], int(doc["seq"])
            known = counts.get(name)
            if known is not None and seq <= known.last_seq:
                continue  # counted already (the watermark lags the stream's counts)
            new = doc["version"] == 1 and doc["entity_id"] is not STREAM_ENTITY_ID
            counts[name] = StreamStats(
                stream=name,
                entities=(known.entities if known else 0) + int(new),
                events=(known.events if known else 0) + 1,
                last_seq=seq,
                last_event_at=as_utc(doc["occurred_at"]),
            )
        return [counts[name] for name in sorted(counts)]

    async def _grouped_streams(self) -> list[StreamStats]:
        """One aggregate over the whole log (newest first along the seq index): O(events).

        An entity is counted by its one version-1 event.
        """
        pipeline: list[dict[str, Any]] = [
            {"$sort": {"seq": -1}},
            {
                "$group": {
                    "_id": "$stream",
                    "events": {"$sum": 1},
                    "entities": {
                        "$sum": {
                            "$cond": [
                                {
                                    "$and": [
                                        {"$eq": ["$version", 1]},
                                        # $literal: "$stream" would name the field.
                                        {"$ne": ["$entity_id", STREAM_ENTITY_ID]},
                                    ]
                                },
                                1,
                                0,
                            ]
                        }
                    },
                    "last_seq": {"$first": "$seq"},
                    "last_event_at": {"$first": "$occurred_at"},
                }
            },
            {"$sort": {"_id": 1}},
        ]
        docs = await compat.aggregate_list(self._coll, pipeline, maxTimeMS=self._query_max_time_ms)
        return [
            StreamStats(
                stream=doc["_id"],
                entities=int(doc["entities"]),
                events=int(doc["events"]),
                last_seq=int(doc["last_seq"]),
                last_event_at=as_utc(doc["last_event_at"]),
            )
            for doc in docs
        ]

    async def entities(
        self, stream: str, *, limit: int, before_seq: int | None = None
    ) -> list[EntitySummary]:
        """A page of the index's heads, with the events it lacks (normally none) from the log.

        Two index ranges and a short read of the log: O(limit), whatever the log's size.
        """
        if limit <= 0:
            return []
        covered = await self.index.covered(stream)
        cursor = (
            self._coll.find(
                {"stream": stream, "seq": {"$gt": Int64(covered)}},
                dict.fromkeys(SUMMARY_FIELDS, 1),
            )
            .sort("seq", ASCENDING)
            .limit(TAIL_MAX + 1)
            .max_time_ms(self._query_max_time_ms)
        )
        tail = await cursor.to_list(None)
        if len(tail) > TAIL_MAX:  # an index far behind the log (being built)
            return await self._grouped_entities(stream, limit=limit, before_seq=before_seq)
        # The entities the index may not have up to date: their newest events are in the tail.
        newest = {
            typed_key(d["entity_id"]): d for d in tail if d["entity_id"] is not STREAM_ENTITY_ID
        }
        # Heads of those entities are older: read as many more as they may displace.
        heads = await self.index.heads_page(
            stream, limit=limit + len(newest), before_seq=before_seq
        )
        page = [d for d in heads if typed_key(d["entity_id"]) not in newest]
        page += [d for d in newest.values() if before_seq is None or int(d["seq"]) < before_seq]
        page.sort(key=lambda d: int(d["seq"]), reverse=True)
        return [_entity_summary(doc) for doc in page[:limit]]

    async def _grouped_entities(
        self, stream: str, *, limit: int, before_seq: int | None
    ) -> list[EntitySummary]:
        """One aggregate: the newest event of each entity, then the page by seq descending.

        It reads every event of the stream (along the (stream, entity_id, version)
        index) for each page: O(events of the stream), while the index is behind.
        """
        pipeline: list[dict[str, Any]] = [
            {"$match": {"stream": stream, "entity_id": {"$ne": STREAM_ENTITY_ID}}},
            {"$sort": _NEWEST_FIRST},
            {
                "$group": {
                    "_id": "$entity_id",
                    **{f: {"$first": f"${f}"} for f in SUMMARY_FIELDS},
                }
            },
        ]
        if before_seq is not None:
            pipeline.append({"$match": {"seq": {"$lt": Int64(before_seq)}}})
        pipeline += [{"$sort": {"seq": -1}}, {"$limit": limit}]
        docs = await compat.aggregate_list(self._coll, pipeline, maxTimeMS=self._query_max_time_ms)
        return [_entity_summary(doc) for doc in docs]

    async def wait_for_append(self, after_seq: int, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait on the log's one shared change stream of `events`, else poll the head.

        Every waiter of this log shares one watcher (`AppendWatcher`), started on
        the first wait and stopped by `close`. Where watching fails for want of
        support (mongomock-motor; a standalone server, error 40573), that is
        remembered and the head is polled 50 ms, 100 ms, ... up to 1 s apart,
        within the timeout.
        """
        if timeout <= 0:
            return (await self.head()).seq > after_seq
        deadline = asyncio.get_running_loop().time() + timeout
        watched = await self.watcher.wait(after_seq, deadline)
        if watched is not None:
            return watched
        return await self._wait_polling(after_seq, deadline)

    async def _head_seq(self) -> int:
        return (await self.head()).seq

    async def close(self) -> None:
        """Stop the shared change stream (the store closes the log with itself)."""
        await self.watcher.close()

    async def _wait_polling(self, after_seq: int, deadline: float) -> bool:
        loop = asyncio.get_running_loop()
        delay = POLL_FIRST
        while True:
            if (await self.head()).seq > after_seq:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, POLL_MAX)
