"""The mongo event log on the wire: the audit query's `find`, and waiting for appends
by the log's one shared change stream on `events` or, where the server has none, by
polling the head."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import bson
import pytest
from bson import Int64
from pymongo import AsyncMongoClient
from pymongo.errors import ExecutionTimeout, OperationFailure

from eventstore.model import EventQuery
from eventstore.mongo import eventlog as mongo_eventlog
from eventstore.mongo.append_watch import WATCH_AWAIT_MS
from eventstore.mongo.eventlog import MongoEventLog
from eventstore.mongo.store import MongoStore
from tests.contract.wire import HELLO, Wire, first_batch, next_batch, token
from tests.helpers import LogBuilder

Client = AsyncMongoClient[dict[str, Any]]
MakeLog = Callable[[Client], MongoEventLog]
NS = "eventstore.events"
PAYLOADS = "eventstore.event_payloads"
SINCE = datetime(2026, 1, 1, tzinfo=UTC)
UNTIL = datetime(2026, 1, 2, tzinfo=UTC)


@pytest.fixture
async def event_log(client: Client) -> AsyncIterator[MakeLog]:
    """Makes event logs on the client; each is closed (its watcher stopped) after the test."""
    made: list[MongoEventLog] = []

    def make(on: Client) -> MongoEventLog:
        made.append(MongoEventLog(on["eventstore"], query_max_time_ms=750))
        return made[-1]

    yield make
    for log in made:
        await log.close()


def head_reply(seq: int | None) -> dict[str, Any]:
    """The reply to the head query (`find` sorted by seq descending, limit 1)."""
    docs = [] if seq is None else [{"_id": f"ev{seq}", "seq": Int64(seq), "log_hash": "ab"}]
    return first_batch(docs, post_batch=None, ns=NS, cursor_id=Int64(0))


def inserted(seq: int) -> dict[str, Any]:
    """A change-stream insert event, as the adapter's `$project` leaves it."""
    return {"_id": token(seq), "fullDocument": {"seq": Int64(seq)}}


async def test_a_query_is_one_find_in_seq_order_bounded_by_max_time(
    client: Client, wire: Wire, event_log: MakeLog
) -> None:
    q = EventQuery(
        stream="orders",
        entity_ids=(42, "42"),
        types=("updated", "replaced"),
        field="customer.email",
        actor="alice",
        since=SINCE,
        until=UNTIL,
    )
    querying = asyncio.create_task(event_log(client).query(q, after_seq=7, limit=20))
    find = await wire.receives("find")
    find.replies(first_batch([], post_batch=None, ns=NS, cursor_id=Int64(0)))
    assert await wire.result(querying) == []

    assert find.namespace == "eventstore"
    assert find.doc["find"] == "events"
    assert find.doc["filter"] == {
        "stream": "orders",
        "entity_id": {"$in": [42, "42"]},
        "type": {"$in": ["replaced", "updated"]},
        "$or": [
            {"changed_fields": {"$in": ["customer", "customer.email"]}},  # it, or set whole
            {"changed_fields": {"$regex": r"^customer\.email\."}},  # beneath it
            {"type": {"$in": ["deleted", "replaced", "snapshot"]}},  # a whole document
        ],
        "actor": "alice",
        # mockupdb decodes datetimes naive (UTC).
        "occurred_at": {"$gte": SINCE.replace(tzinfo=None), "$lt": UNTIL.replace(tzinfo=None)},
        "seq": {"$gt": 7},
    }
    assert [type(v) for v in find.doc["filter"]["entity_id"]["$in"]] == [int, str]
    assert find.doc["sort"] == {"seq": 1}
    assert find.doc["limit"] == 20
    assert find.doc["maxTimeMS"] == 750


async def test_a_query_past_its_time_limit_raises(
    client: Client, wire: Wire, event_log: MakeLog
) -> None:
    querying = asyncio.create_task(event_log(client).query(EventQuery(field="status")))
    (await wire.receives("find")).command_err(code=50, errmsg="operation exceeded time limit")

    with pytest.raises(ExecutionTimeout):
        await wire.result(querying)


def reply(docs: list[dict[str, Any]], ns: str = NS) -> dict[str, Any]:
    return first_batch(docs, post_batch=None, ns=ns, cursor_id=Int64(0))


STATS = "eventstore.stream_stats"
# The listings' index: indexed up to seq 9, the orders stream's last event at 8.
WATERMARK = {"_id": -1, "seq": Int64(9)}
ORDERS = {
    "_id": "orders",
    "events": 8,
    "entities": 3,
    "last_seq": Int64(8),
    "last_event_at": SINCE,
}


