"""A smaller run of the read API over the `mongo` adapters (on mongomock-motor).

Same expectations as test_api_history.py, computed from the log; plus tampering
with the `events` collection behind the service's back, which verify must name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from eventstore.model import DELETED
from eventstore.mongo.collections import EVENTS
from eventstore.mongo.store import MongoStore
from tests.api.conftest import AppFactory, AuditLog, build_log
from tests.api.test_api_history import (
    ENTITIES,
    X,
    by_entity,
    check_event,
    check_state,
    expected_diff,
    expected_entities,
    key_url,
    longest,
    ms,
    ok,
    problem,
    walk,
)

Client = AsyncTestClient[Any]


@pytest.fixture
async def mongo_log() -> AsyncIterator[AuditLog]:
    log = await build_log("mongo", orders=5, changes=20)
    try:
        yield log
    finally:
        await log.store.close()


@pytest.fixture
async def mongo(mongo_log: AuditLog, make_app: AppFactory) -> AsyncIterator[Client]:
    async with AsyncTestClient(make_app(mongo_log.store)) as c:
        yield c


async def test_streams_and_entities(mongo: Client, mongo_log: AuditLog) -> None:
    events = mongo_log.events
    assert ok(await mongo.get("/v1/streams")) == [
        {
            "stream": "orders",
            "entities": len(by_entity(mongo_log)),
            "events": len(events),
            "last_seq": events[-1].seq,
            "last_event_at": ms(events[-1].occurred_at),
        }
    ]
    assert await walk(mongo, ENTITIES, 3, "items") == expected_entities(mongo_log)
    deleted = [evs[-1] for evs in by_entity(mongo_log).values() if evs[-1].type == DELETED]
    assert deleted, "the simulated log deletes orders"
    items = ok(await mongo.get(ENTITIES))["items"]
    for e in deleted:
        (row,) = [i for i in items if i["entity_key"] == e.entity_key]
        assert row["exists"] is False and row["last_type"] == "deleted"


async def test_history_walk_and_diffs(mongo: Client, mongo_log: AuditLog) -> None:
    for events in (longest(mongo_log), mongo_log.of("ORD-X")):
        seen = await walk(mongo, f"{key_url(events[0])}/history", 1, "events")
        assert len(seen) == len(events)
        for got, e in zip(seen, events, strict=True):
            check_event(got, e)
            assert got["diff"] == expected_diff(events, e.version)
    page = ok(await mongo.get(f"{X}/history?from_version=2&to_version=3"))
    assert [e["version"] for e in page["events"]] == [2, 3]
    created = longest(mongo_log)[0]
    assert created.document is not None
    doc = ok(await mongo.get(f"{key_url(created)}/history?limit=1"))["events"][0]["document"]
    assert doc["total"] == str(created.document["total"].to_decimal())
    assert doc["_id"] == created.entity_key


async def test_state_latest_at_a_time_and_by_version(mongo: Client, mongo_log: AuditLog) -> None:
    events = mongo_log.of("ORD-X")
    check_state(ok(await mongo.get(f"{X}/state")), events, 4)
    for e in events:
        between = ms(e.occurred_at + timedelta(seconds=30))
        check_state(ok(await mongo.get(f"{X}/state", params={"at": between})), events, e.version)
        check_state(
            ok(await mongo.get(f"{X}/state", params={"version": e.version})), events, e.version
        )
    before = ms(events[0].occurred_at - timedelta(milliseconds=1))
    problem(await mongo.get(f"{X}/state", params={"at": before}), 404)
    problem(await mongo.get(f"{X}/state", params={"at": before, "version": 1}), 400)
    problem(await mongo.get(f"{X}/state", params={"at": "2026-01-01T00:03:00"}), 400)
    for evs in by_entity(mongo_log).values():
        if evs[-1].type == DELETED:
            body = ok(await mongo.get(f"{key_url(evs[-1])}/state"))
            assert body["exists"] is False and body["document"] is None


async def test_keys(mongo: Client, mongo_log: AuditLog) -> None:
    body = problem(await mongo.get(f"{ENTITIES}/42/state"), 409)
    assert body["typed_keys"] == ["int:42", "str:42"]
    assert ok(await mongo.get(f"{ENTITIES}/int:42/history"))["events"][0]["entity_id"] == 42
    assert ok(await mongo.get(f"{ENTITIES}/str:42/history"))["events"][0]["entity_id"] == "42"
    assert ok(await mongo.get(f"{ENTITIES}/a%2Fb/state"))["document"]["_id"] == "a/b"
    hexkey = longest(mongo_log)[0].entity_key
    first = ok(await mongo.get(f"{ENTITIES}/oid:{hexkey}/history"))["events"][0]
    assert first["entity_id"] == {"$oid": hexkey}
    problem(await mongo.get(f"{ENTITIES}/nope/history"), 404)
    problem(await mongo.get("/v1/streams/customers/entities"), 404)
    problem(await mongo.get(f"{X}/diff?from_version=3&to_version=1"), 422)


async def test_verify_and_tampering(mongo: Client, mongo_log: AuditLog) -> None:
    events = mongo_log.events
    last = events[-1]
    assert ok(await mongo.get("/v1/verify"))["head_matches"] is True
    wrong = ok(await mongo.get("/v1/verify", params={"head_seq": last.seq, "head_hash": "0" * 64}))
    assert wrong["head_matches"] is False
    assert ok(await mongo.get(f"{X}/verify"))["valid"] is True
    stream = ok(await mongo.get("/v1/streams/orders/verify"))
    assert stream["valid"] is True and stream["events_checked"] == len(events)

    # one byte of ORD-X's version 2 (seq known), as a user with write access could
    target = mongo_log.of("ORD-X")[1]
    assert isinstance(mongo_log.store, MongoStore)
    await mongo_log.store.db[EVENTS].update_one(
        {"seq": target.seq}, {"$set": {"changes.updatedFields.status": "pair"}}
    )
    entity = ok(await mongo.get(f"{X}/verify"))
    assert entity["valid"] is False and entity["first_invalid_version"] == 2
    assert entity["reason"]
    stream = ok(await mongo.get("/v1/streams/orders/verify"))
    assert stream["valid"] is False
    assert [(i["entity_key"], i["first_invalid_version"]) for i in stream["invalid"]] == [
        ("ORD-X", 2)
    ]
    log = ok(await mongo.get("/v1/verify"))
    assert log["valid"] is False and log["first_invalid_seq"] == target.seq
    # the other entities are untouched
    assert ok(await mongo.get(f"{ENTITIES}/str:a%2Fb/verify"))["valid"] is True
