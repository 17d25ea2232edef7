"""On the wire (mockupdb): a BSON date outside years 1-9999 in a change, or in a stored event,
is decoded as its milliseconds (DatetimeMS), not refused with the whole batch."""

from __future__ import annotations

import asyncio
from typing import Any

from bson import Int64, Timestamp
from bson.datetime_ms import DatetimeMS
from pymongo import AsyncMongoClient

from eventstore.codec import event_doc
from eventstore.mongo.store import MongoStore
from eventstore.sources.mongo import MongoChangeSource
from tests.contract.wire import Wire, change, first_batch, token
from tests.helpers import make_event

Client = AsyncMongoClient[dict[str, Any]]
JS_MAX_DATE = 8_640_000_000_000_000
BEFORE_YEAR_1 = -62_135_596_800_001


async def test_a_change_holding_dates_beyond_datetime_is_decoded_exactly(
    client: Client, wire: Wire
) -> None:
    source = MongoChangeSource(client, source_db="shop", collections=["orders"], max_await_ms=100)
    sent = change(1)
    sent["clusterTime"] = Timestamp(1_800_000_000, 1)
    sent["fullDocument"]["expires"] = DatetimeMS(JS_MAX_DATE)
    sent["fullDocument"]["born"] = [DatetimeMS(BEFORE_YEAR_1)]
    odd = change(2)
    odd["clusterTime"] = Timestamp(1_800_000_002, 1)
    odd["wallTime"] = DatetimeMS(JS_MAX_DATE)  # a server clock that far off

    async def read() -> Any:
        async with source.watch(None) as stream:
            return await stream.next_batch()

    reading = asyncio.create_task(read())
    (await wire.receives("aggregate")).replies(first_batch([sent, odd], post_batch=token(2)))
    batch = await wire.result(reading)

    assert batch.changes[0]["fullDocument"] == {
        "_id": 1,
        "status": "pending",
        "expires": DatetimeMS(JS_MAX_DATE),
        "born": [DatetimeMS(BEFORE_YEAR_1)],
    }
    # The wallTime a datetime cannot hold is left out: occurred_at is the clusterTime.
    assert "wallTime" not in batch.changes[1]
    assert batch.changes[1]["clusterTime"] == Timestamp(1_800_000_002, 1)


async def test_the_store_reads_back_an_event_holding_a_date_beyond_datetime(
    client: Client, wire: Wire
) -> None:
    event = make_event(
        seq=1, entity_id=1, version=1, document={"_id": 1, "expires": DatetimeMS(JS_MAX_DATE)}
    )
    store = MongoStore(client, "eventstore")
    reading = asyncio.create_task(store.events.read(after_seq=0, limit=10))
    find = await wire.receives("find")
    find.replies(
        first_batch([event_doc(event)], post_batch=None, ns="eventstore.events", cursor_id=Int64(0))
    )
    (back,) = await wire.result(reading)

    assert back == event
    assert back.document == {"_id": 1, "expires": DatetimeMS(JS_MAX_DATE)}
