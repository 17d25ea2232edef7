"""Gaps (history lost), drops, renames, dropDatabase and invalidate, through the memory feed."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime
from typing import Any

import msgspec
import pytest
from bson import Timestamp

from eventstore.clock import FakeClock
from eventstore.model import STREAM_KEY, Head
from eventstore.ports import Store
from eventstore.sources.memory import MemoryChangeFeed
from tests.integration.ingest_helpers import (
    ROLE,
    RecordedCheckpoints,
    all_events,
    assert_log_intact,
    ingester,
    start_from_the_beginning,
)


async def test_history_lost_records_a_gap_resnapshots_and_infers_deletions(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    for n in range(1, 5):
        await orders.insert_one({"_id": n, "status": "pending", "updatedBy": "alice"})
    await ingester(store, feed, clock).run(until_idle=True)
    before = await store.checkpoints.get(ROLE)
    # while the ingester is down: changes it never sees, then the oplog rolls over
    await orders.update_one({"_id": 1}, {"$set": {"status": "paid"}})
    await orders.delete_one({"_id": 2})
    await orders.insert_one({"_id": 5, "status": "pending"})
    await orders.delete_one({"_id": 3})
    feed.forget_before(None)
    checkpoints = RecordedCheckpoints(store)
    clock.advance(3)
    read_time = clock.now

    def ticking() -> datetime:  # a millisecond passes at every reading of the clock
        clock.advance(0.001)
        return read_time()

    clock.now = ticking  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="eventstore.ingester"):
        stats = await ingester(store, feed, clock).run(until_idle=True)
    clock.now = read_time  # type: ignore[method-assign]
    (lost,) = [r for r in caplog.records if r.name == "eventstore.ingester"]
    assert re.fullmatch(
        r"change stream history lost \(resume point .+ is no longer in the history\): "
        r"recording a gap and re-snapshotting",
        lost.getMessage(),
    ), lost.getMessage()
    streaming = await store.checkpoints.get(ROLE)
    assert streaming is not None and streaming.phase == "streaming"
    assert streaming.gap_from is None  # the gap is recorded: the next snapshot is no re-snapshot
    done_at = [cp.phase for cp in checkpoints.put].index("streaming")
    done, before = checkpoints.put[done_at], checkpoints.put[done_at - 1]
    assert done.updated_at is not None and before.updated_at is not None
    assert done.updated_at > before.updated_at  # stamped when the snapshot ended
    await orders.update_one({"_id": 5}, {"$set": {"status": "paid"}})
    await ingester(store, feed, clock).run(until_idle=True)

    events = await assert_log_intact(store)
    after_gap = events[4:]
    gap = after_gap[0]
    assert (gap.type, gap.entity_key, gap.stream) == ("gap", STREAM_KEY, "orders")
    assert before is not None and gap.document is not None
    assert gap.document["from"] == before.last_cluster_time
    assert gap.document["to"] > gap.document["from"]
    assert gap.id == f"gap:orders:{before.last_cluster_time.time}.{before.last_cluster_time.inc}"
    assert stats.gaps == 1
    resnap = [(e.entity_key, e.version, e.type) for e in after_gap[1:]]
    assert resnap == [
        ("1", 2, "snapshot"),
        ("4", 2, "snapshot"),
        ("5", 1, "snapshot"),
        ("2", 2, "deleted"),
        ("3", 2, "deleted"),
        ("5", 2, "updated"),
    ]
    assert after_gap[1].document == {"_id": 1, "status": "paid", "updatedBy": "alice"}
    inferred = [e for e in after_gap if e.type == "deleted"]
    epoch = gap.cluster_time
    assert epoch is not None and epoch == gap.document["to"]
    assert [(e.id, e.cluster_time, e.inferred) for e in inferred] == [
        (f"inferred:{epoch.time}.{epoch.inc}:orders:int:2", epoch, True),
        (f"inferred:{epoch.time}.{epoch.inc}:orders:int:3", epoch, True),
    ]
    assert all(not e.inferred for e in after_gap if e.type != "deleted")
    # the inferred deletions are committed with a checkpoint of their own (head, time)
    after_deletes = [cp for cp in checkpoints.put if cp.head.seq == inferred[-1].seq]
    assert after_deletes[0].phase == "snapshot" and after_deletes[0].gap_from is not None
    assert after_deletes[0].head.log_hash == inferred[-1].log_hash
    assert after_deletes[0].updated_at == inferred[-1].recorded_at


async def test_drop_records_dropped_and_infers_deletion_of_live_entities(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    await ingester(store, feed, clock).run(until_idle=True)
    for n in (1, 2, 3):
        await orders.insert_one({"_id": n})
    await orders.delete_one({"_id": 2})
    await feed.drop_collection("orders")
    await orders.insert_one({"_id": 1, "again": True})
    await ingester(store, feed, clock).run(until_idle=True)
    events = await assert_log_intact(store)
    assert [(e.entity_key, e.version, e.type, e.inferred) for e in events] == [
        ("1", 1, "created", False),
        ("2", 1, "created", False),
        ("3", 1, "created", False),
        ("2", 2, "deleted", False),
        ("1", 2, "deleted", True),
        ("3", 2, "deleted", True),
        (STREAM_KEY, 1, "dropped", False),
        ("1", 3, "created", False),  # a re-created id continues its version sequence
    ]
    # The derived events are the drop's: its cluster time marks their ids and places them.
    drop = next(e.event for e in feed_entries(feed) if e.event["operationType"] == "drop")
    at = drop["clusterTime"]
    derived = events[4:7]
    assert [e.id for e in derived] == [
        f"inferred:{at.time}.{at.inc}:orders:int:1",
        f"inferred:{at.time}.{at.inc}:orders:int:3",
        "dropped:" + drop["_id"]["_data"],
    ]
    assert all(e.cluster_time == at and e.occurred_at == drop["wallTime"] for e in derived)
    dropped = events[6]
    assert (dropped.stream, dropped.entity_id, dropped.document) == ("orders", None, {})


async def test_a_drop_after_a_drop_in_one_batch_infers_from_what_the_batch_left_live(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    await ingester(store, feed, clock).run(until_idle=True)
    await orders.insert_one({"_id": 1})
    await ingester(store, feed, clock).run(until_idle=True)
    # One batch: the first drop ends 1 (live in the store), 2 is created, the second drop
    # ends 2 only: the batch's own heads (the stream's among them) override the store's.
    await feed.drop_collection("orders")
    await orders.insert_one({"_id": 2})
    await feed.drop_collection("orders")
    stats = await ingester(store, feed, clock, batch_size=100).run(until_idle=True)
    assert stats.changes_seen == 3
    events = await assert_log_intact(store)
    assert [(e.entity_key, e.version, e.type, e.inferred) for e in events] == [
        ("1", 1, "created", False),
        ("1", 2, "deleted", True),
        (STREAM_KEY, 1, "dropped", False),
        ("2", 1, "created", False),
        ("2", 2, "deleted", True),
        (STREAM_KEY, 2, "dropped", False),
    ]


def feed_entries(feed: MemoryChangeFeed) -> list[Any]:
    """Every change the feed still holds, oldest first."""
    return [e for p in range(feed.horizon + 1, feed.position + 1) if (e := feed.entry_at(p))]


class RetriedForever(Exception):
    """The ingester kept retrying one batch."""


async def test_a_drop_after_an_update_and_a_delete_in_the_same_batch_chains_from_the_batch(
    store: Store, clock: FakeClock
) -> None:
    # The store's heads (1 v1, 2 v1) are older than the batch's own (1 v2, 2 v2 deleted):
    # the inferred deletion must follow the batch's, never the store's.
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    await ingester(store, feed, clock).run(until_idle=True)
    for n in (1, 2):
        await orders.insert_one({"_id": n, "status": "pending"})
    await ingester(store, feed, clock).run(until_idle=True)
    await orders.update_one({"_id": 1}, {"$set": {"status": "paid"}})
    await orders.delete_one({"_id": 2})
    await feed.drop_collection("orders")
    # A wrong head makes every append conflict and the ingester retry at once, forever and
    # without yielding (no timer could stop it): a bound on appends ends such a run quickly.
    real_append = store.events.append
    appends = 0

    async def bounded_append(events: Any, *, session: Any = None) -> int:
        nonlocal appends
        appends += 1
        if appends > 5:
            raise RetriedForever(f"{appends} appends for one batch")
        return await real_append(events, session=session)

    store.events.append = bounded_append  # type: ignore[method-assign]
    try:
        run = ingester(store, feed, clock, batch_size=100).run(until_idle=True)
        stats = await asyncio.wait_for(run, timeout=10)
    finally:
        store.events.append = real_append  # type: ignore[method-assign]
    assert appends == 1  # the three changes and the inferred deletion: one batch, one append
    assert (stats.changes_seen, stats.recorded) == (3, 4)
    events = await assert_log_intact(store)
    assert [(e.entity_key, e.version, e.type, e.inferred) for e in events] == [
        ("1", 1, "created", False),
        ("2", 1, "created", False),
        ("1", 2, "updated", False),
        ("2", 2, "deleted", False),
        ("1", 3, "deleted", True),
        (STREAM_KEY, 1, "dropped", False),
    ]


async def test_rename_away_records_renamed_with_the_new_name_and_ends_its_entities(
    store: Store, clock: FakeClock
) -> None:
    # `orders` no longer holds its documents: as for a drop, each live entity gets an
    # inferred deletion at the rename, then `renamed` (the new name is not captured).
    feed = MemoryChangeFeed(clock=clock)
    await ingester(store, feed, clock).run(until_idle=True)
    for n in (1, 2, 3):
        await feed.collection("orders").insert_one({"_id": n})
    await feed.collection("orders").delete_one({"_id": 2})
    await feed.rename_collection("orders", "orders_archive")
    await feed.collection("orders_archive").insert_one({"_id": 4})  # not captured
    await feed.collection("orders").insert_one({"_id": 1, "again": True})  # a new orders
    await ingester(store, feed, clock).run(until_idle=True)
    events = await assert_log_intact(store)
    assert [(e.entity_key, e.version, e.type, e.inferred) for e in events] == [
        ("1", 1, "created", False),
        ("2", 1, "created", False),
        ("3", 1, "created", False),
        ("2", 2, "deleted", False),
        ("1", 2, "deleted", True),
        ("3", 2, "deleted", True),
        (STREAM_KEY, 1, "renamed", False),
        ("1", 3, "created", False),  # a new document with an old id: a new life, not v2's
    ]
    assert events[6].document == {"to": {"db": "shop", "coll": "orders_archive"}}
    rename = next(e.event for e in feed_entries(feed) if e.event["operationType"] == "rename")
    at = rename["clusterTime"]
    assert [e.id for e in events[4:7]] == [
        f"inferred:{at.time}.{at.inc}:orders:int:1",
        f"inferred:{at.time}.{at.inc}:orders:int:3",
        "renamed:" + rename["_id"]["_data"],
    ]
    # stamped with the rename's own cluster time, after the inserts'
    assert {e.cluster_time for e in events[4:7]} == {at}
    created = events[2].cluster_time
    assert created is not None and at > created


async def test_a_rename_delivered_again_after_a_lost_checkpoint_is_recorded_once(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    await ingester(store, feed, clock).run(until_idle=True)
    await feed.collection("orders").insert_one({"_id": 1})
    await feed.rename_collection("orders", "orders_archive")
    recorded = await stored_then_read_again(store, feed, clock)
    assert recorded == [("1", "created"), ("1", "deleted"), (STREAM_KEY, "renamed")]


async def stored_then_read_again(
    store: Store, feed: MemoryChangeFeed, clock: FakeClock
) -> list[tuple[str, str]]:
    """The next batch stored but its checkpoint lost, then read again from the older one:
    each change is found stored and nothing is recorded twice. Returns (key, type) logged."""
    checkpoints = RecordedCheckpoints(store)
    checkpoints.fail_next = True  # the batch is stored, its checkpoint is not
    with pytest.raises(ConnectionError):
        await ingester(store, feed, clock).run(until_idle=True)
    recorded = [(e.entity_key, e.type) for e in await all_events(store)]
    stats = await ingester(store, feed, clock).run(until_idle=True)
    assert stats.recorded == 0
    events = await assert_log_intact(store)
    assert [(e.entity_key, e.type) for e in events] == recorded
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None and cp.head == Head(seq=len(events), log_hash=events[-1].log_hash)
    return recorded


async def test_a_drop_delivered_again_after_a_lost_checkpoint_is_recorded_once(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    await ingester(store, feed, clock).run(until_idle=True)
    await feed.collection("orders").insert_one({"_id": 1})
    await feed.drop_collection("orders")
    recorded = await stored_then_read_again(store, feed, clock)
    assert recorded == [("1", "created"), ("1", "deleted"), (STREAM_KEY, "dropped")]


async def test_drop_database_then_invalidate_continues_with_start_after(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    await ingester(store, feed, clock).run(until_idle=True)
    await feed.collection("orders").insert_one({"_id": 1})
    await feed.drop_database()
    await feed.collection("orders").insert_one({"_id": 2})
    run = ingester(store, feed, clock)
    await run.run(until_idle=True)
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None and not cp.invalidated  # reopened with startAfter and went on
    # dropDatabase itself records nothing: it is filtered, not taken for an unknown change.
    assert (run.stats.filtered, run.stats.unknown_skipped) == (1, 0)
    events = await assert_log_intact(store)
    assert [(e.entity_key, e.type) for e in events] == [
        ("1", "created"),
        ("1", "deleted"),
        (STREAM_KEY, "dropped"),
        ("2", "created"),
    ]
    # a restart after that resumes normally: nothing twice
    await ingester(store, feed, clock).run(until_idle=True)
    assert len(await all_events(store)) == 4


async def test_gaps_chain_per_stream_and_their_checkpoint_restarts_the_snapshot_cleanly(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    orders, users = feed.collection("orders"), feed.collection("users")
    await start_from_the_beginning(store)  # start_at Timestamp(1, 0), nothing captured yet
    await orders.insert_one({"_id": 1})
    await users.insert_one({"_id": 1})
    feed.forget_before(None)
    checkpoints = RecordedCheckpoints(store)
    # 1. Only orders is captured; the gap is appended but its checkpoint write is lost.
    checkpoints.fail_next = True
    with pytest.raises(ConnectionError):
        await ingester(store, feed, clock).run(until_idle=True)
    assert [(e.id, e.version) for e in await all_events(store)] == [("gap:orders:1.0", 1)]
    # 2. Restarted capturing users as well: the stored orders gap is not recorded twice,
    # the users gap is; both start where capture was to start, not at the new epoch.
    clock.advance(5)
    first = len(checkpoints.put)
    both = ingester(store, feed, clock, collections=["orders", "users"])
    stats = await both.run(until_idle=True)
    assert stats.gaps == 1
    events = await all_events(store)
    gaps = [e for e in events if e.type == "gap"]
    assert [(e.id, e.stream, e.version) for e in gaps] == [
        ("gap:orders:1.0", "orders", 1),
        ("gap:users:1.0", "users", 1),
    ]
    epoch = gaps[1].document["to"]  # type: ignore[index]
    assert gaps[1].document["from"] == Timestamp(1, 0)  # type: ignore[index]
    assert gaps[1].cluster_time == epoch and epoch > Timestamp(1, 0)
    cp = checkpoints.put[first]  # the gap's own checkpoint, stored with its events
    assert cp.phase == "snapshot"
    assert (cp.epoch, cp.gap_from, cp.token, cp.invalidated) == (
        epoch,
        Timestamp(1, 0),
        None,
        False,
    )
    assert cp.head == Head(seq=gaps[1].seq, log_hash=gaps[1].log_hash)
    assert cp.updated_at == clock.now()
    # 3. Past an invalidate, history is lost again: each stream's second gap chains from its
    # first (capture restarts from the stored heads), and the checkpoint drops the token.
    await orders.insert_one({"_id": 2})
    streaming = await store.checkpoints.get(ROLE)
    assert streaming is not None and streaming.token is not None
    await store.checkpoints.put(msgspec.structs.replace(streaming, invalidated=True))
    await users.insert_one({"_id": 2})
    feed.forget_before(None)
    clock.advance(5)
    first = len(checkpoints.put)
    stats = await both.run(until_idle=True)
    assert stats.gaps == 2  # counted over the ingester's life
    events = await assert_log_intact(store)
    second = [e for e in events if e.type == "gap"][2:]
    assert [(e.stream, e.version, e.prev_hash) for e in second] == [
        ("orders", 2, gaps[0].hash),
        ("users", 2, gaps[1].hash),
    ]
    cp = checkpoints.put[first]
    assert (cp.phase, cp.token, cp.invalidated, cp.updated_at) == (
        "snapshot",
        None,
        False,
        clock.now(),
    )
    assert cp.head == Head(seq=second[1].seq, log_hash=second[1].log_hash)


@pytest.mark.parametrize("second", ["drop", "rename"])
async def test_a_restarted_ingester_chains_a_stream_event_after_the_stored_ones(
    store: Store, clock: FakeClock, second: str
) -> None:
    # The stream's `$stream` head is not cached by a fresh ingester: it is loaded from the
    # store before the drop or rename of its first batch, which is version 2, not 1 again.
    feed = MemoryChangeFeed(clock=clock)
    await ingester(store, feed, clock).run(until_idle=True)
    await feed.collection("orders").insert_one({"_id": 1})
    await feed.drop_collection("orders")
    await ingester(store, feed, clock).run(until_idle=True)
    await feed.collection("orders").insert_one({"_id": 2})
    if second == "drop":
        await feed.drop_collection("orders")
    else:
        await feed.rename_collection("orders", "orders_archive")
    await ingester(store, feed, clock).run(until_idle=True)
    events = await assert_log_intact(store)
    assert [(e.entity_key, e.type, e.version) for e in events] == [
        ("1", "created", 1),
        ("1", "deleted", 2),
        (STREAM_KEY, "dropped", 1),
        ("2", "created", 1),
        ("2", "deleted", 2),
        (STREAM_KEY, "dropped" if second == "drop" else "renamed", 2),
    ]
