"""The PyMongo Async change source on the wire: command shapes, batches, resume, errors."""

from __future__ import annotations

import asyncio
import gc
import socket
import warnings
from typing import Any

import pytest
from bson import Int64, Timestamp
from pymongo import AsyncMongoClient

from eventstore.failures import TRANSIENT, classify
from eventstore.model import ChangeBatch, ResumePoint
from eventstore.ports import ChangeSource, HistoryLost, SourceError
from eventstore.sources.mongo import MongoChangeSource, MongoChangeStream
from tests.contract.wire import CURSOR_ID, Wire, change, first_batch, next_batch, token

Client = AsyncMongoClient[dict[str, Any]]

EXPECTED_MATCH = {
    "$match": {
        "$or": [
            {"ns.coll": {"$in": ["orders", "customers"]}},
            {"to.coll": {"$in": ["orders", "customers"]}},  # a rename into one of them
            {"operationType": {"$in": ["dropDatabase", "invalidate"]}},
        ]
    }
}
# Events over 16 MB come as fragments instead of failing the stream (the last stage).
SPLIT: dict[str, Any] = {"$changeStreamSplitLargeEvent": {}}


def make_source(
    client: Client, *, pre_images: str = "off", batch_size: int = 50
) -> MongoChangeSource:
    return MongoChangeSource(
        client,
        source_db="shop",
        collections=["orders", "customers"],
        pre_images=pre_images,
        batch_size=batch_size,
        max_await_ms=100,
    )


async def read_batches(
    source: MongoChangeSource, resume: ResumePoint | None, count: int
) -> list[ChangeBatch | None]:
    """Open a stream and read `count` batches (the client side of a test)."""
    async with source.watch(resume) as stream:
        return [await stream.next_batch() for _ in range(count)]


def test_mongo_change_source_satisfies_the_port(client: Client) -> None:
    source: ChangeSource = make_source(client)
    assert source.can_snapshot is True
    assert source.finite is False


@pytest.mark.parametrize(
    ("pre_images", "resume", "expected_stage"),
    [
        pytest.param("off", None, {"showExpandedEvents": True}, id="from-now"),
        pytest.param(
            "when-available",
            None,
            {"showExpandedEvents": True, "fullDocumentBeforeChange": "whenAvailable"},
            id="pre-images-when-available",
        ),
        pytest.param(
            "required",
            None,
            {"showExpandedEvents": True, "fullDocumentBeforeChange": "required"},
            id="pre-images-required",
        ),
        pytest.param(
            "off",
            ResumePoint(resume_after=token(7)),
            {"showExpandedEvents": True, "resumeAfter": token(7)},
            id="resume-after",
        ),
        pytest.param(
            "when-available",
            ResumePoint(start_after=token(8)),
            {
                "showExpandedEvents": True,
                "fullDocumentBeforeChange": "whenAvailable",
                "startAfter": token(8),
            },
            id="start-after",
        ),
        pytest.param(
            "off",
            ResumePoint(start_at_operation_time=Timestamp(1_700_000_000, 3)),
            {"showExpandedEvents": True, "startAtOperationTime": Timestamp(1_700_000_000, 3)},
            id="start-at-operation-time",
        ),
    ],
)
async def test_aggregate_opens_one_database_change_stream(
    client: Client,
    wire: Wire,
    pre_images: str,
    resume: ResumePoint | None,
    expected_stage: dict[str, Any],
) -> None:
    opening = asyncio.create_task(
        read_batches(make_source(client, pre_images=pre_images), resume, 1)
    )
    aggregate = await wire.receives("aggregate")
    aggregate.replies(first_batch([], post_batch=token(9)))
    getmore = await wire.receives("getMore")
    getmore.replies(next_batch([], post_batch=token(10)))
    await wire.result(opening)

    command = aggregate.doc
    assert aggregate.namespace == "shop"
    assert command["aggregate"] == 1  # the database, not a collection
    assert command["pipeline"][0] == {"$changeStream": expected_stage}
    assert command["pipeline"][1:] == [EXPECTED_MATCH, SPLIT]
    assert command["cursor"] == {"batchSize": 50}
    assert "maxAwaitTimeMS" not in command  # goes to getMore as maxTimeMS
    assert getmore.namespace == "shop"
    assert {k: getmore.doc[k] for k in ("getMore", "collection", "batchSize", "maxTimeMS")} == {
        "getMore": CURSOR_ID,
        "collection": "$cmd.aggregate",
        "batchSize": 50,
        "maxTimeMS": 100,
    }