def head(entity: Any, seq: int) -> dict[str, Any]:
    """An entity's newest event as `entity_heads` (or a `find` on `events`) gives it."""
    return {
        "entity_id": entity,
        "entity_key": str(entity),
        "version": Int64(1),
        "type": "updated",
        "occurred_at": SINCE,
        "seq": Int64(seq),
    }


async def test_the_streams_are_the_index_s_counts_and_the_events_past_its_watermark(
    client: Client, wire: Wire, event_log: MakeLog
) -> None:
    listing = asyncio.create_task(event_log(client).streams())
    stats = await wire.receives("find")
    stats.replies(reply([WATERMARK, ORDERS], ns=STATS))
    tail = await wire.receives("find")
    newer = {**head("c1", 10), "stream": "customers", "version": Int64(1)}
    tail.replies(reply([newer]))
    got = await wire.result(listing)
    assert [(s.stream, s.events, s.entities, s.last_seq) for s in got] == [
        ("customers", 1, 1, 10),
        ("orders", 8, 3, 8),
    ]
    assert (stats.doc["find"], stats.doc["filter"], stats.doc["maxTimeMS"]) == (
        "stream_stats",
        {},
        750,
    )
    assert (tail.doc["find"], tail.doc["filter"], tail.doc["sort"]) == (
        "events",
        {"seq": {"$gt": 9}},
        {"seq": 1},
    )
    assert (tail.doc["limit"], tail.doc["maxTimeMS"]) == (10_001, 750)


async def test_a_page_of_entities_is_two_index_ranges_and_a_look_past_the_index(
    client: Client, wire: Wire, event_log: MakeLog
) -> None:
    listing = asyncio.create_task(event_log(client).entities("orders", limit=2, before_seq=50))
    stats = await wire.receives("find")
    stats.replies(reply([WATERMARK, ORDERS], ns=STATS))
    tail = await wire.receives("find")
    tail.replies(reply([head(7, 10)]))  # entity 7 changed after the index was written
    heads = await wire.receives("find")
    heads.replies(reply([head(7, 6), head(3, 5), head(1, 2)], ns="eventstore.entity_heads"))
    got = await wire.result(listing)
    assert [(e.entity_id, e.last_seq) for e in got] == [(7, 10), (3, 5)]
    assert stats.doc["filter"] == {"_id": {"$in": [-1, "orders"]}}
    assert stats.doc["maxTimeMS"] == 750
    assert (tail.doc["find"], tail.doc["filter"], tail.doc["sort"]) == (
        "events",
        {"stream": "orders", "seq": {"$gt": 9}},
        {"seq": 1},
    )
    assert (tail.doc["limit"], tail.doc["maxTimeMS"]) == (10_001, 750)
    assert (heads.doc["find"], heads.doc["filter"], heads.doc["sort"]) == (
        "entity_heads",
        {"stream": "orders", "seq": {"$lt": 50}},
        {"seq": -1},
    )
    # what a listed entity shows, and nothing more
    fields = ("entity_id", "entity_key", "version", "type", "occurred_at", "seq")
    assert heads.doc["projection"] == dict.fromkeys(fields, 1)
    # as many more heads as the changes past the index may have made stale
    assert (heads.doc["limit"], heads.doc["maxTimeMS"]) == (3, 750)


@pytest.mark.parametrize("listing", ["streams", "entities"])
async def test_past_an_index_far_behind_the_listings_group_the_log_bounded_by_max_time(
    client: Client,
    wire: Wire,
    listing: str,
    event_log: MakeLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mongo_eventlog, "TAIL_MAX", 1)
    log = event_log(client)
    call = log.streams() if listing == "streams" else log.entities("orders", limit=5)
    listing_task = asyncio.create_task(call)
    (await wire.receives("find")).replies(reply([], ns=STATS))  # an empty index
    tail = await wire.receives("find")
    tail.replies(reply([{**head(1, 1), "stream": "orders"}, {**head(2, 2), "stream": "orders"}]))
    aggregate = await wire.receives("aggregate")
    aggregate.replies(reply([]))
    assert await wire.result(listing_task) == []
    assert tail.doc["limit"] == 2
    assert aggregate.doc["aggregate"] == "events"
    assert aggregate.doc["maxTimeMS"] == 750


