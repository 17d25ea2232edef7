"""The mongo event log on the wire: the audit query's `find`, and waiting for appends
by a change stream on `events` or, where the server has none, by polling the head."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import pytest
from bson import Int64
from pymongo import AsyncMongoClient
from pymongo.errors import ExecutionTimeout, OperationFailure

from eventstore.model import EventQuery
from eventstore.mongo.eventlog import MongoEventLog
from tests.contract.wire import Wire, first_batch, next_batch, token

Client = AsyncMongoClient[dict[str, Any]]
NS = "eventstore.events"
SINCE = datetime(2026, 1, 1, tzinfo=UTC)
UNTIL = datetime(2026, 1, 2, tzinfo=UTC)


def event_log(client: Client) -> MongoEventLog:
    return MongoEventLog(client["eventstore"], query_max_time_ms=750)


def head_reply(seq: int | None) -> dict[str, Any]:
    """The reply to the head query (`find` sorted by seq descending, limit 1)."""
    docs = [] if seq is None else [{"_id": f"ev{seq}", "seq": Int64(seq), "log_hash": "ab"}]
    return first_batch(docs, post_batch=None, ns=NS, cursor_id=Int64(0))


def inserted(seq: int) -> dict[str, Any]:
    """A change-stream insert event, as the adapter's `$project` leaves it."""
    return {"_id": token(seq), "fullDocument": {"seq": Int64(seq)}}


async def test_a_query_is_one_find_in_seq_order_bounded_by_max_time(
    client: Client, wire: Wire
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
        "changed_fields": {"$regex": r"^customer\.email(\.|$)"},
        "actor": "alice",
        # mockupdb decodes datetimes naive (UTC).
        "occurred_at": {"$gte": SINCE.replace(tzinfo=None), "$lt": UNTIL.replace(tzinfo=None)},
        "seq": {"$gt": 7},
    }
    assert [type(v) for v in find.doc["filter"]["entity_id"]["$in"]] == [int, str]
    assert find.doc["sort"] == {"seq": 1}
    assert find.doc["limit"] == 20
    assert find.doc["maxTimeMS"] == 750


async def test_a_query_past_its_time_limit_raises(client: Client, wire: Wire) -> None:
    querying = asyncio.create_task(event_log(client).query(EventQuery(field="status")))
    (await wire.receives("find")).command_err(code=50, errmsg="operation exceeded time limit")

    with pytest.raises(ExecutionTimeout):
        await wire.result(querying)


@pytest.mark.parametrize("listing", ["streams", "entities"])
async def test_listings_are_bounded_by_max_time(client: Client, wire: Wire, listing: str) -> None:
    log = event_log(client)
    call = log.streams() if listing == "streams" else log.entities("orders", limit=5)
    listing_task = asyncio.create_task(call)
    aggregate = await wire.receives("aggregate")
    aggregate.replies(first_batch([], post_batch=None, ns=NS, cursor_id=Int64(0)))
    assert await wire.result(listing_task) == []
    assert aggregate.doc["aggregate"] == "events"
    assert aggregate.doc["maxTimeMS"] == 750


async def test_wait_watches_events_before_checking_the_head_and_wakes_on_an_insert(
    client: Client, wire: Wire
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
    assert aggregate.doc["pipeline"] == [
        {"$changeStream": {}},
        {"$match": {"operationType": "insert", "fullDocument.seq": {"$gt": 3}}},
        {"$project": {"fullDocument.seq": 1}},
    ]
    assert head.doc["find"] == "events"
    assert head.doc["sort"] == {"seq": -1}
    assert getmore.doc["collection"] == "events"
    assert 0 < getmore.doc["maxTimeMS"] <= 5000  # the getMore waits at most the timeout


async def test_wait_returns_at_once_when_the_head_is_already_past(
    client: Client, wire: Wire
) -> None:
    waiting = asyncio.create_task(event_log(client).wait_for_append(3, 5))
    (await wire.receives("aggregate")).replies(first_batch([], post_batch=token(1), ns=NS))
    (await wire.receives("find")).replies(head_reply(4))

    assert await wire.result(waiting) is True


async def test_wait_on_a_quiet_stream_ends_false_at_the_timeout(client: Client, wire: Wire) -> None:
    waiting = asyncio.create_task(event_log(client).wait_for_append(3, 0.3))
    (await wire.receives("aggregate")).replies(first_batch([], post_batch=token(1), ns=NS))
    (await wire.receives("find")).replies(head_reply(3))
    getmore = await wire.receives("getMore")
    await asyncio.sleep(0.35)  # the server waits maxTimeMS, then answers: nothing
    getmore.replies(next_batch([], post_batch=token(2), ns=NS))

    assert await wire.result(waiting) is False
    assert getmore.doc["maxTimeMS"] <= 300


async def test_wait_polls_the_head_with_a_back_off_where_change_streams_are_refused(
    client: Client, wire: Wire
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


async def test_polling_gives_up_at_the_timeout(client: Client, wire: Wire) -> None:
    waiting = asyncio.create_task(event_log(client).wait_for_append(0, 0.12))
    (await wire.receives("aggregate")).command_err(
        code=40573, errmsg="The $changeStream stage is only supported on replica sets"
    )
    # Polls at 0, 50 and 120 ms (the last sleep cut to the timeout), then gives up.
    for _ in range(3):
        (await wire.receives("find")).replies(head_reply(None))

    assert await wire.result(waiting) is False


async def test_other_change_stream_errors_are_raised(client: Client, wire: Wire) -> None:
    waiting = asyncio.create_task(event_log(client).wait_for_append(0, 5))
    (await wire.receives("aggregate")).command_err(code=2, errmsg="BadValue")

    with pytest.raises(OperationFailure) as raised:
        await wire.result(waiting)
    assert raised.value.code == 2