async def test_a_resume_point_with_two_fields_is_refused(client: Client) -> None:
    both = ResumePoint(resume_after=token(1), start_after=token(2))
    with pytest.raises(ValueError, match="resume_after, start_after"):
        async with make_source(client).watch(both):
            pass


async def test_getmore_batches_are_delivered_in_order(client: Client, wire: Wire) -> None:
    reading = asyncio.create_task(read_batches(make_source(client), None, 3))
    (await wire.receives("aggregate")).replies(
        first_batch([change(1), change(2)], post_batch=token(2))
    )
    (await wire.receives("getMore")).replies(next_batch([change(3)], post_batch=token(3)))
    (await wire.receives("getMore")).replies(
        next_batch([change(4, op="update"), change(5, coll="customers")], post_batch=token(6))
    )
    batches = await wire.result(reading)

    assert batches == [
        ChangeBatch(changes=[change(1), change(2)], resume_token=token(2)),
        ChangeBatch(changes=[change(3)], resume_token=token(3)),
        ChangeBatch(
            changes=[change(4, op="update"), change(5, coll="customers")], resume_token=token(6)
        ),
    ]


async def test_a_batch_holds_at_most_batch_size_changes(client: Client, wire: Wire) -> None:
    reading = asyncio.create_task(read_batches(make_source(client, batch_size=2), None, 2))
    # A server batch larger than asked: the rest is served from the driver, no round trip.
    (await wire.receives("aggregate")).replies(
        first_batch([change(1), change(2), change(3)], post_batch=token(4))
    )
    batches = await wire.result(reading)

    assert batches == [
        ChangeBatch(changes=[change(1), change(2)], resume_token=token(2)),
        ChangeBatch(changes=[change(3)], resume_token=token(4)),
    ]


async def test_an_idle_stream_advances_to_the_post_batch_resume_token(
    client: Client, wire: Wire
) -> None:
    reading = asyncio.create_task(read_batches(make_source(client), None, 2))
    (await wire.receives("aggregate")).replies(first_batch([], post_batch=token(10)))
    (await wire.receives("getMore")).replies(next_batch([], post_batch=token(11)))
    (await wire.receives("getMore")).replies(next_batch([], post_batch=token(12)))
    batches = await wire.result(reading)

    assert batches == [
        ChangeBatch(changes=[], resume_token=token(11)),
        ChangeBatch(changes=[], resume_token=token(12)),
    ]


async def test_a_dropped_connection_resumes_after_the_last_token(
    client: Client, wire: Wire
) -> None:
    reading = asyncio.create_task(read_batches(make_source(client), None, 3))
    (await wire.receives("aggregate")).replies(first_batch([change(1)], post_batch=token(1)))
    (await wire.receives("getMore")).replies(next_batch([change(2)], post_batch=token(3)))
    (await wire.receives("getMore")).hangup()
    resumed = await wire.receives("aggregate")
    resumed.replies(first_batch([change(4)], post_batch=token(4), cursor_id=Int64(99)))
    batches = await wire.result(reading)

    stage = resumed.doc["pipeline"][0]["$changeStream"]
    assert stage == {"showExpandedEvents": True, "resumeAfter": token(3)}
    assert resumed.doc["pipeline"][1:] == [EXPECTED_MATCH, SPLIT]
    changes = [c for batch in batches if batch is not None for c in batch.changes]
    assert changes == [change(1), change(2), change(4)]
    assert batches[-1] == ChangeBatch(changes=[change(4)], resume_token=token(4))


async def test_invalidate_ends_the_stream(client: Client, wire: Wire) -> None:
    reading = asyncio.create_task(
        read_batches(make_source(client), ResumePoint(resume_after=token(1)), 2)
    )
    invalidate = {"_id": token(2), "operationType": "invalidate"}
    (await wire.receives("aggregate")).replies(
        first_batch([invalidate], post_batch=token(2), cursor_id=Int64(0))
    )
    batches = await wire.result(reading)

    assert batches == [ChangeBatch(changes=[invalidate], resume_token=token(2)), None]


