"""The mongo adapter's listings' index (eventstore/mongo/log_index.py) never changes an answer.

Over generated logs appended in batches, with the index written after each batch, not
at all, or interrupted between its writes (after the heads, after a stream's counts,
before the watermark), and caught up or not, `streams()` and every page of `entities()`
equal the memory log's (which keeps its listings in `append`). Caught up, the index alone
(no event read) holds those answers, and a listing reads no event at all.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

import pytest
from bson import ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st
from mongomock_motor import AsyncMongoMockClient
from pymongo.errors import BulkWriteError

from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.model import DELETED, DROPPED, GAP, REPLACED, UPDATED, EntitySummary, StreamStats
from eventstore.mongo import compat, log_index
from eventstore.mongo import eventlog as mongo_eventlog
from eventstore.mongo.collections import ENTITY_HEADS
from eventstore.mongo.eventlog import MongoEventLog
from eventstore.mongo.log_index import IndexConflict, LogIndex
from eventstore.mongo.store import MongoStore
from eventstore.ports import EventLog
from eventstore.sources.memory import MemoryChangeFeed
from tests.helpers import LogBuilder
from tests.integration.ingest_helpers import ingester, start_from_the_beginning

OID = ObjectId("65f000000000000000000001")
# int 1 and "1" are two entities; None is a stream-level event (the `$stream` pseudo-entity)
ENTITIES: list[Any] = [1, "1", 2, OID, "x", None]
STREAMS = ["orders", "customers"]
TYPES = [None, None, UPDATED, DELETED, REPLACED]
# What happens to the index after a batch is stored.
FATES = ["index", "index", "index", "skip", "after_heads", "mid_counts", "after_counts", "catch_up"]


def mock_client() -> Any:
    """mongomock-motor standing in for PyMongo's async client (TEST_DOUBLES.md)."""
    return AsyncMongoMockClient()


class Interrupted(Exception):
    """A write of the index that did not happen (the process died there)."""


async def mongo_log() -> MongoEventLog:
    store = MongoStore(mock_client(), "eventstore_test", owns_client=True)
    await store.events.ensure_indexes()
    assert isinstance(store.events, MongoEventLog)
    return store.events


class DiesAtWrite:
    """A collection whose `n`th write (an update or an insert) never happens: the process died."""

    def __init__(self, real: Any, n: int) -> None:
        self._real, self._left = real, n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def _write(self) -> None:
        self._left -= 1
        if self._left == 0:
            raise Interrupted("a write of the counts")

    async def update_one(self, *args: Any, **kwargs: Any) -> Any:
        self._write()
        return await self._real.update_one(*args, **kwargs)

    async def insert_one(self, *args: Any, **kwargs: Any) -> Any:
        self._write()
        return await self._real.insert_one(*args, **kwargs)


async def interrupted(log: MongoEventLog, batch: list[Any], where: str) -> None:
    """Index `batch`, dying before the stream counts, after the first stream's (before the
    second's, or the watermark), or before the watermark."""
    index = log.index

    async def die(*_: Any) -> None:
        raise Interrupted(where)

    with pytest.MonkeyPatch.context() as patch:
        if where == "mid_counts":
            patch.setattr(index, "_stats", DiesAtWrite(index._stats, 2))
        else:
            patch.setattr(index, "_count" if where == "after_heads" else "_advance", die)
        with pytest.raises(Interrupted):
            await log.index_listings(batch)


async def listing(events: EventLog, stream: str, page: int) -> list[EntitySummary]:
    """Every entity of the stream, read in pages of `page`."""
    found: list[EntitySummary] = []
    before = None
    while True:
        batch = await events.entities(stream, limit=page, before_seq=before)
        assert len(batch) <= page
        if not batch:
            return found
        found += batch
        before = batch[-1].last_seq


async def same_answers(mongo: EventLog, memory: EventLog, page: int) -> None:
    assert await mongo.streams() == await memory.streams()
    for stream in [*STREAMS, "nowhere"]:
        assert await listing(mongo, stream, page) == await listing(memory, stream, 1000)