async def test_wait_watches_events_before_checking_the_head_and_wakes_on_an_insert(
    client: Client, wire: Wire, event_log: MakeLog
) -> None:
    waiting = asyncio.create_task(event_log(client).wait_for_append(3, 5))
    # The stream is opened first, so an insert after the head check is not missed.
    aggregate = await wire.receives("aggregate")
    aggregate.replies(first_batch([], post_batch=token(1), ns=NS))
    head = await wire.receives("find")
    head.replies(head_reply(3))
    getmore = await wire.receives("getMore")
    getmore.replies(next_batch([inserted(4)], post_batch=token(2), ns=NS))

    assert await wire.result(waiting) is True
    assert aggregate.namespace == "eventstore"
    assert aggregate.doc["aggregate"] == "events"
    # One stream for every waiter: all inserts, whatever position each waiter is at.
    assert aggregate.doc["pipeline"] == [
        {"$changeStream": {}},
        {"$match": {"operationType": "insert"}},
        {"$project": {"fullDocument.seq": 1}},
    ]
    assert head.doc["find"] == "events"
    assert head.doc["sort"] == {"seq": -1}
    assert getmore.doc["collection"] == "events"
    assert getmore.doc["maxTimeMS"] == WATCH_AWAIT_MS  # the shared stream's await


async def test_wait_returns_at_once_when_the_head_is_already_past(
    client: Client, wire: Wire, event_log: MakeLog
) -> None:
    waiting = asyncio.create_task(event_log(client).wait_for_append(3, 5))
    (await wire.receives("aggregate")).replies(first_batch([], post_batch=token(1), ns=NS))
    (await wire.receives("find")).replies(head_reply(4))

    assert await wire.result(waiting) is True


async def test_wait_on_a_quiet_stream_ends_false_at_the_timeout(
    client: Client, wire: Wire, event_log: MakeLog
) -> None:
    waiting = asyncio.create_task(event_log(client).wait_for_append(3, 0.3))
    (await wire.receives("aggregate")).replies(first_batch([], post_batch=token(1), ns=NS))
    (await wire.receives("find")).replies(head_reply(3))
    await wire.receives("getMore")  # the server waits maxTimeMS; the waiter's time runs out first

    assert await wire.result(waiting) is False


async def test_wait_polls_the_head_with_a_back_off_where_change_streams_are_refused(
    client: Client, wire: Wire, event_log: MakeLog
) -> None:
    log = event_log(client)
    loop = asyncio.get_running_loop()
    waiting = asyncio.create_task(log.wait_for_append(0, 5))
    (await wire.receives("aggregate")).command_err(
        code=40573, errmsg="The $changeStream stage is only supported on replica sets"
    )
    polls: list[float] = []
    for seq in (None, None, None, 1):
        (await wire.receives("find")).replies(head_reply(seq))
        polls.append(loop.time())
    assert await wire.result(waiting) is True

    gaps = [b - a for a, b in pairwise(polls)]
    assert gaps[0] >= 0.04  # 50 ms, 100 ms, 200 ms: never a busy loop
    assert gaps[1] >= 0.09
    assert gaps[2] >= 0.19

    # Remembered: the next wait polls without asking for a change stream again.
    again = asyncio.create_task(log.wait_for_append(1, 5))
    (await wire.receives("find")).replies(head_reply(2))
    assert await wire.result(again) is True


async def test_polling_gives_up_at_the_timeout(
    client: Client, wire: Wire, event_log: MakeLog
) -> None:
    polls: list[object] = []

    def empty_head(request: Any) -> bool:
        if request.command_name != "find":
            return False
        polls.append(request)
        request.replies(head_reply(None))
        return True

    # Every head poll answered "still empty", however many the machine's load lets happen.
    wire.server.autoresponds(empty_head)
    waiting = asyncio.create_task(event_log(client).wait_for_append(0, 0.12))
    (await wire.receives("aggregate")).command_err(
        code=40573, errmsg="The $changeStream stage is only supported on replica sets"
    )

    # Polls at 0, 50 and 120 ms (the last sleep cut to the timeout; fewer when the
    # replies are slow), then gives up rather than waiting on.
    assert await wire.result(waiting) is False
    assert 2 <= len(polls) <= 3


async def test_other_change_stream_errors_are_raised(
    client: Client, wire: Wire, event_log: MakeLog
) -> None:
    waiting = asyncio.create_task(event_log(client).wait_for_append(0, 5))
    (await wire.receives("aggregate")).command_err(code=2, errmsg="BadValue")

    with pytest.raises(OperationFailure) as raised:
        await wire.result(waiting)
    assert raised.value.code == 2


# -- one change stream per event log, shared by every waiter -----------------------------------