async def test_history_lost_on_aggregate_raises_history_lost(client: Client, wire: Wire) -> None:
    reading = asyncio.create_task(
        read_batches(make_source(client), ResumePoint(resume_after=token(1)), 1)
    )
    (await wire.receives("aggregate")).command_err(
        code=286,
        errmsg="Resume of change stream was not possible, as the resume point may no longer be in the oplog.",
        codeName="ChangeStreamHistoryLost",
    )
    with pytest.raises(HistoryLost, match="no longer be in the oplog"):
        await wire.result(reading)


async def test_history_lost_on_getmore_raises_history_lost(client: Client, wire: Wire) -> None:
    reading = asyncio.create_task(
        read_batches(make_source(client), ResumePoint(resume_after=token(1)), 2)
    )
    (await wire.receives("aggregate")).replies(first_batch([change(2)], post_batch=token(2)))
    (await wire.receives("getMore")).command_err(
        code=286, errmsg="resume point lost", codeName="ChangeStreamHistoryLost"
    )
    with pytest.raises(HistoryLost):
        await wire.result(reading)


@pytest.mark.parametrize(
    ("code", "errmsg"),
    [
        pytest.param(40573, "The $changeStream stage is only supported on replica sets", id="code"),
        pytest.param(1, "$changeStream stage is only supported on replica sets", id="message-only"),
    ],
)
async def test_a_standalone_server_is_a_source_error(
    client: Client, wire: Wire, code: int, errmsg: str
) -> None:
    reading = asyncio.create_task(read_batches(make_source(client), None, 1))
    (await wire.receives("aggregate")).command_err(code=code, errmsg=errmsg)
    with pytest.raises(SourceError) as raised:
        await wire.result(reading)
    assert str(raised.value) == (
        "change streams need a replica set or sharded cluster; "
        f"{wire.address} is a standalone server"
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def unreachable_messages(port: int) -> list[str]:
    """What opening a stream and asking the time say when nothing listens (messages only:
    keeping the exceptions would keep the client's frames, and its sockets, alive)."""
    client: Client = AsyncMongoClient(
        f"mongodb://alice:s3cret@127.0.0.1:{port}/?directConnection=true",
        serverSelectionTimeoutMS=150,
    )
    source = make_source(client)
    messages = []
    try:
        for attempt in (lambda: read_batches(source, None, 1), source.cluster_time):
            try:
                await attempt()
            except SourceError as exc:
                messages.append(str(exc))
    finally:
        await client.close()
    return messages


async def test_an_unreachable_server_is_a_source_error_without_credentials() -> None:
    port = closed_port()
    with warnings.catch_warnings():
        # PyMongo 4.20 leaves the raw socket of a monitor connect cancelled by close()
        # to the garbage collector (PYTHON-5867): collect it here, not in a later test.
        warnings.simplefilter("ignore", ResourceWarning)
        messages = await unreachable_messages(port)
        gc.collect()

    expected = f"cannot reach MongoDB at 127.0.0.1:{port} within 150 ms"
    assert messages == [expected, expected]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            {
                "operationTime": Timestamp(1_700_000_100, 2),
                "$clusterTime": {"clusterTime": Timestamp(1_700_000_100, 5)},
            },
            Timestamp(1_700_000_100, 2),
            id="operation-time",
        ),
        pytest.param(
            {"$clusterTime": {"clusterTime": Timestamp(1_700_000_200, 1)}},
            Timestamp(1_700_000_200, 1),
            id="cluster-time",
        ),
    ],
)
async def test_cluster_time_comes_from_hello(
    client: Client, wire: Wire, extra: dict[str, Any], expected: Timestamp
) -> None:
    timing = asyncio.create_task(make_source(client).cluster_time())
    hello = await wire.receives("hello")
    hello.replies({"isWritablePrimary": True, "setName": "rs0", **extra})
    assert await wire.result(timing) == expected
    assert hello.namespace == "shop"


