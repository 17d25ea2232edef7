"""The memory change feed: MongoDB's event shapes for each write, tokens, resuming, lifecycle."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import Binary, Decimal128, Timestamp
from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError

from eventstore.clock import FakeClock
from eventstore.model import ChangeEvent, ResumePoint
from eventstore.ports import ChangeStream, HistoryLost, SourceError
from eventstore.sources.memory import MemoryChangeFeed, MemoryChangeSource, token_position
from eventstore.sources.update_description import apply_update_description, describe_update

START = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def feed(clock: FakeClock) -> MemoryChangeFeed:
    return MemoryChangeFeed(clock=clock)


def source(feed: MemoryChangeFeed, **options: Any) -> MemoryChangeSource:
    options.setdefault("max_await", 0.01)
    return feed.source(["orders"], **options)


async def read_all(stream: ChangeStream) -> list[dict[str, Any]]:
    """Every change until the stream is idle (an empty batch) or closed."""
    changes: list[dict[str, Any]] = []
    while True:
        batch = await stream.next_batch()
        if batch is None or not batch.changes:
            return changes
        changes += batch.changes


async def history(
    feed: MemoryChangeFeed, resume: ResumePoint | None = None
) -> list[dict[str, Any]]:
    async with source(feed).watch(
        resume or ResumePoint(start_at_operation_time=Timestamp(0, 0))
    ) as s:
        return await read_all(s)


async def update_of(feed: MemoryChangeFeed, doc: dict[str, Any], update: Any) -> dict[str, Any]:
    """The change event of one update applied to a freshly inserted document."""
    orders = feed.collection("orders")
    await orders.insert_one(doc)
    await orders.update_one({"_id": doc["_id"]}, update)
    changes = await history(feed)
    assert [c["operationType"] for c in changes] == ["insert", "update"]
    return changes[-1]


def described(change: dict[str, Any]) -> dict[str, Any]:
    return dict(change["updateDescription"])


def desc(updated: dict[str, Any] | None = None, **rest: Any) -> dict[str, Any]:
    return {
        "updatedFields": updated or {},
        "removedFields": rest.get("removed", []),
        "truncatedArrays": rest.get("truncated", []),
        "disambiguatedPaths": rest.get("paths", {}),
    }


# -- the envelope -------------------------------------------------------------------------------


async def test_insert_event_has_mongodb_envelope_and_full_document(feed: MemoryChangeFeed) -> None:
    await feed.collection("orders").insert_one({"_id": 7, "status": "pending", "at": START})
    [change] = await history(feed)
    assert set(change) == {
        "_id",
        "operationType",
        "clusterTime",
        "wallTime",
        "collectionUUID",
        "fullDocument",
        "ns",
        "documentKey",
    }
    assert change["operationType"] == "insert"
    assert change["ns"] == {"db": "shop", "coll": "orders"}
    assert change["documentKey"] == {"_id": 7}
    # Stored at millisecond precision and read back aware, as PyMongo with tz_aware does.
    at = START.replace(microsecond=123000)
    assert change["fullDocument"] == {"_id": 7, "status": "pending", "at": at}
    assert change["wallTime"] == at and change["wallTime"].tzinfo is not None
    assert change["clusterTime"] == Timestamp(int(START.timestamp()), 1)
    assert isinstance(change["collectionUUID"], Binary) and change["collectionUUID"].subtype == 4
    assert ChangeEvent.from_bson(change).token_id == change["_id"]["_data"]


async def test_tokens_and_cluster_times_strictly_increase(
    feed: MemoryChangeFeed, clock: FakeClock
) -> None:
    orders = feed.collection("orders")
    for i in range(12):
        await orders.insert_one({"_id": i})
        if i % 5 == 4:
            clock.advance(1.5)
    changes = await history(feed)
    tokens = [c["_id"]["_data"] for c in changes]
    times = [c["clusterTime"] for c in changes]
    assert len({len(t) for t in tokens}) == 1  # fixed width: string order is time order
    assert tokens == sorted(tokens) and len(set(tokens)) == 12
    assert all(a < b for a, b in itertools.pairwise(times))
    assert feed.last_token == changes[-1]["_id"]


# -- update descriptions --------------------------------------------------------------------------


async def test_set_of_a_nested_field_reports_the_dotted_path(feed: MemoryChangeFeed) -> None:
    change = await update_of(
        feed,
        {"_id": 1, "shipping": {"city": "Lyon", "zip": "69001"}},
        {"$set": {"shipping.city": "Porto"}},
    )
    assert described(change) == desc({"shipping.city": "Porto"})
    assert "fullDocument" not in change
    assert change["documentKey"] == {"_id": 1}


async def test_inc_is_reported_as_the_resulting_value(feed: MemoryChangeFeed) -> None:
    change = await update_of(feed, {"_id": 1, "qty": 1}, {"$inc": {"qty": 2}})
    assert described(change) == desc({"qty": 3})


async def test_push_onto_three_items_reports_index_three(feed: MemoryChangeFeed) -> None:
    change = await update_of(feed, {"_id": 1, "items": ["a", "b", "c"]}, {"$push": {"items": "d"}})
    assert described(change) == desc({"items.3": "d"})


async def test_push_each_reports_every_appended_index(feed: MemoryChangeFeed) -> None:
    change = await update_of(
        feed, {"_id": 1, "items": [1]}, {"$push": {"items": {"$each": [2, 3]}}}
    )
    assert described(change) == desc({"items.1": 2, "items.2": 3})


async def test_push_into_an_empty_array_reports_the_whole_array(feed: MemoryChangeFeed) -> None:
    change = await update_of(feed, {"_id": 1, "items": []}, {"$push": {"items": {"sku": "A"}}})
    assert described(change) == desc({"items": [{"sku": "A"}]})


async def test_push_with_position_reports_the_whole_array(feed: MemoryChangeFeed) -> None:
    change = await update_of(
        feed, {"_id": 1, "items": [2, 3]}, {"$push": {"items": {"$each": [1], "$position": 0}}}
    )
    assert described(change) == desc({"items": [1, 2, 3]})


async def test_pull_reports_the_whole_array(feed: MemoryChangeFeed) -> None:
    items = [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}, {"sku": "C", "qty": 3}]
    change = await update_of(feed, {"_id": 1, "items": items}, {"$pull": {"items": {"sku": "B"}}})
    assert described(change) == desc({"items": [items[0], items[2]]})


async def test_pop_reports_the_whole_array(feed: MemoryChangeFeed) -> None:
    change = await update_of(feed, {"_id": 1, "tags": ["x", "y", "z"]}, {"$pop": {"tags": 1}})
    assert described(change) == desc({"tags": ["x", "y"]})


async def test_set_of_an_item_quantity_reports_the_element_path(feed: MemoryChangeFeed) -> None:
    items = [{"sku": s, "qty": 1, "unit_price": Decimal128("2.50")} for s in "ABC"]
    change = await update_of(
        feed,
        {"_id": 1, "items": items, "total": Decimal128("7.50")},
        {"$set": {"items.2.qty": 4, "total": Decimal128("15.00")}},
    )
    assert described(change) == desc({"items.2.qty": 4, "total": Decimal128("15.00")})


async def test_nested_unset_lists_each_removed_field(feed: MemoryChangeFeed) -> None:
    change = await update_of(
        feed,
        {"_id": 1, "customer": {"name": "Ada", "email": "a@x", "phone": "1"}},
        {"$unset": {"customer.email": "", "customer.phone": ""}},
    )
    assert described(change) == desc(removed=["customer.email", "customer.phone"])


async def test_rename_reports_removed_source_and_updated_target(feed: MemoryChangeFeed) -> None:
    change = await update_of(feed, {"_id": 1, "note": "hi"}, {"$rename": {"note": "comment"}})
    assert described(change) == desc({"comment": "hi"}, removed=["note"])


async def test_set_under_a_missing_parent_reports_the_topmost_created_field(
    feed: MemoryChangeFeed,
) -> None:
    change = await update_of(feed, {"_id": 1}, {"$set": {"meta.source.app": "web"}})
    assert described(change) == desc({"meta": {"source": {"app": "web"}}})


async def test_set_of_a_whole_sub_document_reports_it_whole(feed: MemoryChangeFeed) -> None:
    change = await update_of(
        feed,
        {"_id": 1, "shipping": {"city": "Lyon", "zip": "1"}},
        {"$set": {"shipping": {"city": "Porto", "zip": "1"}}},
    )
    assert described(change) == desc({"shipping": {"city": "Porto", "zip": "1"}})


async def test_numeric_field_name_of_a_sub_document_is_disambiguated(
    feed: MemoryChangeFeed,
) -> None:
    change = await update_of(
        feed,
        {"_id": 1, "byQuarter": {"1": 10, "2": 20}, "items": [{"qty": 1}, {"qty": 2}]},
        {"$set": {"byQuarter.1": 11, "items.1.qty": 3}},
    )
    # "byQuarter.1" names a field; "items.1" indexes an array and is not ambiguous.
    assert described(change) == desc(
        {"byQuarter.1": 11, "items.1.qty": 3}, paths={"byQuarter.1": ["byQuarter", "1"]}
    )


async def test_field_name_with_a_dot_is_disambiguated(feed: MemoryChangeFeed) -> None:
    big = "x" * 64
    change = await update_of(
        feed,
        {"_id": 1, "meta": {"a.b": 1, "pad": big}},
        [{"$set": {"meta": {"$literal": {"a.b": 2, "pad": big}}}}],
    )
    assert described(change) == desc({"meta.a.b": 2}, paths={"meta.a.b": ["meta", "a.b"]})


async def test_pipeline_shrink_reports_truncated_arrays(feed: MemoryChangeFeed) -> None:
    big = "x" * 64
    change = await update_of(
        feed,
        {"_id": 1, "log": [big, big, big]},
        [{"$set": {"log": {"$slice": ["$log", 2]}}}],
    )
    assert described(change) == desc(truncated=[{"field": "log", "newSize": 2}])


async def test_pipeline_rewrite_of_most_fields_is_reported_as_a_replace(
    feed: MemoryChangeFeed,
) -> None:
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 1, "a": 1, "b": 2, "c": 3})
    await orders.update_one({"_id": 1}, [{"$replaceRoot": {"newRoot": {"_id": 1, "d": 4}}}])
    changes = await history(feed)
    # The diff (three removals, one new field) is larger than the new document.
    assert changes[-1]["operationType"] == "replace"
    assert changes[-1]["fullDocument"] == {"_id": 1, "d": 4}


async def test_no_op_update_records_no_event(feed: MemoryChangeFeed) -> None:
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 1, "status": "paid"})
    await orders.update_one({"_id": 1}, {"$set": {"status": "paid"}})
    await orders.update_one({"_id": 2}, {"$set": {"status": "paid"}})  # no match
    assert [c["operationType"] for c in await history(feed)] == ["insert"]


@pytest.mark.parametrize(
    ("doc", "update"),
    [
        ({"a": {"b": [1, {"c": 2}]}}, {"$set": {"a.b.1.c": 3}}),
        ({"a": [1, 2, 3, 4]}, {"$addToSet": {"a": 9}}),
        ({"a": [1, 2, 2, 3]}, {"$pullAll": {"a": [2]}}),
        ({"a": 5}, {"$min": {"a": 1}, "$max": {"b": 7}}),
        ({"a": {"x": 1}}, {"$unset": {"a": ""}, "$set": {"b.c": [1]}}),
        ({"items": [{"q": 1}, {"q": 2}]}, {"$set": {"items.$.q": 9}}),
        ({"a": [3, 1, 2]}, {"$push": {"a": {"$each": [0], "$sort": 1}}}),
        ({"a": [1, 2, 3]}, {"$push": {"a": {"$each": [], "$slice": 1}}}),
        ({"a": {"1": {"2": "x"}}}, {"$set": {"a.1.2": "y"}}),
        ({"a": 1, "b": [1, 2], "c": {"d": 1}}, [{"$set": {"b": [1, 2, 3], "c": {"d": 2}}}]),
    ],
)
async def test_every_description_reproduces_the_new_document(
    feed: MemoryChangeFeed, doc: dict[str, Any], update: Any
) -> None:
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 1, **doc})
    before = await orders.find_one({"_id": 1})
    filter_ = {"_id": 1, "items.q": 2} if "items.$.q" in str(update) else {"_id": 1}
    await orders.update_one(filter_, update)
    after = await orders.find_one({"_id": 1})
    change = (await history(feed))[-1]
    assert before is not None and after is not None
    assert change["operationType"] == "update"
    assert apply_update_description(before, change["updateDescription"]) == after


def test_description_of_an_operator_update_matches_the_server_examples() -> None:
    # From the server's own tests: a whole array $set, an element path, a numeric field name.
    before = {"_id": 1, "arr": [0, 1, 2, 3], "o": {"0": {"1": "numeric"}}, "t": [[0, [5]]]}
    after = {"_id": 1, "arr": [0], "o": {"0": {"1": "updated"}}, "t": [[0, [6]]]}
    update = {"$set": {"arr": [0], "o.0.1": "updated", "t.0.1.0": 6}}
    assert describe_update(before, after, update) == desc(
        {"arr": [0], "o.0.1": "updated", "t.0.1.0": 6}, paths={"o.0.1": ["o", "0", "1"]}
    )


# -- other writes -----------------------------------------------------------------------------------


async def test_replace_carries_the_new_document_and_delete_only_the_key(
    feed: MemoryChangeFeed,
) -> None:
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 1, "status": "pending"})
    await orders.replace_one({"_id": 1}, {"status": "paid", "note": "x"})
    await orders.delete_one({"_id": 1})
    _, replaced, deleted = await history(feed)
    assert replaced["operationType"] == "replace"
    assert replaced["fullDocument"] == {"_id": 1, "status": "paid", "note": "x"}
    assert "updateDescription" not in replaced
    assert deleted["operationType"] == "delete"
    assert deleted["documentKey"] == {"_id": 1}
    assert "fullDocument" not in deleted and "fullDocumentBeforeChange" not in deleted


async def test_many_writes_record_one_event_per_document(feed: MemoryChangeFeed) -> None:
    orders = feed.collection("orders")
    await orders.insert_many([{"_id": i, "status": "pending"} for i in range(3)])
    await orders.update_many({"_id": {"$gte": 1}}, {"$set": {"status": "paid"}})
    await orders.delete_many({"status": "paid"})
    changes = await history(feed)
    assert [(c["operationType"], c["documentKey"]["_id"]) for c in changes] == [
        ("insert", 0),
        ("insert", 1),
        ("insert", 2),
        ("update", 1),
        ("update", 2),
        ("delete", 1),
        ("delete", 2),
    ]
    assert await orders.count_documents({}) == 1


async def test_insert_many_records_the_inserted_part_of_a_failed_batch(
    feed: MemoryChangeFeed,
) -> None:
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 2})
    with pytest.raises(BulkWriteError):
        await orders.insert_many([{"_id": 1}, {"_id": 2}, {"_id": 3}])
    keys = [c["documentKey"]["_id"] for c in await history(feed)]
    assert keys == [2, 1]


async def test_upsert_records_an_insert(feed: MemoryChangeFeed) -> None:
    orders = feed.collection("orders")
    result = await orders.update_one({"_id": 5}, {"$set": {"status": "new"}}, upsert=True)
    assert result.upserted_id == 5
    [change] = await history(feed)
    assert change["operationType"] == "insert"
    assert change["fullDocument"] == {"_id": 5, "status": "new"}


async def test_find_one_and_update_returns_the_chosen_image_and_records_the_update(
    feed: MemoryChangeFeed,
) -> None:
    orders = feed.collection("orders")
    await orders.insert_many([{"_id": 1, "n": 1}, {"_id": 2, "n": 5}])
    old = await orders.find_one_and_update({}, {"$inc": {"n": 1}}, sort=[("n", -1)])
    new = await orders.find_one_and_update(
        {"_id": 1}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER
    )
    assert old == {"_id": 2, "n": 5}
    assert new == {"_id": 1, "n": 2}
    updates = [c for c in await history(feed) if c["operationType"] == "update"]
    assert [(c["documentKey"]["_id"], described(c)["updatedFields"]) for c in updates] == [
        (2, {"n": 6}),
        (1, {"n": 2}),
    ]


async def test_reads_pass_through_with_aware_datetimes(feed: MemoryChangeFeed) -> None:
    orders = feed.collection("orders")
    await orders.insert_many([{"_id": i, "at": START} for i in (3, 1, 2)])
    docs = await orders.find({}, sort=[("_id", -1)], limit=2)
    assert [d["_id"] for d in docs] == [3, 2]
    assert all(d["at"].tzinfo is not None for d in docs)
    assert await orders.count_documents({"_id": {"$gt": 1}}) == 2
    assert await orders.find_one({"_id": 9}) is None


# -- reading: resume, horizon, idle -----------------------------------------------------------------


async def test_resume_after_a_token_yields_exactly_the_later_events(
    feed: MemoryChangeFeed,
) -> None:
    orders = feed.collection("orders")
    for i in range(6):
        await orders.insert_one({"_id": i})
    changes = await history(feed)
    after_third = await history(feed, ResumePoint(resume_after=changes[2]["_id"]))
    assert [c["documentKey"]["_id"] for c in after_third] == [3, 4, 5]
    assert after_third == changes[3:]
    started = await history(feed, ResumePoint(start_after=changes[4]["_id"]))
    assert [c["documentKey"]["_id"] for c in started] == [5]


async def test_start_at_operation_time_includes_events_at_that_time(
    feed: MemoryChangeFeed, clock: FakeClock
) -> None:
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 1})
    clock.advance(10)
    await orders.insert_one({"_id": 2})
    second = (await history(feed))[1]
    changes = await history(feed, ResumePoint(start_at_operation_time=second["clusterTime"]))
    assert [c["documentKey"]["_id"] for c in changes] == [2]


async def test_stream_from_now_sees_only_later_writes(feed: MemoryChangeFeed) -> None:
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 1})
    async with source(feed).watch(None) as stream:
        await orders.insert_one({"_id": 2})
        assert [c["documentKey"]["_id"] for c in await read_all(stream)] == [2]


async def test_batches_hold_at_most_batch_size_changes(feed: MemoryChangeFeed) -> None:
    orders = feed.collection("orders")
    for i in range(5):
        await orders.insert_one({"_id": i})
    start = ResumePoint(start_at_operation_time=Timestamp(0, 0))
    async with source(feed, batch_size=2).watch(start) as stream:
        sizes = []
        while (batch := await stream.next_batch()) is not None and batch.changes:
            sizes.append(len(batch.changes))
            assert batch.resume_token == batch.changes[-1]["_id"]
    assert sizes == [2, 2, 1]


async def test_forgotten_history_raises_history_lost(feed: MemoryChangeFeed) -> None:
    orders = feed.collection("orders")
    for i in range(5):
        await orders.insert_one({"_id": i})
    changes = await history(feed)
    feed.forget_before(changes[3]["_id"])
    with pytest.raises(HistoryLost):
        await history(feed, ResumePoint(resume_after=changes[1]["_id"]))
    with pytest.raises(HistoryLost):
        await history(feed, ResumePoint(start_at_operation_time=changes[0]["clusterTime"]))
    later = await history(feed, ResumePoint(resume_after=changes[3]["_id"]))
    assert [c["documentKey"]["_id"] for c in later] == [4]
    feed.forget_before()
    with pytest.raises(HistoryLost):
        await history(feed, ResumePoint(resume_after=changes[3]["_id"]))
    # Nothing after the newest change was lost: resuming there still works.
    assert await history(feed, ResumePoint(resume_after=changes[4]["_id"])) == []


async def test_a_stream_that_falls_behind_a_bounded_history_loses_it(clock: FakeClock) -> None:
    feed = MemoryChangeFeed(clock=clock, history_limit=3)
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 0})
    async with source(feed).watch(ResumePoint(start_at_operation_time=Timestamp(0, 0))) as stream:
        for i in range(1, 6):
            await orders.insert_one({"_id": i})
        with pytest.raises(HistoryLost):
            await stream.next_batch()


async def test_idle_batch_is_empty_and_carries_the_advancing_token(
    feed: MemoryChangeFeed,
) -> None:
    orders, other = feed.collection("orders"), feed.collection("audit_trail")
    await orders.insert_one({"_id": 1})
    async with source(feed).watch(None) as stream:
        idle = await stream.next_batch()
        assert idle is not None and idle.changes == []
        assert idle.resume_token == feed.last_token
        await other.insert_one({"_id": "elsewhere"})  # not captured, but the position moves
        moved = await stream.next_batch()
        assert moved is not None and moved.changes == []
        assert moved.resume_token == feed.last_token
        assert moved.resume_token is not None and idle.resume_token is not None
        assert moved.resume_token["_data"] > idle.resume_token["_data"]
    await orders.insert_one({"_id": 2})
    resumed = await history(feed, ResumePoint(resume_after=moved.resume_token))
    assert [c["documentKey"]["_id"] for c in resumed] == [2]


async def test_a_waiting_stream_wakes_on_a_write(feed: MemoryChangeFeed) -> None:
    async with source(feed, max_await=5.0).watch(None) as stream:
        waiting = asyncio.create_task(stream.next_batch())
        await asyncio.sleep(0.01)
        assert not waiting.done()
        await feed.collection("orders").insert_one({"_id": 1})
        batch = await asyncio.wait_for(waiting, timeout=1.0)
    assert batch is not None and [c["documentKey"] for c in batch.changes] == [{"_id": 1}]


async def test_only_captured_collections_and_database_events_pass(
    feed: MemoryChangeFeed,
) -> None:
    await feed.collection("orders").insert_one({"_id": 1})
    await feed.collection("carts").insert_one({"_id": 2})
    token = feed.inject(
        {"operationType": "reshardCollection", "ns": {"db": "shop", "coll": "orders"}}
    )
    feed.inject({"operationType": "create", "ns": {"db": "shop", "coll": "carts"}})
    changes = await history(feed)
    assert [c["operationType"] for c in changes] == ["insert", "reshardCollection"]
    assert changes[1]["_id"] == token and isinstance(changes[1]["clusterTime"], Timestamp)
    assert changes[1]["wallTime"].tzinfo is not None


async def test_bad_resume_points_raise_source_error(feed: MemoryChangeFeed) -> None:
    await feed.collection("orders").insert_one({"_id": 1})
    token = feed.last_token
    assert token is not None
    for resume in (
        ResumePoint(resume_after={"_data": "not-ours"}),
        ResumePoint(resume_after={"_data": "82" + "F" * 32}),
        ResumePoint(resume_after=token, start_at_operation_time=Timestamp(1, 1)),
    ):
        with pytest.raises(SourceError):
            await history(feed, resume)


# -- lifecycle ------------------------------------------------------------------------------------


async def test_drop_and_rename_events(feed: MemoryChangeFeed) -> None:
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 1})
    uuid = (await history(feed))[0]["collectionUUID"]
    await feed.rename_collection("orders", "orders_old")
    await feed.collection("orders").insert_one({"_id": 2})
    assert await feed.drop_collection("orders") is True
    assert await feed.drop_collection("orders") is False  # nothing to drop, no event
    _, renamed, inserted, dropped = await history(feed)
    assert renamed["operationType"] == "rename"
    assert renamed["ns"] == {"db": "shop", "coll": "orders"}
    assert renamed["to"] == {"db": "shop", "coll": "orders_old"}
    assert renamed["operationDescription"] == {"to": {"db": "shop", "coll": "orders_old"}}
    assert renamed["collectionUUID"] == uuid
    assert inserted["collectionUUID"] != uuid  # a new collection of the same name
    assert dropped["operationType"] == "drop"
    assert dropped["ns"] == {"db": "shop", "coll": "orders"}
    assert "documentKey" not in dropped
    assert await feed.collection("orders_old").count_documents({}) == 1


async def test_drop_database_closes_the_stream_and_only_start_after_continues(
    feed: MemoryChangeFeed,
) -> None:
    await feed.collection("orders").insert_one({"_id": 1})
    await feed.collection("carts").insert_one({"_id": 2})
    async with source(feed).watch(None) as stream:
        await feed.drop_database()
        await feed.collection("orders").insert_one({"_id": 3})
        batch = await stream.next_batch()
        assert batch is not None
        drop, dropped_db, invalidate = batch.changes
        assert await stream.next_batch() is None  # the cursor is closed
    assert drop["operationType"] == "drop" and drop["ns"] == {"db": "shop", "coll": "orders"}
    assert dropped_db["operationType"] == "dropDatabase" and dropped_db["ns"] == {"db": "shop"}
    assert set(invalidate) == {"_id", "operationType", "clusterTime", "wallTime"}
    assert invalidate["operationType"] == "invalidate"
    assert batch.resume_token == invalidate["_id"]
    with pytest.raises(SourceError, match="startAfter"):
        await history(feed, ResumePoint(resume_after=invalidate["_id"]))
    after = await history(feed, ResumePoint(start_after=invalidate["_id"]))
    assert [(c["operationType"], c["documentKey"]["_id"]) for c in after] == [("insert", 3)]
    assert await feed.collection_names() == ["orders"]


# -- transactions -----------------------------------------------------------------------------------


async def test_transaction_events_share_cluster_time_and_carry_the_session(
    feed: MemoryChangeFeed,
) -> None:
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 1, "status": "pending"})
    async with source(feed).watch(None) as stream:
        async with feed.transaction():
            await orders.update_one({"_id": 1}, {"$set": {"status": "paid"}})
            await orders.insert_one({"_id": 2})
            assert (await stream.next_batch()).changes == []  # type: ignore[union-attr]
        async with feed.transaction():
            await orders.delete_one({"_id": 2})
        changes = await read_all(stream)
    first, second, third = changes
    assert first["clusterTime"] == second["clusterTime"] != third["clusterTime"]
    assert first["_id"]["_data"] < second["_id"]["_data"]
    lsid = first["lsid"]
    assert isinstance(lsid["id"], Binary) and lsid["id"].subtype == 4
    assert second["lsid"] == lsid == third["lsid"]
    assert (first["txnNumber"], second["txnNumber"], third["txnNumber"]) == (1, 1, 2)
    assert ChangeEvent.from_bson(first).txnNumber == 1


async def test_a_failed_transaction_rolls_back_and_records_nothing(
    feed: MemoryChangeFeed,
) -> None:
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 1, "status": "pending"})
    with pytest.raises(RuntimeError, match="boom"):
        async with feed.transaction():
            await orders.update_one({"_id": 1}, {"$set": {"status": "paid"}})
            await orders.insert_one({"_id": 2})
            await orders.delete_one({"_id": 1})
            raise RuntimeError("boom")
    assert await orders.find({}) == [{"_id": 1, "status": "pending"}]
    assert [c["operationType"] for c in await history(feed)] == ["insert"]


# -- pre-images -------------------------------------------------------------------------------------


async def test_pre_images_are_given_where_kept(feed: MemoryChangeFeed) -> None:
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 1, "n": 1})
    await orders.update_one({"_id": 1}, {"$inc": {"n": 1}})  # before pre-images were enabled
    feed.enable_pre_images("orders")
    await orders.update_one({"_id": 1}, {"$inc": {"n": 1}})
    await orders.replace_one({"_id": 1}, {"n": 10})
    await orders.delete_one({"_id": 1})
    start = ResumePoint(start_at_operation_time=Timestamp(0, 0))
    async with source(feed, pre_images="whenAvailable").watch(start) as stream:
        changes = await read_all(stream)
    assert "fullDocumentBeforeChange" not in changes[0]  # inserts have none
    assert [c["fullDocumentBeforeChange"] for c in changes[1:]] == [
        None,
        {"_id": 1, "n": 2},
        {"_id": 1, "n": 3},
        {"_id": 1, "n": 10},
    ]
    assert all("fullDocumentBeforeChange" not in c for c in await history(feed))
    async with source(feed, pre_images="required").watch(start) as stream:
        batch = await stream.next_batch()
        assert batch is not None and [c["operationType"] for c in batch.changes] == ["insert"]
        with pytest.raises(SourceError, match="pre-image"):
            await stream.next_batch()


# -- snapshots --------------------------------------------------------------------------------------


async def test_scan_lists_current_documents_sorted_by_id(feed: MemoryChangeFeed) -> None:
    orders = feed.collection("orders")
    await orders.insert_many([{"_id": i} for i in (4, 1, 3, 2, 5)])
    batches: list[Sequence[dict[str, Any]]] = [
        b async for b in source(feed).scan("orders", batch_size=2)
    ]
    assert [[d["_id"] for d in b] for b in batches] == [[1, 2], [3, 4], [5]]
    src = source(feed)
    assert src.can_snapshot and not src.finite
    first = await src.cluster_time()
    assert first >= (await history(feed))[-1]["clusterTime"]
    await orders.insert_one({"_id": 6})
    assert (await history(feed))[-1]["clusterTime"] > first
    assert token_position(feed.last_token) == 6