async def test_concurrent_waiters_open_exactly_one_change_stream(
    client: Client, wire: Wire, event_log: MakeLog
) -> None:
    log = event_log(client)
    positions = [0, 2, 3, 3, 4, 5, 5, 6]
    waiters = [asyncio.create_task(log.wait_for_append(p, 5)) for p in positions]
    aggregate = await wire.receives("aggregate")  # one aggregate for all eight waiters
    aggregate.replies(first_batch([], post_batch=token(1), ns=NS))
    (await wire.receives("find")).replies(head_reply(3))
    # The head (3) answers the waiters behind it at once; the others wait on the stream.
    await asyncio.sleep(0.05)
    assert [w.done() for w in waiters] == [True, True, False, False, False, False, False, False]
    (await wire.receives("getMore")).replies(next_batch([inserted(4)], post_batch=None, ns=NS))
    (await wire.receives("getMore")).replies(
        next_batch([inserted(5), inserted(6), inserted(7)], post_batch=None, ns=NS)
    )
    assert [await wire.result(w) for w in waiters] == [True] * len(positions)

    # Later waiters join the same stream: the next request is its getMore, not an aggregate.
    later = [asyncio.create_task(log.wait_for_append(7, 5)) for _ in range(3)]
    getmore = await wire.receives("getMore")
    assert getmore.doc["getMore"] == aggregate_cursor_id()
    getmore.replies(next_batch([inserted(8)], post_batch=None, ns=NS))
    assert [await wire.result(w) for w in later] == [True, True, True]
    assert log.watcher.watching


def aggregate_cursor_id() -> Int64:
    """The cursor id `first_batch` gives the change stream (every getMore continues it)."""
    return Int64(first_batch([], post_batch=None)["cursor"]["id"])


async def test_a_waiter_that_times_out_leaves_the_stream_to_the_others(
    client: Client, wire: Wire, event_log: MakeLog
) -> None:
    log = event_log(client)
    patient = asyncio.create_task(log.wait_for_append(3, 5))
    hasty = asyncio.create_task(log.wait_for_append(3, 0.1))
    (await wire.receives("aggregate")).replies(first_batch([], post_batch=token(1), ns=NS))
    (await wire.receives("find")).replies(head_reply(3))
    getmore = await wire.receives("getMore")
    assert await wire.result(hasty) is False
    assert not patient.done()
    getmore.replies(next_batch([inserted(4)], post_batch=None, ns=NS))
    assert await wire.result(patient) is True


async def test_closing_the_store_stops_its_change_stream(client: Client, wire: Wire) -> None:
    store = MongoStore(client, "eventstore")  # the client stays the test's
    waiting = asyncio.create_task(store.events.wait_for_append(3, 0.2))
    (await wire.receives("aggregate")).replies(first_batch([], post_batch=token(1), ns=NS))
    (await wire.receives("find")).replies(head_reply(3))
    await wire.receives("getMore")
    assert await wire.result(waiting) is False
    log = store.events
    assert isinstance(log, MongoEventLog) and log.watcher.watching

    await store.close()

    assert not log.watcher.watching


async def test_after_a_stream_error_the_next_wait_opens_a_new_stream(
    client: Client, wire: Wire, event_log: MakeLog
) -> None:
    log = event_log(client)
    failing = asyncio.create_task(log.wait_for_append(0, 5))
    (await wire.receives("aggregate")).command_err(code=2, errmsg="BadValue")
    with pytest.raises(OperationFailure):
        await wire.result(failing)

    again = asyncio.create_task(log.wait_for_append(0, 5))
    (await wire.receives("aggregate")).replies(first_batch([], post_batch=token(1), ns=NS))
    (await wire.receives("find")).replies(head_reply(1))
    assert await wire.result(again) is True


