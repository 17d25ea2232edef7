"""Every key a stream's entity listing hands out opens that entity, given back as it is.

Outside testing found `.` and `..` (which URLs resolve away), `""` (an empty path
segment), and a bare `42` naming both the integer 42 and the string "42" (a 409).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from bson import ObjectId
from litestar.testing import AsyncTestClient

from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.sources.memory import MemoryChangeFeed
from projections.orders import ORDER_SUMMARY
from projections.runner import ProjectionRunner
from tests.api.conftest import AppFactory
from tests.helpers import LogBuilder
from tests.integration.conftest import open_test_store
from tests.integration.ingest_helpers import ingester, start_from_the_beginning

OID = ObjectId("65f000000000000000000042")
IDS: list[Any] = [42, "42", ".", "..", "", str(OID), OID, "plain", 7, "$stream"]


@pytest.mark.parametrize("kind", ["memory", "mongo"])
async def test_each_listed_key_opens_its_entity(kind: str, make_app: AppFactory) -> None:
    store = await open_test_store(kind)
    try:
        log = LogBuilder()
        events = [log.next(entity_id) for entity_id in IDS]
        await store.events.append(events)
        await store.events.index_listings(events)
        async with AsyncTestClient(make_app(store)) as client:
            r = await client.get("/v1/streams/orders/entities", params={"limit": 100})
            assert r.status_code == 200, r.text
            listed = {item["entity_key"]: item["entity_id"] for item in r.json()["items"]}
            assert set(listed) == {
                "int:42",
                "str:42",
                "str:.",
                "str:..",
                "str:",
                f"str:{OID}",
                f"oid:{OID}",
                "plain",
                "7",
                "str:$stream",  # the string "$stream": its bare key names the stream's record
            }
            for key, entity_id in listed.items():
                state = await client.get(f"/v1/streams/orders/entities/{quote(key, safe='')}/state")
                assert state.status_code == 200, (key, state.text)
                # documents are shown as plain JSON: an ObjectId as its hex
                shown = entity_id["$oid"] if isinstance(entity_id, dict) else entity_id
                assert state.json()["document"]["_id"] == shown, key
    finally:
        await store.close()


@pytest.mark.parametrize("kind", ["memory", "mongo"])
async def test_the_state_and_history_answers_name_the_entity_as_the_listing_does(
    kind: str, make_app: AppFactory
) -> None:
    store = await open_test_store(kind)
    try:
        log = LogBuilder()
        events = [log.next(entity_id) for entity_id in IDS]
        await store.events.append(events)
        await store.events.index_listings(events)
        async with AsyncTestClient(make_app(store)) as client:
            r = await client.get("/v1/streams/orders/entities", params={"limit": 100})
            listed = [item["entity_key"] for item in r.json()["items"]]
            # Each listed key is answered as it is; a typed key whose bare key could name
            # another value stays typed (no look-up of what else exists).
            asked = [(key, key) for key in listed] + [
                ("int:7", "int:7"),
                ("str:plain", "plain"),
                ("str:42", "str:42"),
                (f"oid:{OID}", f"oid:{OID}"),
            ]
            for key, named in asked:
                for tail in ("state", "history"):
                    path = f"/v1/streams/orders/entities/{quote(key, safe='')}/{tail}"
                    answer = await client.get(path)
                    assert answer.status_code == 200, (key, answer.text)
                    assert answer.json()["entity_key"] == named, (key, tail)
                    # ... which, given back, opens the same entity
                    again = await client.get(
                        f"/v1/streams/orders/entities/{quote(named, safe='')}/{tail}"
                    )
                    assert again.json() == answer.json(), (key, tail)
    finally:
        await store.close()


@pytest.mark.parametrize("kind", ["memory", "mongo"])
async def test_each_event_s_typed_key_opens_its_entity(kind: str, make_app: AppFactory) -> None:
    # An event keeps the key it was stored with (`entity_key`): for the string "int:5" that
    # key reads as the integer 5, "" is an empty path segment and the bare 42 names two
    # entities. Outside testing found webhook templates and the explorer's links built from
    # it landing on a 404 or a 409. `typed_key` names the event's entity alone.
    store = await open_test_store(kind)
    try:
        log = LogBuilder()
        ids = [*IDS, "int:5", 5]
        events = [log.next(entity_id) for entity_id in ids]
        await store.events.append(events)
        await store.events.index_listings(events)
        async with AsyncTestClient(make_app(store)) as client:
            r = await client.get("/v1/events", params={"limit": 100})
            assert r.status_code == 200, r.text
            got = r.json()["events"]
            assert [e["typed_key"] for e in got][-4:] == [
                "int:7",
                "str:$stream",
                "str:int:5",
                "int:5",
            ]
            for e in got:
                path = f"/v1/streams/orders/entities/{quote(e['typed_key'], safe='')}/history"
                history = await client.get(path)
                assert history.status_code == 200, (e["typed_key"], history.text)
                assert [h["seq"] for h in history.json()["events"]] == [e["seq"]]
    finally:
        await store.close()


async def test_a_document_whose_id_is_the_string_dollar_stream_is_an_entity_like_any_other(
    make_app: AppFactory,
) -> None:
    # Outside testing: its events share the stream record's key `$stream`; the listing
    # (which told the record by that key) left it out, and its state was refused as "the
    # stream's own record". The record is told by its null `_id` now.
    clock = FakeClock()
    store = MemoryStore()
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    orders = feed.collection("orders")
    await orders.insert_one({"_id": "$stream", "status": "new"})
    await orders.update_one({"_id": "$stream"}, {"$set": {"status": "paid"}})
    await orders.insert_one({"_id": "str:$stream", "status": "new"})
    await ingester(store, feed, clock).run(until_idle=True)
    # Two orders, two rows: keyed by typed key, `str:$stream` and `str:str:$stream`.
    await ProjectionRunner(store, ORDER_SUMMARY, clock=clock).rebuild_now()
    keys = ["str:$stream", "str:str:$stream"]
    rows = await store.read_models.get_many(ORDER_SUMMARY.collection, keys)
    assert sorted(rows) == keys and {r["status"] for r in rows.values()} == {"paid", "new"}
    async with AsyncTestClient(make_app(store)) as client:
        listed = (await client.get("/v1/streams/orders/entities")).json()["items"]
        assert sorted((i["entity_key"], i["version"]) for i in listed) == [
            ("str:$stream", 2),
            ("str:str:$stream", 1),
        ]
        state = await client.get("/v1/streams/orders/entities/str:%24stream/state")
        assert state.status_code == 200, state.text
        assert (state.json()["entity_key"], state.json()["document"]) == (
            "str:$stream",
            {"_id": "$stream", "status": "paid"},
        )
        events = (await client.get("/v1/events")).json()["events"]
        # Stored with its own text, as every string `_id` is; its typed key names it alone.
        assert {(e["entity_key"], e["typed_key"]) for e in events} == {
            ("$stream", "str:$stream"),
            ("str:$stream", "str:str:$stream"),
        }
        # The stream's own record keeps its key: it has a history, not a state.
        record = await client.get("/v1/streams/orders/entities/%24stream/state")
        assert record.status_code in (400, 404), record.text


@pytest.mark.parametrize("same_batch", [False, True])
async def test_a_drop_infers_the_deletion_of_a_document_whose_id_is_dollar_stream(
    same_batch: bool,
) -> None:
    # The live entities a drop infers deletions for skipped any entity keyed `$stream`, in
    # the store's listing and among the heads of the batch: the record's, and this
    # document's too. The record is told by its null `_id` now.
    clock = FakeClock()
    store = MemoryStore()
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    orders = feed.collection("orders")
    await orders.insert_one({"_id": "$stream", "status": "new"})
    await orders.insert_one({"_id": "plain", "status": "new"})
    capture = ingester(store, feed, clock)
    if not same_batch:  # stored before the drop
        await capture.run(until_idle=True)
    await feed.drop_collection("orders")
    await capture.run(until_idle=True)
    events = await store.events.read(after_seq=0, limit=100)
    deleted = sorted(e.entity_id for e in events if e.type == "deleted" and e.inferred)
    assert deleted == ["$stream", "plain"]