async def test_cluster_time_of_a_standalone_is_a_source_error(client: Client, wire: Wire) -> None:
    timing = asyncio.create_task(make_source(client).cluster_time())
    (await wire.receives("hello")).replies({"isWritablePrimary": True})
    with pytest.raises(SourceError, match="reports no cluster time"):
        await wire.result(timing)


async def test_scan_lists_documents_in_id_order_in_batches(client: Client, wire: Wire) -> None:
    async def scan_all() -> list[list[dict[str, Any]]]:
        return [batch async for batch in make_source(client).scan("orders", batch_size=2)]

    scanning = asyncio.create_task(scan_all())
    find = await wire.receives("find")
    find.replies(first_batch([{"_id": 1}, {"_id": 2}], post_batch=None, ns="shop.orders"))
    getmore = await wire.receives("getMore")
    getmore.replies(next_batch([{"_id": 3}], post_batch=None, ns="shop.orders", cursor_id=Int64(0)))
    batches = await wire.result(scanning)

    assert batches == [[{"_id": 1}, {"_id": 2}], [{"_id": 3}]]
    assert find.namespace == "shop"
    assert {k: find.doc[k] for k in ("find", "filter", "sort", "batchSize")} == {
        "find": "orders",
        "filter": {},
        "sort": {"_id": 1},
        "batchSize": 2,
    }
    assert getmore.doc["collection"] == "orders"


async def test_a_stream_is_closed_on_leaving_watch(client: Client, wire: Wire) -> None:
    source = make_source(client)
    entered: asyncio.Future[MongoChangeStream] = asyncio.get_running_loop().create_future()

    async def hold() -> None:
        async with source.watch(None) as stream:
            entered.set_result(stream)

    holding = asyncio.create_task(hold())
    (await wire.receives("aggregate")).replies(first_batch([], post_batch=token(1)))
    await wire.result(holding)
    stream = await entered
    assert await stream.next_batch() is None


# -- events over 16 MB: $changeStreamSplitLargeEvent ------------------------------------------


