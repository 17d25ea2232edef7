"""The memory feed's documents: held by `_id`, found by key, written with mongomock's semantics."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from pymongo.errors import DuplicateKeyError, WriteError

from eventstore.clock import FakeClock
from eventstore.sources.feed_documents import addressed_ids
from eventstore.sources.memory import MemoryChangeFeed

START = datetime(2026, 8, 1, 10, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def feed() -> MemoryChangeFeed:
    return MemoryChangeFeed(clock=FakeClock(START))


def test_filters_that_name_their_ids_are_lookups_and_the_rest_scans() -> None:
    assert addressed_ids({"_id": 5, "status": "paid"}) == [5]
    assert addressed_ids({"_id": {"$eq": "a"}}) == ["a"]
    assert addressed_ids({"_id": {"$in": [1, 2]}}) == [1, 2]
    assert addressed_ids({"_id": {"a": 1, "b": "x"}}) == [{"a": 1, "b": "x"}]  # a document _id
    assert addressed_ids({"status": "paid"}) is None
    assert addressed_ids({"_id": {"$gt": 1}}) is None
    assert addressed_ids({"_id": re.compile("^a")}) is None
    assert addressed_ids({"_id": {"$in": [re.compile("^a")]}}) is None


async def test_a_document_id_is_found_by_key(feed: MemoryChangeFeed) -> None:
    orders = feed.collection("orders")
    key = {"region": "eu", "n": 7}
    await orders.insert_many([{"_id": {"region": "us", "n": i}} for i in range(20)])
    await orders.insert_one({"_id": key, "status": "pending"})
    before = feed.documents.examined
    await orders.update_one({"_id": key}, {"$set": {"status": "paid"}})
    assert feed.documents.examined - before == 1
    assert await orders.find_one({"_id": key}) == {"_id": key, "status": "paid"}


async def test_an_aware_datetime_id_is_found_as_mongodb_stores_it(feed: MemoryChangeFeed) -> None:
    orders = feed.collection("orders")
    await orders.insert_one({"_id": START, "n": 1})
    await orders.update_one({"_id": START}, {"$inc": {"n": 1}})
    doc = await orders.find_one({"_id": START})
    assert doc == {"_id": START.replace(microsecond=123000), "n": 2}
    assert feed.position == 2


async def test_an_upsert_onto_an_existing_id_that_does_not_match_is_a_duplicate_key(
    feed: MemoryChangeFeed,
) -> None:
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 1, "status": "paid"})
    with pytest.raises(DuplicateKeyError):
        await orders.update_one({"_id": 1, "status": "pending"}, {"$set": {"n": 1}}, upsert=True)
    assert await orders.find({}) == [{"_id": 1, "status": "paid"}]
    assert feed.position == 1


async def test_a_write_that_fails_changes_nothing_and_records_nothing(
    feed: MemoryChangeFeed,
) -> None:
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 1, "n": 1})
    with pytest.raises(WriteError):
        await orders.update_one({"_id": 1}, {"$set": {"_id": 2, "n": 5}})  # _id is immutable
    with pytest.raises(DuplicateKeyError):
        await orders.insert_one({"_id": 1, "n": 9})
    assert await orders.find({}) == [{"_id": 1, "n": 1}]
    assert feed.position == 1
    # The next write goes on from the stored document, untouched by the failed ones.
    await orders.update_one({"_id": 1}, {"$inc": {"n": 1}})
    assert await orders.find_one({"_id": 1}) == {"_id": 1, "n": 2}


async def test_natural_order_survives_updates_and_a_reinsert_goes_last(
    feed: MemoryChangeFeed,
) -> None:
    orders = feed.collection("orders")
    await orders.insert_many([{"_id": i} for i in (3, 1, 2)])
    await orders.update_one({"_id": 1}, {"$set": {"x": 1}})
    await orders.replace_one({"_id": 3}, {"y": 2})
    assert [d["_id"] for d in await orders.find({})] == [3, 1, 2]
    await orders.delete_one({"_id": 3})
    await orders.insert_one({"_id": 3})
    assert [d["_id"] for d in await orders.find({})] == [1, 2, 3]
    docs = await orders.find({"_id": {"$in": [3, 1]}})
    assert [d["_id"] for d in docs] == [1, 3]


async def test_a_returned_document_is_a_copy(feed: MemoryChangeFeed) -> None:
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 1, "items": [{"q": 1}]})
    doc = await orders.find_one({"_id": 1})
    assert doc is not None
    doc["items"][0]["q"] = 99
    assert await orders.find_one({"_id": 1}) == {"_id": 1, "items": [{"q": 1}]}


async def test_collections_exist_from_their_first_write_until_dropped(
    feed: MemoryChangeFeed,
) -> None:
    orders = feed.collection("orders")
    assert await feed.collection_names() == []
    await orders.update_one({"_id": 1}, {"$set": {"n": 1}})  # no match, no upsert: nothing
    assert await feed.collection_names() == []
    await orders.insert_one({"_id": 1})
    await orders.delete_one({"_id": 1})
    assert await feed.collection_names() == ["orders"]  # empty, but it exists
    assert await feed.drop_collection("orders") is True
    assert await feed.collection_names() == []