async def test_indexing_a_batch_writes_heads_then_counts_then_the_watermark(
    client: Client, wire: Wire, event_log: MakeLog
) -> None:
    """Each write guarded by seq: a head only over an older one, a stream's counts only over
    those read, the watermark only forward (a newer one makes the upsert a duplicate)."""
    log = LogBuilder()
    batch = [log.next(1), log.next(1), log.next("c1", stream="customers")]
    indexing = asyncio.create_task(event_log(client).index_listings(batch))
    mark = await wire.receives("find")
    mark.replies(reply([], ns=STATS))  # a fresh index: watermark 0
    heads = await wire.receives("update")
    heads.replies({"n": 2, "nModified": 0})
    counts = await wire.receives("find")
    # seq 1 counted already (the process died before the watermark): only seq 2 is added
    counts.replies(reply([{**ORDERS, "last_seq": Int64(1)}], ns=STATS))
    orders = await wire.receives("update")
    orders.replies({"n": 1, "nModified": 1})
    customers = await wire.receives("insert")
    customers.replies({"n": 1})
    watermark = await wire.receives("update")
    watermark.replies({"n": 1, "nModified": 1})
    assert await wire.result(indexing) == 0

    assert mark.doc["filter"] == {"_id": -1}
    assert heads.doc["update"] == "entity_heads" and heads.doc["ordered"] is False
    assert [(u["q"], u["upsert"]) for u in heads.doc["updates"]] == [
        ({"_id": {"s": "orders", "k": "int:1"}, "seq": {"$lt": 2}}, True),
        ({"_id": {"s": "customers", "k": "str:c1"}, "seq": {"$lt": 3}}, True),
    ]
    head = heads.doc["updates"][0]["u"]["$set"]
    assert {k: v for k, v in head.items() if k != "occurred_at"} == {
        "stream": "orders",
        "entity_id": 1,
        "entity_key": "1",
        "version": 2,
        "type": "updated",
        "seq": 2,
    }
    assert counts.doc["filter"] == {"_id": {"$in": ["customers", "orders"]}}
    assert orders.doc["updates"] == [
        {
            "q": {"_id": "orders", "last_seq": 1},
            "u": {
                "$inc": {"events": 1, "entities": 0},
                "$set": {"last_seq": 2, "last_event_at": batch[1].occurred_at.replace(tzinfo=None)},
            },
            "multi": False,
            "upsert": False,  # a stream's counts only over those read
        }
    ]
    assert customers.doc["documents"] == [
        {
            "_id": "customers",
            "events": 1,
            "entities": 1,
            "last_seq": 3,
            "last_event_at": batch[2].occurred_at.replace(tzinfo=None),
        }
    ]
    assert watermark.doc["updates"] == [
        {
            "q": {"_id": -1, "seq": {"$lt": 3}},
            "u": {"$set": {"seq": 3, "hash": batch[2].hash}},
            "multi": False,
            "upsert": True,
        }
    ]


async def test_an_event_over_16_mib_is_stored_with_its_payload_in_parts(
    client: Client, wire: Wire, event_log: MakeLog
) -> None:
    """A replace of a 9 MB document with its 9 MB pre-image: a server refuses the whole event
    (BSONObjectTooLarge, over its maxBsonObjectSize); its payload goes in parts first."""
    log = LogBuilder()
    big = "x" * 9_000_000
    events = [
        log.next("A"),
        log.next(
            "A", "replaced", document={"_id": "A", "note": big}, before={"_id": "A", "n": big}
        ),
    ]
    store = event_log(client)
    appending = asyncio.create_task(store.append(events))
    have = await wire.receives("find")
    assert have.doc["find"] == "event_payloads"
    have.replies(first_batch([], post_batch=None, ns=PAYLOADS, cursor_id=Int64(0)))
    parts_insert = await wire.receives("insert")
    parts = (
        parts_insert.docs[1:]
        if parts_insert.doc.get("documents") is None
        else parts_insert.doc["documents"]
    )
    parts_insert.replies({"n": len(parts)})
    events_insert = await wire.receives("insert")
    stored = (
        events_insert.docs[1:]
        if events_insert.doc.get("documents") is None
        else events_insert.doc["documents"]
    )
    events_insert.replies({"n": 2})
    assert await wire.result(appending) == 2

    assert parts_insert.doc["insert"] == "event_payloads"
    assert events_insert.doc["insert"] == "events"
    assert [p["n"] for p in parts] == [0, 1, 2]  # 18 MB in parts of 8 MiB
    assert all(len(bson.encode(d)) <= HELLO["maxBsonObjectSize"] for d in parts + stored)
    assert stored[1]["document"] is None and stored[1]["payload_parts"]["count"] == 3

    reading = asyncio.create_task(store.read())
    (await wire.receives("find")).replies(
        first_batch(stored, post_batch=None, ns=NS, cursor_id=Int64(0))
    )
    fetch = await wire.receives("find")
    assert fetch.doc["filter"] == {"_id": {"$in": [p["_id"] for p in parts]}}
    # A real server answers in batches of at most 16 MiB: one part per batch here. Each
    # reply is sent from a thread: 8 MiB fill the socket while this loop has to read them.
    loop = asyncio.get_running_loop()
    batch = first_batch(parts[:1], post_batch=None, ns=PAYLOADS, cursor_id=Int64(9))
    await loop.run_in_executor(None, fetch.replies, batch)
    for n, part in enumerate(parts[1:], start=1):
        more = await wire.receives("getMore")
        last = n == len(parts) - 1
        batch = next_batch([part], post_batch=None, ns=PAYLOADS, cursor_id=Int64(0 if last else 9))
        await loop.run_in_executor(None, more.replies, batch)
    assert await wire.result(reading) == events
