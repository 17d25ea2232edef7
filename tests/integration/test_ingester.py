"""The ingester end to end on the memory feed, over both store adapters."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from bson import Decimal128, Timestamp

from eventstore import ingester as ingester_module
from eventstore.clock import FakeClock
from eventstore.ingester import Ingester
from eventstore.model import Event, Head
from eventstore.ports import Store
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.simulator import Simulator
from tests.helpers import fixed_salt
from tests.integration.ingest_helpers import (
    ROLE,
    RecordedCheckpoints,
    all_events,
    assert_log_intact,
    feed_changes,
    ingester,
    settings,
    start_from_the_beginning,
)


def by_key(events: list[Event], key: str) -> list[Event]:
    return [e for e in events if e.entity_key == key]


async def test_first_start_snapshots_existing_documents_then_streams(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    await orders.insert_one({"_id": "A", "status": "pending", "updatedBy": "alice"})
    await orders.insert_one({"_id": "B", "status": "paid", "updatedBy": "bob"})
    await ingester(store, feed, clock).run(until_idle=True)
    await orders.update_one({"_id": "A"}, {"$set": {"status": "paid", "updatedBy": "carol"}})
    await orders.delete_one({"_id": "B"})
    await ingester(store, feed, clock).run(until_idle=True)

    events = await assert_log_intact(store)
    assert [(e.entity_key, e.version, e.type, e.actor) for e in events] == [
        ("A", 1, "snapshot", "alice"),
        ("B", 1, "snapshot", "bob"),
        ("A", 2, "updated", "carol"),
        ("B", 2, "deleted", "bob"),  # the removed document's updatedBy
    ]
    assert events[0].document == {"_id": "A", "status": "pending", "updatedBy": "alice"}
    assert events[0].id.startswith("snapshot:")
    assert events[2].changes is not None
    assert events[2].changes["updatedFields"] == {"status": "paid", "updatedBy": "carol"}
    assert events[2].changed_fields == ["status", "updatedBy"]


async def test_every_change_is_recorded_once_in_stream_order(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    await Simulator(feed, seed=3, clock=clock).run(orders=15, changes=120, rate=0)
    stats = await ingester(store, feed, clock, batch_size=25).run(until_idle=True)

    events = await assert_log_intact(store)
    changes = feed_changes(feed)
    assert [e.id for e in events] == [c["_id"]["_data"] for c in changes]
    assert stats.recorded == len(changes) and stats.duplicates_skipped == 0
    assert stats.batches >= len(changes) // 25
    assert stats.caught_up is True  # an empty batch: nothing pending (readiness)


async def test_stored_ids_and_heads_are_asked_for_only_while_needed(
    store: Store, clock: FakeClock
) -> None:
    # Which ids are stored is asked until a batch is found new (then no redelivery can
    # follow); an entity's head is loaded once, then kept up to date by the batches.
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 1, "n": 0})
    for n in range(1, 12):
        await orders.update_one({"_id": 1}, {"$set": {"n": n}})
    # a change of the stream it skips: no head of the stream's own is needed for it
    feed.inject({"operationType": "createIndexes", "ns": {"db": "shop", "coll": "orders"}})
    asked: dict[str, list[list[Any]]] = {"events_by_id": [], "entity_heads": []}
    for name, calls in asked.items():
        real = getattr(store.events, name)

        def counting(*args: Any, _real: Any = real, _calls: Any = calls) -> Any:
            _calls.append(list(args[-1]))
            return _real(*args)

        setattr(store.events, name, counting)
    seen: list[object] = []
    ing = ingester(store, feed, clock, batch_size=4, on_batch=seen.append)
    stats = await ing.run(until_idle=True)
    assert (stats.recorded, stats.batches) == (12, 5)  # four full batches, then an empty one
    assert len(asked["events_by_id"]) == 1 and len(asked["events_by_id"][0]) == 4
    assert asked["entity_heads"] == [[1]]
    assert seen == [stats] * 5 and all(s is ing.stats for s in seen)
    assert [e.version for e in await assert_log_intact(store)] == list(range(1, 13))


async def test_redelivered_changes_consume_no_seq_or_version(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    await Simulator(feed, seed=4, clock=clock).run(orders=5, changes=30, rate=0)
    await ingester(store, feed, clock).run(until_idle=True)
    before = await all_events(store)
    await start_from_the_beginning(store)  # the checkpoint goes back: everything is re-delivered
    stats = await ingester(store, feed, clock, batch_size=7).run(until_idle=True)
    assert stats.recorded == 0 and stats.duplicates_skipped == len(before)
    await feed.collection("orders").insert_one({"_id": "new", "updatedBy": "eve"})
    await ingester(store, feed, clock).run(until_idle=True)
    after = await assert_log_intact(store)
    assert after[:-1] == before
    assert (after[-1].seq, after[-1].entity_key, after[-1].version) == (len(before) + 1, "new", 1)


async def test_idle_stream_saves_its_advancing_resume_token(store: Store, clock: FakeClock) -> None:
    feed = MemoryChangeFeed(clock=clock)
    await feed.collection("orders").insert_one({"_id": 1})
    await ingester(store, feed, clock).run(until_idle=True)
    first = await store.checkpoints.get(ROLE)
    # Changes elsewhere in the database advance the stream's token without captured events.
    for n in range(3):
        await feed.collection("carts").insert_one({"_id": n})
    stats = await ingester(store, feed, clock).run(until_idle=True)
    second = await store.checkpoints.get(ROLE)
    assert first is not None and second is not None
    assert stats.recorded == 0
    assert second.token is not None and second.token != first.token
    assert second.token == feed.current_token()
    assert second.head == first.head


async def test_filters_and_redaction_apply_before_hashing(store: Store, clock: FakeClock) -> None:
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    orders = feed.collection("orders")
    await orders.insert_one(
        {"_id": 1, "customer": {"email": "a@b.c", "name": "Ann"}, "card": "4111"}
    )
    await orders.update_one({"_id": 1}, {"$set": {"customer.email": "x@y.z", "status": "paid"}})
    await feed.collection("users").insert_one({"_id": 9})
    await orders.delete_one({"_id": 1})
    run = ingester(
        store,
        feed,
        clock,
        operations=("insert", "update"),
        redact=_redact("customer.email", "card:****"),
    )
    stats = await run.run(until_idle=True)
    events = await assert_log_intact(store)
    assert [e.type for e in events] == ["created", "updated"]
    assert events[0].document == {"_id": 1, "customer": {"name": "Ann"}, "card": "****"}
    assert events[1].changes is not None
    assert events[1].changes["updatedFields"] == {"status": "paid"}
    # the delete is filtered here; `users` never reaches the ingester (the stream's $match)
    assert stats.filtered == 1


async def test_a_masked_field_updated_beneath_folds_without_a_finding(
    store: Store, clock: FakeClock
) -> None:
    """An outside tester: `--redact card:XXX` and an update of `card.num` stored
    `{"card.num": "XXX"}`, which the fold could not apply to the masked scalar: every later
    state carried a `path_conflict`. The masked field is set to the mask instead."""
    from eventstore.fold import apply_event

    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 1, "card": {"num": "4111", "exp": "12/30"}})
    await orders.update_one({"_id": 1}, {"$set": {"card.num": "5500", "status": "paid"}})
    await ingester(store, feed, clock, redact=_redact("card:XXX")).run(until_idle=True)
    events = await assert_log_intact(store)
    assert events[1].changes is not None
    assert events[1].changes["updatedFields"] == {"card": "XXX", "status": "paid"}
    assert "5500" not in repr(events) and "4111" not in repr(events)
    findings: list[Any] = []
    state = None
    for e in events:
        state = apply_event(state, e, findings=findings)
    assert state == {"_id": 1, "card": "XXX", "status": "paid"} and findings == []


def _redact(*specs: str) -> Any:
    from eventstore.settings import _redactions

    return _redactions(",".join(specs))


async def test_transactions_are_recorded_with_their_session(store: Store, clock: FakeClock) -> None:
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    async with feed.transaction():
        await feed.collection("orders").insert_one({"_id": "t1", "total": Decimal128("5")})
        await feed.collection("orders").insert_one({"_id": "t2", "total": Decimal128("6")})
    await ingester(store, feed, clock).run(until_idle=True)
    events = await assert_log_intact(store)
    assert len(events) == 2
    assert events[0].txn is not None and events[0].txn == events[1].txn
    assert events[0].cluster_time == events[1].cluster_time
    assert int(events[0].txn["txnNumber"]) >= 1


async def test_unknown_operation_types_are_skipped_not_fatal(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    await feed.collection("orders").insert_one({"_id": 1})
    feed.inject(
        {"operationType": "reshardBlockingFutureThing", "ns": {"db": "shop", "coll": "orders"}}
    )
    feed.inject({"operationType": "createIndexes", "ns": {"db": "shop", "coll": "orders"}})
    feed.inject({"operationType": "futureOp", "ns": {"db": "shop", "coll": "orders"}})
    await feed.collection("orders").insert_one({"_id": 2})
    with caplog.at_level(logging.WARNING, logger="eventstore.ingester"):
        stats = await ingester(store, feed, clock).run(until_idle=True)
    events = await assert_log_intact(store)
    assert [e.entity_key for e in events] == ["1", "2"]
    assert stats.unknown_skipped == 2 and stats.filtered == 1
    # Each skipped one is named in the operator's log.
    assert [r.getMessage() for r in caplog.records if r.name == "eventstore.ingester"] == [
        "skipping a change of unknown type 'reshardBlockingFutureThing'",
        "skipping a change of unknown type 'futureOp'",
    ]


async def test_changes_the_source_delivers_of_collections_not_captured_are_filtered(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    users = feed.collection("users")
    await users.insert_one({"_id": "u"})
    await feed.rename_collection("users", "people")
    await feed.collection("users").insert_one({"_id": "v"})
    await feed.drop_collection("users")
    await feed.collection("orders").insert_one({"_id": 1})
    s = settings()  # captures `orders` only; the source below watches `users` as well
    capture = Ingester(
        store=store,
        source=feed.source(["orders", "users"], max_await=0.01),
        settings=s,
        clock=clock,
        salts=fixed_salt,
    )
    stats = await capture.run(until_idle=True)
    # Two inserts, a rename and a drop of `users`: counted as filtered, none recorded.
    assert (stats.filtered, stats.unknown_skipped, stats.recorded) == (4, 0, 1)
    events = await assert_log_intact(store)
    assert [(e.stream, e.entity_key, e.type) for e in events] == [("orders", "1", "created")]


async def test_actor_is_the_resulting_documents_even_when_unchanged(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 1, "status": "pending", "updatedBy": "alice"})
    # alice writes again: MongoDB leaves the unchanged updatedBy out of updatedFields
    await orders.update_one({"_id": 1}, {"$set": {"status": "paid", "updatedBy": "alice"}})
    await orders.update_one({"_id": 1}, {"$unset": {"updatedBy": ""}})
    await ingester(store, feed, clock).run(until_idle=True)
    events = await assert_log_intact(store)
    assert [e.actor for e in events] == ["alice", "alice", None]


async def test_a_snapshot_cut_short_resumes_without_recording_a_document_twice(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    orders, users = feed.collection("orders"), feed.collection("users")
    for n in range(1, 6):
        await orders.insert_one({"_id": n, "n": n})
    await users.insert_one({"_id": "u", "n": 0})
    checkpoints = RecordedCheckpoints(store)
    checkpoints.fail_on = 3  # 1: the snapshot starts; 2, 3: its first two batches of orders
    capture = ingester(store, feed, clock, batch_size=2, collections=["orders", "users"])
    with pytest.raises(ConnectionError):
        await capture.run(until_idle=True)
    assert capture.stats.snapshots == 4
    started, first_batch = checkpoints.put
    epoch = started.epoch
    assert epoch is not None
    assert (started.phase, first_batch.phase, first_batch.epoch) == ("snapshot", "snapshot", epoch)
    stored = await all_events(store)
    assert [e.entity_key for e in stored] == ["1", "2", "3", "4"]
    assert first_batch.head == Head(seq=2, log_hash=stored[1].log_hash)
    assert first_batch.updated_at == clock.now()
    # Restarted later: the scan starts over; what is stored already is not recorded again.
    clock.advance(30)
    stats = await capture.run(until_idle=True)
    assert stats.snapshots == 4 + 2  # counted over the ingester's life: only 5 and u are new
    events = await assert_log_intact(store)
    assert [(e.stream, e.entity_key, e.version, e.type) for e in events] == [
        *(("orders", str(n), 1, "snapshot") for n in range(1, 6)),
        ("users", "u", 1, "snapshot"),
    ]
    at = f"snapshot:{epoch.time}.{epoch.inc}"
    assert [e.id for e in events] == [
        *(f"{at}:orders:int:{n}" for n in range(1, 6)),
        f"{at}:users:str:u",
    ]
    resumed = checkpoints.put[2:]  # each batch of the scan, then streaming from the epoch on
    assert [(cp.phase, cp.head.seq) for cp in resumed[:5]] == [
        ("snapshot", 4),
        ("snapshot", 4),
        ("snapshot", 5),
        ("snapshot", 6),
        ("streaming", 6),
    ]
    assert all(cp.updated_at == clock.now() for cp in resumed)
    done = resumed[4]
    assert (done.phase, done.start_at, done.last_cluster_time, done.gap_from) == (
        "streaming",
        Timestamp(epoch.time, epoch.inc + 1),
        epoch,
        None,
    )
    assert (done.token, done.invalidated) == (None, False)
    assert done.head == Head(seq=6, log_hash=events[-1].log_hash)


async def test_a_snapshot_whose_checkpoint_was_lost_ends_at_the_log_head_with_nothing_left_to_scan(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    for n in (1, 2):
        await orders.insert_one({"_id": n, "n": n})
    checkpoints = RecordedCheckpoints(store)
    checkpoints.fail_on = 2  # 1: the snapshot starts; 2: its one batch, stored but not checkpointed
    capture = ingester(store, feed, clock, batch_size=2)
    with pytest.raises(ConnectionError):
        await capture.run(until_idle=True)
    (started,) = checkpoints.put
    assert (started.phase, started.head) == ("snapshot", Head())
    snapshots = await all_events(store)
    assert [(e.entity_key, e.type) for e in snapshots] == [("1", "snapshot"), ("2", "snapshot")]
    # Both documents go before the restart: its scan finds nothing, so no batch refreshes the
    # stored checkpoint's stale head; the snapshot's last checkpoint must still cover seq 1-2.
    await orders.delete_one({"_id": 1})
    await orders.delete_one({"_id": 2})
    await capture.run(until_idle=True)
    done = checkpoints.put[1]
    assert (done.phase, done.head) == ("streaming", Head(seq=2, log_hash=snapshots[1].log_hash))
    events = await assert_log_intact(store)
    assert [(e.entity_key, e.version, e.type) for e in events] == [
        ("1", 1, "snapshot"),
        ("2", 1, "snapshot"),
        ("1", 2, "deleted"),
        ("2", 2, "deleted"),
    ]


async def test_lag_is_the_time_since_the_last_stored_change_none_before_and_zero_when_idle(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    capture = ingester(store, feed, clock)
    assert capture.lag_seconds(clock.now()) is None  # nothing stored yet
    await feed.collection("orders").insert_one({"_id": 1})
    await capture.run(until_idle=True)
    assert capture.idle and capture.lag_seconds(clock.now()) == 0.0
    stored = capture.last_cluster_time
    assert stored is not None and stored == (await all_events(store))[-1].cluster_time
    capture.idle = False  # a batch held changes: the lag is measured from the newest one
    at = stored.as_datetime()
    assert capture.lag_seconds(at + timedelta(seconds=42.5)) == 42.5
    assert capture.lag_seconds(at + timedelta(seconds=0.25)) == 0.25
    assert capture.lag_seconds(at - timedelta(seconds=5)) == 0.0  # a clock behind: never negative


async def test_a_first_snapshot_on_a_log_with_events_checkpoints_the_log_head_at_once(
    store: Store, clock: FakeClock
) -> None:
    # Another database's capture wrote the log so far; this one starts with a snapshot,
    # and its first checkpoint (stored before anything is scanned) covers the whole log.
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    for n in (1, 2):
        await orders.insert_one({"_id": n, "n": n})
    await ingester(store, feed, clock, source_db="legacy").run(until_idle=True)
    head = await store.events.head()
    assert head.seq == 2
    clock.advance(60)
    checkpoints = RecordedCheckpoints(store)
    checkpoints.fail_on = 2  # the snapshot's first batch is stored, its checkpoint is not
    with pytest.raises(ConnectionError):
        await ingester(store, feed, clock).run(until_idle=True)
    (started,) = checkpoints.put
    assert (started.name, started.phase, started.head) == (ROLE, "snapshot", head)
    assert started.updated_at == clock.now()


async def test_events_are_sealed_with_the_salts_the_ingester_is_given(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    await feed.collection("orders").insert_one({"_id": 1})

    def own_salt(event_id: str) -> bytes:
        return hashlib.sha256(b"own " + event_id.encode()).digest()

    s = settings()
    source = feed.source(["orders"], max_await=0.01)
    await Ingester(store=store, source=source, settings=s, clock=clock, salts=own_salt).run(
        until_idle=True
    )
    (event,) = await assert_log_intact(store)
    assert event.salt == own_salt(event.id).hex() != fixed_salt(event.id).hex()


class _LongTreeBuild:
    """A checkpointer whose tree build outlasts the lease: three pages of 4 s (lease 10 s),
    the heartbeat it was given awaited after each; then another instance tries the lease."""

    def __init__(self, store: Store, clock: FakeClock) -> None:
        self.store = store
        self.clock = clock
        self.taken_by_other: bool | None = None

    async def open(self, heartbeat: Any = None) -> None:
        for _ in range(3):
            self.clock.advance(4)
            if heartbeat is not None:
                await heartbeat()
        lease = await self.store.leases.acquire(ROLE, "other", now=self.clock.now(), ttl=10)
        self.taken_by_other = lease is not None
        if lease is not None:  # stop the capture here, or it would stand by for ever
            raise RuntimeError("the capture lease expired during the tree build")

    async def after_batch(self, events: Any) -> None:
        return None

    async def idle(self, *, final: bool = False) -> None:
        return None


async def test_a_long_tree_build_at_start_keeps_the_capture_lease(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    await feed.collection("orders").insert_one({"_id": 1})
    tree = _LongTreeBuild(store, clock)
    capture = ingester(store, feed, clock, owner="first")
    capture.checkpointer = tree  # type: ignore[assignment]
    stats = await capture.run(until_idle=True)
    assert tree.taken_by_other is False  # renewed after each page, so never expired
    assert stats.recorded == 1


async def test_the_seconds_spent_capturing_add_up_over_runs(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = iter([100.0, 103.5, 200.0, 201.0])
    monkeypatch.setattr(ingester_module, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    capture = ingester(store, feed, clock)
    assert (await capture.run(until_idle=True)).seconds == 3.5
    assert (await capture.run(until_idle=True)).seconds == 4.5