batches = st.lists(
    st.tuples(
        st.lists(
            st.tuples(st.sampled_from(ENTITIES), st.sampled_from(STREAMS), st.sampled_from(TYPES)),
            min_size=1,
            max_size=6,
        ),
        st.sampled_from(FATES),
    ),
    min_size=1,
    max_size=8,
)


@settings(deadline=None, max_examples=60)
@given(batches=batches, page=st.sampled_from([1, 2, 5]))
def test_the_listings_are_the_logs_whatever_state_the_index_is_in(
    batches: list[tuple[list[tuple[Any, str, str | None]], str]], page: int
) -> None:
    async def go() -> None:
        mongo, memory, log = await mongo_log(), MemoryStore().events, LogBuilder()
        for changes, fate in batches:
            batch = [
                log.next(entity, GAP if entity is None else kind, stream=stream)
                for entity, stream, kind in changes
            ]
            assert await mongo.append(batch) == await memory.append(batch) == len(batch)
            if fate == "index":
                await mongo.index_listings(batch)
            elif fate == "catch_up":
                await mongo.index_listings(None)
            elif fate != "skip":
                await interrupted(mongo, batch, fate)
            await same_answers(mongo, memory, page)
        # Caught up, the index alone holds the answers.
        await mongo.index_listings(None)
        assert await mongo.index.watermark() == log.head.seq
        await same_answers(mongo, memory, page)
        mark, stats = await mongo.index.stream_docs()
        assert mark == log.head.seq
        assert sorted(stats) == [s.stream for s in await memory.streams()]
        for s in await memory.streams():
            doc = stats[s.stream]
            assert (doc["events"], doc["entities"], doc["last_seq"]) == (
                s.events,
                s.entities,
                s.last_seq,
            )
        for stream in STREAMS:
            heads = await mongo.index.heads_page(stream, limit=1000, before_seq=None)
            expected = await listing(memory, stream, 1000)
            assert [(h["entity_id"], h["version"], h["seq"]) for h in heads] == [
                (e.entity_id, e.version, e.last_seq) for e in expected
            ]

    asyncio.run(go())


async def test_a_caught_up_listing_reads_no_event_and_groups_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two short index ranges, whatever the log's size: never the old group of the log."""
    mongo, log = await mongo_log(), LogBuilder()
    for n in range(300):
        await mongo.append([log.next(n % 120, stream="orders"), log.next("c", stream="customers")])
    await mongo.index_listings(None)

    async def no_aggregate(*_: Any, **__: Any) -> list[dict[str, Any]]:
        raise AssertionError("a listing grouped the log")

    monkeypatch.setattr(compat, "aggregate_list", no_aggregate)
    read: list[dict[str, Any]] = []
    find = mongo._coll.find

    def counted(*args: Any, **kwargs: Any) -> Any:
        read.append(args[0])
        return find(*args, **kwargs)

    monkeypatch.setattr(mongo._coll, "find", counted)
    page = await mongo.entities("orders", limit=10)
    assert [e.entity_id for e in page] == list(range(59, 49, -1))
    assert [s.events for s in await mongo.streams()] == [300, 300]
    # one look past the index for each (an empty tail), nothing else
    assert len(read) == 2


