"""Events larger than one MongoDB document: captured, read back whole, verified and erased.

MongoDB stores no document over 16 MiB; a replace of a large document with
pre-images on makes an event twice its size. The mongo adapter stores such an
event's payload in parts (`eventstore/mongo/payload_parts.py`). Here its limit is
lowered to a few KiB so that ordinary test documents cross it; the memory adapter
has no limit, and both must give the same answers.
"""

from __future__ import annotations

from typing import Any, cast

import bson
import pytest

from eventstore.clock import FakeClock
from eventstore.history import History
from eventstore.model import REPLACED, UPDATED
from eventstore.mongo.eventlog import MongoEventLog
from eventstore.mongo.payload_parts import PARTS_FIELD, PayloadPartsError
from eventstore.mongo.store import MongoStore
from eventstore.ports import Store
from eventstore.settings import Settings
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.verification import verify_log
from tests.helpers import LogBuilder
from tests.integration.ingest_helpers import all_events, ingester
from tests.integration.test_erasure import erase

LIMIT = 4096
BIG = "x" * 3000  # one such field fits a document; two (a replace with its pre-image) do not


def with_small_documents(store: Store) -> None:
    """Lower the mongo adapter's document limit to LIMIT (the memory adapter has none)."""
    if isinstance(store, MongoStore):
        cast(MongoEventLog, store.events).max_document_bytes = LIMIT


async def stored_docs(store: Store, collection: str) -> list[dict[str, Any]]:
    assert isinstance(store, MongoStore)
    return await store.db[collection].find({}).to_list(None)


async def capture_large_orders(store: Store, clock: FakeClock) -> MemoryChangeFeed:
    """A: created, updated and replaced with large fields (pre-images on); B: small."""
    feed = MemoryChangeFeed(clock=clock)
    feed.enable_pre_images("orders")
    orders = feed.collection("orders")
    await ingester(store, feed, clock, pre_images="when-available").run(until_idle=True)
    await orders.insert_one({"_id": "A", "note": BIG, "status": "new", "updatedBy": "alice"})
    await orders.insert_one({"_id": "B", "status": "new", "updatedBy": "bob"})
    await orders.update_one({"_id": "A"}, {"$set": {"status": "paid", "memo": BIG}})
    await orders.replace_one({"_id": "A"}, {"_id": "A", "status": "shipped", "note": BIG + "!"})
    await ingester(store, feed, clock, pre_images="when-available").run(until_idle=True)
    return feed


async def test_events_over_the_document_limit_read_back_whole_and_verify(
    store: Store, clock: FakeClock
) -> None:
    with_small_documents(store)
    await capture_large_orders(store, clock)

    events = await all_events(store)
    a = [e for e in events if e.entity_key == "A"]
    assert [e.type for e in a] == ["created", UPDATED, REPLACED]
    assert a[1].changes is not None and a[1].changes["updatedFields"]["memo"] == BIG
    assert a[1].before == {"_id": "A", "note": BIG, "status": "new", "updatedBy": "alice"}
    assert a[2].document == {"_id": "A", "status": "shipped", "note": BIG + "!"}
    assert a[2].before is not None and a[2].before["memo"] == BIG
    # Every read path gives the same events.
    assert await store.events.read_entity("orders", "A") == a
    verdict = await verify_log(store.events, None)
    assert verdict.valid and verdict.events_checked == len(events)
    history = History.from_settings(store, Settings(uri="memory://", source="simulator"))
    state = await history.state("orders", "A", version=2)
    assert state.document == {
        "_id": "A",
        "note": BIG,
        "status": "paid",
        "updatedBy": "alice",
        "memo": BIG,
    }
    assert not state.findings  # the pre-images agree with the fold
    changes = (await history.diff("orders", "A", 2, 3)).changes
    assert {c.path: c.op for c in changes} == {
        "note": "changed",
        "status": "changed",
        "updatedBy": "removed",
        "memo": "removed",
    }


async def test_on_mongo_no_stored_document_is_over_the_limit(clock: FakeClock) -> None:
    from tests.integration.conftest import open_test_store

    store = await open_test_store("mongo")
    try:
        with_small_documents(store)
        await capture_large_orders(store, clock)
        docs = await stored_docs(store, "events")
        parts = await stored_docs(store, "event_payloads")
        sizes = [len(bson.encode(d)) for d in docs + parts]
        assert max(sizes) <= LIMIT
        split = {d["version"]: d[PARTS_FIELD] for d in docs if PARTS_FIELD in d}
        # The update (changes + pre-image) and the replace (document + pre-image) are split.
        assert sorted(split) == [2, 3]
        assert all(d["document"] is None and d["before"] is None for d in docs if PARTS_FIELD in d)
        assert sum(s["count"] for s in split.values()) == len(parts)
    finally:
        await store.close()


async def test_a_redelivered_batch_stores_each_part_once(store: Store) -> None:
    with_small_documents(store)
    log = LogBuilder()
    events = [
        log.next("A", document={"_id": "A", "note": BIG * 2}),
        log.next("B"),
        log.next("A", REPLACED, document={"_id": "A", "note": BIG * 3}),
    ]

    assert await store.events.append(events) == 3
    assert await store.events.append(events) == 0

    assert await store.events.read() == events
    if isinstance(store, MongoStore):
        parts = await stored_docs(store, "event_payloads")
        named = [
            d[PARTS_FIELD]["count"] for d in await stored_docs(store, "events") if PARTS_FIELD in d
        ]
        assert len(named) == 2 and len(parts) == sum(named) == 3 + 5


async def test_erasure_removes_the_parts_of_the_erased_entity_only(
    store: Store, clock: FakeClock
) -> None:
    with_small_documents(store)
    feed = await capture_large_orders(store, clock)
    await feed.collection("orders").update_one({"_id": "B"}, {"$set": {"note": BIG * 2}})
    await ingester(store, feed, clock, pre_images="when-available").run(until_idle=True)

    await erase(store, "A", clock)
    await ingester(store, feed, clock, pre_images="when-available").run(until_idle=True)

    events = await all_events(store)
    a = [e for e in events if e.entity_key == "A"]
    assert len(a) == 3 and all(e.erased and e.document is e.changes is e.before is None for e in a)
    b = [e for e in events if e.entity_key == "B"]
    assert b[-1].changes is not None and b[-1].changes["updatedFields"]["note"] == BIG * 2
    verdict = await verify_log(store.events, None)
    assert verdict.valid and verdict.events_erased == 3
    if isinstance(store, MongoStore):
        parts = await stored_docs(store, "event_payloads")
        assert parts and {p["entity_id"] for p in parts} == {"B"}
        erased = [d for d in await stored_docs(store, "events") if d["entity_id"] == "A"]
        assert not any(PARTS_FIELD in d for d in erased)


async def test_a_missing_part_is_an_error_not_a_different_payload(clock: FakeClock) -> None:
    from tests.integration.conftest import open_test_store

    store = await open_test_store("mongo")
    try:
        with_small_documents(store)
        await capture_large_orders(store, clock)
        assert isinstance(store, MongoStore)
        part = await store.db["event_payloads"].find_one({"n": 1})
        assert part is not None
        await store.db["event_payloads"].delete_one({"_id": part["_id"]})

        with pytest.raises(PayloadPartsError, match=r"part 1 of its payload .* is missing"):
            await all_events(store)
    finally:
        await store.close()