def split_update(first: int, order: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An update with both images as the whole event and as its three fragments (tokens first..+2)."""
    context: dict[str, Any] = {
        "operationType": "update",
        "ns": {"db": "shop", "coll": "orders"},
        "documentKey": {"_id": order},
        "updateDescription": {"updatedFields": {"note": "big"}, "removedFields": []},
    }
    before: dict[str, Any] = {"fullDocumentBeforeChange": {"_id": order, "note": ""}}
    after: dict[str, Any] = {"fullDocument": {"_id": order, "note": "big"}}
    parts = [
        {"_id": token(first + i), "splitEvent": {"fragment": i + 1, "of": 3}, **fields}
        for i, fields in enumerate((context, before, after))
    ]
    return {"_id": token(first + 2), **context, **before, **after}, parts


async def test_fragments_over_several_getmores_come_out_as_one_event(
    client: Client, wire: Wire
) -> None:
    whole, parts = split_update(2, order=7)
    reading = asyncio.create_task(read_batches(make_source(client), None, 2))
    (await wire.receives("aggregate")).replies(
        first_batch([change(1), parts[0]], post_batch=token(2))
    )
    # An empty getMore inside the event: the batch ends, its position stays before the event.
    (await wire.receives("getMore")).replies(next_batch([], post_batch=token(2)))
    (await wire.receives("getMore")).replies(next_batch([parts[1]], post_batch=token(3)))
    (await wire.receives("getMore")).replies(next_batch([parts[2], change(5)], post_batch=token(5)))
    batches = await wire.result(reading)

    assert batches == [
        # resume_token None: the ingester saves the last whole change's token, change 1's.
        ChangeBatch(changes=[change(1)], resume_token=None),
        ChangeBatch(changes=[whole, change(5)], resume_token=token(5)),
    ]


async def test_a_connection_dropped_inside_a_split_event_resumes_at_the_next_fragment(
    client: Client, wire: Wire
) -> None:
    whole, parts = split_update(1, order=7)
    reading = asyncio.create_task(read_batches(make_source(client), None, 1))
    (await wire.receives("aggregate")).replies(first_batch([parts[0]], post_batch=token(1)))
    (await wire.receives("getMore")).hangup()
    resumed = await wire.receives("aggregate")
    resumed.replies(first_batch(parts[1:], post_batch=token(3), cursor_id=Int64(99)))
    batches = await wire.result(reading)

    # The driver resumes after the first fragment's token; the server sends the rest.
    assert resumed.doc["pipeline"][0]["$changeStream"]["resumeAfter"] == token(1)
    assert resumed.doc["pipeline"][1:] == [EXPECTED_MATCH, SPLIT]
    assert batches == [ChangeBatch(changes=[whole], resume_token=token(3))]


async def test_a_server_without_the_split_stage_streams_without_it_and_says_so(
    client: Client, wire: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    source = make_source(client)
    reading = asyncio.create_task(read_batches(source, None, 1))
    refused = await wire.receives("aggregate")
    refused.command_err(
        code=40324,
        errmsg="Unrecognized pipeline stage name: '$changeStreamSplitLargeEvent'",
        codeName="Location40324",
    )
    plain = await wire.receives("aggregate")
    plain.replies(first_batch([change(1)], post_batch=token(1)))
    batches = await wire.result(reading)

    assert refused.doc["pipeline"][1:] == [EXPECTED_MATCH, SPLIT]
    assert plain.doc["pipeline"][1:] == [EXPECTED_MATCH]
    assert batches == [ChangeBatch(changes=[change(1)], resume_token=token(1))]
    assert [r.getMessage() for r in caplog.records if r.name == "eventstore.sources.mongo"] == [
        f"MongoDB at {wire.address} has no $changeStreamSplitLargeEvent (it needs 7.0 or "
        "6.0.9+): a change event over 16 MB will stop capture"
    ]

    # The next stream of this source does not ask again.
    reopening = asyncio.create_task(read_batches(source, ResumePoint(resume_after=token(1)), 1))
    again = await wire.receives("aggregate")
    again.replies(first_batch([change(2)], post_batch=token(2)))
    assert await wire.result(reopening) == [ChangeBatch(changes=[change(2)], resume_token=token(2))]
    assert again.doc["pipeline"][1:] == [EXPECTED_MATCH]


async def test_another_unknown_stage_is_not_taken_for_the_split_stage(
    client: Client, wire: Wire
) -> None:
    reading = asyncio.create_task(read_batches(make_source(client), None, 1))
    (await wire.receives("aggregate")).command_err(
        code=40324, errmsg="Unrecognized pipeline stage name: '$changeStream'"
    )
    with pytest.raises(SourceError, match=r"refused the change stream \(code 40324\)"):
        await wire.result(reading)


async def test_an_event_too_large_to_send_names_the_fix(client: Client, wire: Wire) -> None:
    reading = asyncio.create_task(read_batches(make_source(client), None, 2))
    (await wire.receives("aggregate")).replies(first_batch([change(1)], post_batch=token(1)))
    (await wire.receives("getMore")).command_err(
        code=10334,
        errmsg="BSONObj size: 17825792 (0x1100000) is invalid",
        codeName="BSONObjectTooLarge",
    )
    with pytest.raises(SourceError) as raised:
        await wire.result(reading)
    assert str(raised.value) == (
        "a change event is over 16 MB and this server cannot split it "
        "($changeStreamSplitLargeEvent needs MongoDB 7.0 or 6.0.9+): capture cannot pass it "
        "until the server is upgraded (BSONObj size: 17825792 (0x1100000) is invalid)"
    )


async def test_a_primary_that_stepped_down_is_said_so_not_unreachable(
    client: Client, wire: Wire
) -> None:
    # The server answers at once, but is no primary any more: the error is not "cannot
    # reach" (an operator would look at the network instead of the replica set).
    reading = asyncio.create_task(read_batches(make_source(client), None, 1))
    for _ in range(2):  # PyMongo retries a read once
        (await wire.receives("aggregate")).command_err(code=189, errmsg="primary stepped down")
    with pytest.raises(SourceError) as raised:
        await wire.result(reading)
    assert str(raised.value) == (
        f"MongoDB at {wire.address} is not the primary now (it stepped down or is shutting"
        " down): primary stepped down (code 189)"
    )
    assert classify(raised.value) == TRANSIENT  # retried