async def test_a_log_far_ahead_of_its_index_is_grouped_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A log written before the index (or while it failed for long): exact, the old way."""
    mongo, memory, log = await mongo_log(), MemoryStore().events, LogBuilder()
    monkeypatch.setattr(mongo_eventlog, "TAIL_MAX", 5)
    for n in range(30):
        batch = [log.next(n % 7, stream="orders"), log.next(n % 3, stream="customers")]
        await mongo.append(batch)
        await memory.append(batch)
        if n == 10:
            await mongo.index_listings(batch)  # skips ahead of an empty index: catches up
    grouped: list[int] = []
    aggregate = compat.aggregate_list

    async def counted(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        grouped.append(1)
        docs: list[dict[str, Any]] = await aggregate(*args, **kwargs)
        return docs

    monkeypatch.setattr(compat, "aggregate_list", counted)
    await same_answers(mongo, memory, 2)
    assert grouped  # 19 batches (38 events) behind: more than TAIL_MAX
    grouped.clear()
    assert await mongo.index_listings(None) == 38
    await same_answers(mongo, memory, 2)
    assert not grouped


async def test_indexing_a_batch_twice_or_out_of_order_changes_nothing() -> None:
    mongo, memory, log = await mongo_log(), MemoryStore().events, LogBuilder()
    first = [log.next(1), log.next(2), log.next(1, stream="customers")]
    second = [log.next(2, DELETED), log.next(3)]
    for batch in (first, second):
        await mongo.append(batch)
        await memory.append(batch)
    assert await mongo.index_listings(second) == 5  # skips ahead: the log is read instead
    assert await mongo.index_listings(first) == 0  # behind the watermark: nothing to do
    assert await mongo.index_listings(second) == 0
    third = [log.next(4), log.next(5)]
    await mongo.append(third)
    await memory.append(third)
    # one event at the watermark, one past it: the batch follows on, no catch-up
    assert await mongo.index_listings([second[-1], *third]) == 0
    assert await mongo.index.watermark() == 7
    # a second writer's index object, starting from what is stored
    again = LogIndex(mongo._coll.database, max_time_ms=1000)
    assert await again.catch_up(mongo._read_page) == 0
    await same_answers(mongo, memory, 1)
    heads = await mongo._coll.database[ENTITY_HEADS].count_documents({})
    assert heads == 6  # orders 1, 2, 3, 4, 5 and customers 1


def test_the_stream_level_events_count_but_are_never_listed() -> None:
    async def go() -> None:
        mongo, memory, log = await mongo_log(), MemoryStore().events, LogBuilder()
        batch = [log.next(1), log.next(None, GAP), log.next(None, DROPPED)]
        await mongo.append(batch)
        await memory.append(batch)
        await mongo.index_listings(batch)
        assert await mongo.streams() == [
            StreamStats(
                stream="orders",
                entities=1,
                events=3,
                last_seq=3,
                last_event_at=batch[-1].occurred_at,
            )
        ]
        await same_answers(mongo, memory, 1)

    asyncio.run(go())


async def test_capture_indexes_each_batch_and_goes_on_when_the_index_fails(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    store = MongoStore(mock_client(), "eventstore_test", owns_client=True)
    await store.events.ensure_indexes()
    assert isinstance(store.events, MongoEventLog)
    events = store.events
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    orders = feed.collection("orders")
    for n in range(5):
        await orders.insert_one({"_id": n, "status": "new"})
    await ingester(store, feed, clock).run(until_idle=True)
    assert await events.index.watermark() == 5

    failing = events.index_listings

    async def broken(*_: Any, **__: Any) -> int:
        raise OSError("no route to host")

    monkeypatch.setattr(events, "index_listings", broken)
    for n in range(5, 8):
        await orders.insert_one({"_id": n, "status": "new"})
    with caplog.at_level(logging.INFO, logger="eventstore.ingester"):
        await ingester(store, feed, clock).run(until_idle=True)
        assert (await events.head()).seq == 8  # captured all the same
        assert await events.index.watermark() == 5
        listed = await events.entities("orders", limit=3)
        assert [e.entity_id for e in listed] == [7, 6, 5]  # the log's answer meanwhile
        monkeypatch.setattr(events, "index_listings", failing)
        await orders.update_one({"_id": 1}, {"$set": {"status": "paid"}})
        await ingester(store, feed, clock).run(until_idle=True)
    assert await events.index.watermark() == 9
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "the listings' index could not be written (OSError: no route to host); the stream"
        " and entity listings read the log meanwhile, and the next batch tries again"
    ]
    messages = [r.getMessage() for r in caplog.records]
    assert "the listings' index: 3 events indexed from the log" in messages
    listed = await events.entities("orders", limit=3)
    assert [e.entity_id for e in listed] == [1, 7, 6]


async def test_heads_an_unindexed_change_made_stale_do_not_hide_others() -> None:
    """A page reads as many more heads as the log's newer changes may make stale."""
    mongo, memory, log = await mongo_log(), MemoryStore().events, LogBuilder()
    indexed = [log.next("f"), log.next("e"), log.next("g")]
    later = [log.next("e"), log.next("g")]  # e and g changed since the index was written
    for batch in (indexed, later):
        await mongo.append(batch)
        await memory.append(batch)
    await mongo.index_listings(indexed)
    assert [e.entity_id for e in await listing(mongo, "orders", 1)] == ["g", "e", "f"]
    await same_answers(mongo, memory, 1)


async def test_a_long_log_is_indexed_a_bounded_number_of_pages_at_a_time(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Capture waits for at most CATCH_UP_PAGES pages; the batches after it go on with it."""
    monkeypatch.setattr(log_index, "PAGE", 3)
    monkeypatch.setattr(log_index, "CATCH_UP_PAGES", 2)
    mongo, memory, log = await mongo_log(), MemoryStore().events, LogBuilder()
    old = [log.next(n % 4) for n in range(20)]  # stored before the index existed
    await mongo.append(old)
    await memory.append(old)
    beats: list[int] = []

    async def heartbeat() -> None:
        beats.append(1)

    with caplog.at_level(logging.ERROR, logger="eventstore.mongo.log_index"):
        assert await mongo.index_listings(None, heartbeat=heartbeat) == 6
    assert caplog.records == []  # an index that is behind is no index to distrust
    assert await mongo.index.watermark() == 6 and len(beats) == 2
    indexed = []
    for _ in range(4):
        batch = [log.next("new")]
        await mongo.append(batch)
        await memory.append(batch)
        indexed.append(await mongo.index_listings(batch, heartbeat=heartbeat))
        await same_answers(mongo, memory, 2)
    # each batch finds the gap and indexes two pages of it; the last one follows on
    assert indexed == [6, 6, 5, 0]
    assert await mongo.index.watermark() == 24
    assert len(beats) == 8  # a page each, the lease kept while capture waits


@pytest.mark.parametrize("then", ["nothing", "other events"])
async def test_an_index_the_log_no_longer_matches_is_built_again(
    then: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A log restored from a backup (or rolled back) lost events the index counted; it may
    have gone on with others, at the same seqs. The index must not keep the lost ones."""
    mongo, memory, log = await mongo_log(), MemoryStore().events, LogBuilder()
    common = [log.next(n) for n in range(5)]
    branch = copy.deepcopy(log)
    lost = [log.next("lost"), log.next(1, DELETED), log.next("lost", stream="customers")]
    await mongo.append(common + lost)
    await mongo.index_listings(common + lost)
    await memory.append(common)
    await mongo._coll.delete_many({"seq": {"$gt": 5}})  # the restore
    if then == "other events":
        other = [branch.next("other"), branch.next(2), branch.next(3), branch.next("x")]
        await mongo.append(other)
        await memory.append(other)
    with caplog.at_level(logging.ERROR, logger="eventstore.mongo.log_index"):
        await mongo.index_listings(None)
    assert [r.getMessage() for r in caplog.records] == [
        "the listings' index covers the log up to seq 8, which the log no longer holds as it"
        " was: emptying the index and building it again from the log"
    ]
    await same_answers(mongo, memory, 2)
    mark, stats = await mongo.index.stream_docs()
    assert mark == (await memory.head()).seq and "customers" not in stats


async def test_an_index_of_one_event_the_log_no_longer_holds_is_built_again() -> None:
    mongo, memory, log = await mongo_log(), MemoryStore().events, LogBuilder()
    branch = copy.deepcopy(log)
    lost = [log.next("lost")]
    await mongo.append(lost)
    await mongo.index_listings(lost)
    await mongo._coll.delete_many({})  # the restore: an empty log, then another first event
    other = [branch.next("other")]
    await mongo.append(other)
    await memory.append(other)
    await mongo.index_listings(None)
    await same_answers(mongo, memory, 1)
    assert [
        h["entity_id"] for h in await mongo.index.heads_page("orders", limit=10, before_seq=None)
    ] == ["other"]


class Racing:
    """A collection another writer of the counts gets to first: it moves the stream's
    counts just before this writer's update, or creates them just before its insert."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def update_one(self, found: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if "last_seq" in found:
            await self._real.update_one({"_id": found["_id"]}, {"$inc": {"last_seq": 1}})
        return await self._real.update_one(found, *args, **kwargs)

    async def insert_one(self, doc: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        await self._real.insert_one(doc)
        return await self._real.insert_one(doc, *args, **kwargs)


@pytest.mark.parametrize("counted", ["before", "never"])
async def test_counts_another_writer_moved_meanwhile_are_a_conflict(
    counted: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mongo, log = await mongo_log(), LogBuilder()
    if counted == "before":
        first = [log.next(1)]
        await mongo.append(first)
        await mongo.index_listings(first)
    batch = [log.next(2)]
    await mongo.append(batch)
    monkeypatch.setattr(mongo.index, "_stats", Racing(mongo.index._stats))
    with pytest.raises(IndexConflict, match=r"^stream 'orders' was counted meanwhile$"):
        await mongo.index_listings(batch)


@pytest.mark.parametrize(
    ("codes", "raised"), [([11000, 11000], False), ([11000, 2], True), ([], True)]
)
async def test_only_a_newer_head_is_a_write_error_to_pass_over(
    codes: list[int], raised: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    mongo, log = await mongo_log(), LogBuilder()
    batch = [log.next(1), log.next(2)]
    await mongo.append(batch)
    errors = [{"index": n, "code": code, "errmsg": "e"} for n, code in enumerate(codes)]

    async def refused(*_: Any, **__: Any) -> Any:
        raise BulkWriteError({"writeErrors": errors, "nInserted": 0})

    monkeypatch.setattr(mongo.index._heads, "bulk_write", refused)
    if raised:
        with pytest.raises(BulkWriteError):
            await mongo.index_listings(batch)
    else:
        assert await mongo.index_listings(batch) == 0


async def test_a_stream_counted_before_a_death_does_not_stop_the_next_from_being_counted() -> None:
    """Writing a range again after the process died between two streams' counts: the first
    stream has nothing new, and the second is counted all the same."""
    mongo, memory, log = await mongo_log(), MemoryStore().events, LogBuilder()
    batch = [log.next(1), log.next("c1", stream="customers"), log.next(2)]
    await mongo.append(batch)
    await memory.append(batch)
    await interrupted(mongo, batch, "mid_counts")  # orders counted, customers not
    _, stats = await mongo.index.stream_docs()
    assert sorted(stats) == ["orders"]
    assert await mongo.index_listings(None) == 3
    _, stats = await mongo.index.stream_docs()
    assert {name: (doc["events"], doc["last_seq"]) for name, doc in stats.items()} == {
        "orders": (2, 3),
        "customers": (1, 2),
    }
    await same_answers(mongo, memory, 1)


class CountingFinds:
    """A collection that counts its `find` calls."""

    def __init__(self, real: Any) -> None:
        self._real, self.finds = real, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def find(self, *args: Any, **kwargs: Any) -> Any:
        self.finds += 1
        return self._real.find(*args, **kwargs)


async def test_a_batch_of_streams_already_counted_reads_no_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Capture's per-batch writes: the counts of a stream this instance wrote are remembered."""
    mongo, memory, log = await mongo_log(), MemoryStore().events, LogBuilder()
    stats = CountingFinds(mongo.index._stats)
    monkeypatch.setattr(mongo.index, "_stats", stats)
    for n in range(5):
        batch = [log.next(n), log.next("c", stream="customers")]
        await mongo.append(batch)
        await memory.append(batch)
        await mongo.index_listings(batch)
    assert stats.finds == 1  # both streams' counts looked up once, with the first batch
    batch = [log.next("new", stream="refunds"), log.next(1)]
    await mongo.append(batch)
    await memory.append(batch)
    await mongo.index_listings(batch)
    assert stats.finds == 2  # a stream not seen yet is looked up
    await same_answers(mongo, memory, 2)
