"""Point in time over both adapters: state at versions and times, keys, gaps, histories, diffs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from bson import ObjectId, Timestamp

import eventstore.history as history_module
from eventstore.clock import FakeClock
from eventstore.fold import PRE_IMAGE_MISMATCH, fold
from eventstore.history import (
    AmbiguousKey,
    History,
    HistoryError,
    ImpossibleRange,
    NoState,
    UnknownEntity,
    UnknownStream,
    UnknownVersion,
)
from eventstore.memory.snapshots import MemorySnapshots
from eventstore.model import DELETED, DROPPED, GAP, RENAMED, STREAM_KEY, Event
from eventstore.mongo.collections import SNAPSHOTS
from eventstore.mongo.store import MongoStore
from eventstore.ports import Store
from eventstore.sources.memory import MemoryChangeFeed
from tests.helpers import LogBuilder
from tests.integration.ingest_helpers import all_events, ingester, start_from_the_beginning

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
MS = timedelta(milliseconds=1)


async def write(store: Store, clock: FakeClock, ops: list[Any]) -> MemoryChangeFeed:
    """Apply writes through the memory feed one second apart, then capture them."""
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    orders = feed.collection("orders")
    for op in ops:
        clock.advance(1)
        await op(orders)
    await ingester(store, feed, clock).run(until_idle=True)
    return feed


def o(method: str, *args: Any) -> Any:
    async def run(coll: Any) -> None:
        await getattr(coll, method)(*args)

    return run


LIFE = [
    o("insert_one", {"_id": "A", "status": "pending", "items": [{"sku": "x", "qty": 1}]}),
    o("update_one", {"_id": "A"}, {"$set": {"status": "paid", "items.0.qty": 2}}),
    o("update_one", {"_id": "A"}, {"$push": {"items": {"sku": "y", "qty": 1}}}),
    o("delete_one", {"_id": "A"}),
    o("insert_one", {"_id": "A", "status": "pending", "items": []}),
]


def update(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "changes": {
            "updatedFields": {"status": status},
            "removedFields": [],
            "truncatedArrays": [],
        },
        **extra,
    }


async def timed_log(store: Store, times: list[datetime], entity_id: Any = 1) -> list[Event]:
    """One entity: created at times[0], then one status update per later time."""
    log = LogBuilder()
    events = [log.next(entity_id, occurred_at=times[0])]
    for n, t in enumerate(times[1:], start=1):
        events.append(log.next(entity_id, occurred_at=t, **update(f"s{n}")))
    await store.events.append(events)
    return events


async def test_state_at_each_version_through_delete_and_re_creation(
    store: Store, clock: FakeClock
) -> None:
    await write(store, clock, LIFE)
    h = History(store, snapshot_every=2)
    v1 = await h.state("orders", "A", version=1)
    assert v1.document == {"_id": "A", "status": "pending", "items": [{"sku": "x", "qty": 1}]}
    v2 = await h.state("orders", "A", version=2)
    assert v2.document == {"_id": "A", "status": "paid", "items": [{"sku": "x", "qty": 2}]}
    v3 = await h.state("orders", "A", version=3)
    assert v3.document is not None and v3.document["items"] == [
        {"sku": "x", "qty": 2},
        {"sku": "y", "qty": 1},
    ]
    v4 = await h.state("orders", "A", version=4)
    assert (v4.version, v4.exists, v4.document) == (4, False, None)
    v5 = await h.state("orders", "A", version=5)
    assert (v5.exists, v5.document) == (True, {"_id": "A", "status": "pending", "items": []})
    latest = await h.state("orders", "A")
    assert latest == v5 and not latest.uncertain and latest.gap is None
    events = await all_events(store)
    assert [s.as_of for s in (v1, v2, v3, v4, v5)] == [e.occurred_at for e in events]


async def test_state_at_a_time_is_the_newest_version_at_or_before_it(store: Store) -> None:
    times = [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2) + 5 * MS]
    await timed_log(store, times)
    h = History(store, snapshot_every=100)
    at_exactly = await h.state("orders", "int:1", at=times[2])
    assert (at_exactly.version, at_exactly.as_of) == (3, times[2])
    assert (await h.state("orders", "int:1", at=times[2] - MS)).version == 2
    # compared at millisecond precision: 999 microseconds later is still that millisecond
    assert (
        await h.state("orders", "int:1", at=times[2] + timedelta(microseconds=999))
    ).version == 3
    assert (await h.state("orders", "int:1", at=times[0])).version == 1
    future = await h.state("orders", "int:1", at=T0 + timedelta(days=3650))
    assert future.version == 3 and future.document is not None
    assert future.document["status"] == "s2"
    # any zone: the same instant written with an offset
    plus_two = times[1].astimezone(timezone(timedelta(hours=2)))
    assert (await h.state("orders", "int:1", at=plus_two)).version == 2
    with pytest.raises(NoState) as before:
        await h.state("orders", "int:1", at=times[0] - MS)
    assert str(before.value) == (
        "'int:1' has no recorded state at 2026-05-01T11:59:59.999Z: "
        "its first event is at 2026-05-01T12:00:00.000Z"
    )


async def test_several_versions_in_one_millisecond_give_the_newest(store: Store) -> None:
    await timed_log(store, [T0, T0 + MS, T0 + MS, T0 + MS, T0 + 2 * MS])
    for every in (1, 2, 100):
        h = History(store, snapshot_every=every)
        assert (await h.state("orders", "int:1", at=T0 + MS)).version == 4
        assert (await h.state("orders", "int:1", at=T0)).version == 1


async def test_versions_that_do_not_exist_and_questions_that_cannot_be_asked(
    store: Store, clock: FakeClock
) -> None:
    await write(store, clock, LIFE)
    h = History(store, snapshot_every=2, streams=["orders"])
    with pytest.raises(UnknownVersion, match="latest is 5"):
        await h.state("orders", "A", version=6)
    with pytest.raises(UnknownVersion):
        await h.state("orders", "A", version=0)
    with pytest.raises(UnknownEntity, match="no entity 'nope'"):
        await h.state("orders", "nope")
    with pytest.raises(UnknownEntity):
        await h.state("orders", "int:5")
    with pytest.raises(UnknownStream, match="unknown stream 'refunds'"):
        await h.state("refunds", "A")
    with pytest.raises(HistoryError, match="24 hexadecimal"):
        await h.state("orders", "oid:xyz")
    with pytest.raises(HistoryError, match="not both"):
        await h.state("orders", "A", version=1, at=T0)
    with pytest.raises(UnknownEntity):
        await h.history("orders", "nope")
    with pytest.raises(UnknownEntity):
        await h.diff("orders", "nope", 1, 2)
    with pytest.raises(UnknownEntity):
        await h.verify_entity("orders", "nope")


async def test_bare_keys_that_name_two_types_ask_for_a_typed_key(
    store: Store, clock: FakeClock
) -> None:
    oid = ObjectId()
    await write(
        store,
        clock,
        [
            o("insert_one", {"_id": "42"}),
            o("insert_one", {"_id": 42}),
            o("insert_one", {"_id": oid}),
            o("insert_one", {"_id": str(oid)}),
            o("insert_one", {"_id": 7}),
        ],
    )
    h = History(store)
    with pytest.raises(AmbiguousKey) as err:
        await h.state("orders", "42")
    assert err.value.typed_keys == ["int:42", "str:42"]
    assert "int:42, str:42" in str(err.value)
    assert (await h.state("orders", "int:42")).document == {"_id": 42}
    assert (await h.state("orders", "str:42")).document == {"_id": "42"}
    with pytest.raises(AmbiguousKey) as err:
        await h.state("orders", str(oid))
    assert err.value.typed_keys == [f"oid:{oid}", f"str:{oid}"]
    assert (await h.state("orders", f"oid:{oid}")).document == {"_id": oid}
    # a bare key that names one existing entity needs no type
    assert (await h.state("orders", "7")).document == {"_id": 7}
    assert await h.resolve("orders", "7") == 7
    with pytest.raises(AmbiguousKey):
        await h.history("orders", "42")


async def test_a_time_inside_a_gap_is_uncertain_and_says_where_the_gap_is(
    store: Store, clock: FakeClock
) -> None:
    feed = await write(store, clock, [o("insert_one", {"_id": 1, "s": "a"})])
    clock.advance(5)
    await feed.collection("orders").update_one({"_id": 1}, {"$set": {"s": "b"}})
    feed.forget_before(None)
    clock.advance(5)
    await feed.collection("orders").update_one({"_id": 1}, {"$set": {"s": "c"}})
    await feed.collection("orders").insert_one({"_id": 2, "s": "new"})
    feed.forget_before(None)
    await ingester(store, feed, clock).run(until_idle=True)
    gap = next(e for e in await all_events(store) if e.type == GAP)
    assert gap.document is not None
    start, end = gap.document["from_time"], gap.document["to_time"]
    h = History(store)
    inside = await h.state("orders", "int:1", at=start + timedelta(seconds=1))
    assert inside.uncertain and inside.gap is not None
    assert (inside.gap.from_, inside.gap.to) == (start.replace(tzinfo=UTC), end.replace(tzinfo=UTC))
    assert inside.document == {"_id": 1, "s": "a"}  # the last state observed before the gap
    after = await h.state("orders", "int:1", at=end + timedelta(seconds=1))
    assert not after.uncertain and after.gap is None
    assert after.document == {"_id": 1, "s": "c"}
    by_version = await h.state("orders", "int:1", version=1)
    assert not by_version.uncertain
    # an entity first seen after the gap may have existed during it: the refusal says so
    with pytest.raises(NoState, match="inside a gap"):
        await h.state("orders", "int:2", at=start + timedelta(seconds=1))
    # the stream's own record lists the gap, and has no state
    stream_page = await h.history("orders", STREAM_KEY)
    assert [e.event.type for e in stream_page.events] == [GAP]
    with pytest.raises(HistoryError) as no_state:
        await h.state("orders", STREAM_KEY)
    assert str(no_state.value) == (
        "$stream is the stream's own record (gaps, drops, renames, rejected changes): "
        "it has a history, not a state"
    )


async def test_a_gap_holds_its_bounds_exactly(store: Store, clock: FakeClock) -> None:
    # Both bounds are inside the gap (inclusive); one millisecond outside either is not.
    feed = await write(
        store,
        clock,
        [o("insert_one", {"_id": 1, "s": "a"}), o("update_one", {"_id": 1}, {"$set": {"s": "b"}})],
    )
    clock.advance(5)
    await feed.collection("orders").update_one({"_id": 1}, {"$set": {"s": "lost"}})
    feed.forget_before(None)
    clock.advance(5)
    await feed.collection("orders").update_one({"_id": 1}, {"$set": {"s": "c"}})
    feed.forget_before(None)
    await ingester(store, feed, clock).run(until_idle=True)
    gap = next(e for e in await all_events(store) if e.type == GAP)
    assert gap.document is not None
    start = gap.document["from_time"].replace(tzinfo=UTC)
    end = gap.document["to_time"].replace(tzinfo=UTC)
    assert start < end
    h = History(store)
    # at `from`: the last state observed before the gap; at `to`: the re-snapshot's
    for at, seen in ((start, "b"), (end, "c")):
        state = await h.state("orders", "int:1", at=at)
        assert state.uncertain is True, at
        assert state.gap is not None and (state.gap.from_, state.gap.to) == (start, end)
        assert state.document == {"_id": 1, "s": seen}
    before = await h.state("orders", "int:1", at=start - MS)
    assert (before.uncertain, before.gap, before.document) == (False, None, {"_id": 1, "s": "a"})
    after = await h.state("orders", "int:1", at=end + MS)
    assert (after.uncertain, after.gap) == (False, None)
    assert after.document == {"_id": 1, "s": "c"}


async def test_errors_name_the_key_the_stream_and_the_version(
    store: Store, clock: FakeClock
) -> None:
    await write(store, clock, LIFE[:2])
    h = History(store, streams=["shipments", "orders"])
    with pytest.raises(UnknownEntity) as unknown:
        await h.resolve("orders", "7")
    assert str(unknown.value) == "no entity '7' in stream 'orders'"
    with pytest.raises(UnknownStream) as stream:
        await h.resolve("refunds", "A")
    assert str(stream.value) == (
        "unknown stream 'refunds' (captured: orders, shipments), and no entity 'A' in it"
    )
    for a, b, low in ((0, 2, 0), (2, 0, 0), (0, -3, -3)):
        with pytest.raises(UnknownVersion) as version:
            await h.diff("orders", "A", a, b)
        assert str(version.value) == f"versions start at 1, got {low}"
    for a, b in ((1, 9), (9, 9)):
        with pytest.raises(UnknownVersion) as missing:
            await h.diff("orders", "A", a, b)
        assert str(missing.value) == "'A' has no version 9: its latest is 2"
    same = await h.diff("orders", "A", 2, 2)
    assert (same.from_version, same.to_version, same.changes) == (2, 2, [])
    both = await h.diff("orders", "A", 1, 2)
    assert [c.path for c in both.changes] == ["status", "items.0.qty"]


async def test_gaps_are_read_from_their_times_or_their_cluster_times(store: Store) -> None:
    # Gaps recorded with times (`from_time`, `to_time`, what the ingester writes) and older ones
    # with only cluster times; other stream events and a gap without a document are no gap.
    log = LogBuilder()
    t = T0 + timedelta(seconds=100)
    events = [
        log.next(1, occurred_at=T0, document={"_id": 1, "n": 1}),
        log.next(None, type="dropped", occurred_at=T0 + timedelta(seconds=1), document={}),
        log.next(None, type=GAP, occurred_at=t, document={}),
        log.next(
            None,
            type=GAP,
            occurred_at=t,
            document={
                "from": Timestamp(int((t + timedelta(seconds=10)).timestamp()), 1),
                "to": Timestamp(int((t + timedelta(seconds=20)).timestamp()), 1),
                # the times win over the cluster times (which are whole seconds)
                "from_time": t + timedelta(seconds=10, milliseconds=500),
                "to_time": t + timedelta(seconds=20, milliseconds=500),
            },
        ),
        log.next(
            None,
            type=GAP,
            occurred_at=t,
            document={
                "from": Timestamp(int((t + timedelta(seconds=30)).timestamp()), 1),
                "to": Timestamp(int((t + timedelta(seconds=40)).timestamp()), 1),
            },
        ),
    ]
    # a gap with one bound only is no gap either
    events.append(
        log.next(None, type=GAP, occurred_at=t, document={"from_time": t + timedelta(seconds=50)})
    )
    await store.events.append(events)
    h = History(store)

    async def gap_at(seconds: float) -> tuple[float, float] | None:
        state = await h.state("orders", "int:1", at=t + timedelta(seconds=seconds))
        assert state.uncertain is (state.gap is not None)
        if state.gap is None:
            return None
        return ((state.gap.from_ - t).total_seconds(), (state.gap.to - t).total_seconds())

    assert await gap_at(10.499) is None
    assert await gap_at(10.5) == (10.5, 20.5)
    assert await gap_at(20.5) == (10.5, 20.5)
    assert await gap_at(20.501) is None
    assert await gap_at(29.999) is None
    assert await gap_at(30) == (30.0, 40.0)
    assert await gap_at(40) == (30.0, 40.0)
    assert await gap_at(40.001) is None
    assert await gap_at(50) is None
    assert await gap_at(-99) is None  # the dropped event and the empty gap hold no time


async def test_history_pages_carry_field_diffs(store: Store, clock: FakeClock) -> None:
    await write(store, clock, LIFE)
    h = History(store, snapshot_every=2)
    first = await h.history("orders", "A", limit=2)
    assert [e.event.version for e in first.events] == [1, 2] and first.next == "2"
    assert first.entity_key == "A" and first.stream == "orders"
    assert [(c.path, c.op, c.before, c.after) for c in first.events[0].diff] == [
        ("_id", "added", None, "A"),
        ("status", "added", None, "pending"),
        ("items", "added", None, [{"sku": "x", "qty": 1}]),
    ]
    assert [(c.path, c.op, c.before, c.after) for c in first.events[1].diff] == [
        ("status", "changed", "pending", "paid"),
        ("items.0.qty", "changed", 1, 2),
    ]
    second = await h.history("orders", "A", limit=2, after=first.next)
    assert [e.event.version for e in second.events] == [3, 4] and second.next == "4"
    assert [(c.path, c.op) for c in second.events[0].diff] == [("items.1", "added")]
    assert [c.op for c in second.events[1].diff] == ["removed"] * 3
    last = await h.history("orders", "A", limit=2, after=second.next)
    assert [e.event.version for e in last.events] == [5] and last.next is None
    assert [c.op for c in last.events[0].diff] == ["added"] * 3

    ranged = await h.history("orders", "A", from_version=2, to_version=3)
    assert [e.event.version for e in ranged.events] == [2, 3] and ranged.next is None
    assert (await h.history("orders", "A", from_version=2, to_version=3, limit=1)).next == "2"
    # versions it never had are an unknown version, as for state and diff (not an empty page)
    for start, end in ((9, None), (6, 7)):
        with pytest.raises(UnknownVersion) as never:
            await h.history("orders", "A", from_version=start, to_version=end)
        assert str(never.value) == f"'A' has no version {start}: its latest is 5"
    # a range reaching past the latest ends there
    tail = await h.history("orders", "A", from_version=5, to_version=9)
    assert [e.event.version for e in tail.events] == [5] and tail.next is None
    with pytest.raises(ImpossibleRange):
        await h.history("orders", "A", from_version=3, to_version=2)
    for bad in ({"limit": 0}, {"limit": 1001}, {"after": "x"}, {"from_version": 0}):
        with pytest.raises(HistoryError):
            await h.history("orders", "A", **bad)


async def test_diff_between_versions_field_by_field(store: Store, clock: FakeClock) -> None:
    await write(store, clock, LIFE)
    h = History(store, snapshot_every=2)
    d = await h.diff("orders", "A", 1, 3)
    assert (d.from_version, d.to_version) == (1, 3)
    assert [(c.path, c.op, c.before, c.after) for c in d.changes] == [
        ("status", "changed", "pending", "paid"),
        ("items.0.qty", "changed", 1, 2),
        ("items.1", "added", None, {"sku": "y", "qty": 1}),
    ]
    assert (await h.diff("orders", "A", 2, 2)).changes == []
    to_deleted = await h.diff("orders", "A", 3, 4)
    assert {(c.path, c.op) for c in to_deleted.changes} == {
        ("_id", "removed"),
        ("status", "removed"),
        ("items", "removed"),
    }
    across = await h.diff("orders", "A", 3, 5)
    assert [(c.path, c.op) for c in across.changes] == [
        ("status", "changed"),
        ("items.0", "removed"),
        ("items.1", "removed"),
    ]
    with pytest.raises(ImpossibleRange):
        await h.diff("orders", "A", 3, 1)
    with pytest.raises(UnknownVersion):
        await h.diff("orders", "A", 1, 6)


async def test_reconstruction_equals_folding_from_the_first_event_at_every_point(
    store: Store,
) -> None:
    """Whatever the interval and the order of the questions, a snapshot changes nothing."""
    times = [T0 + timedelta(seconds=n // 3) for n in range(40)]  # three versions per second
    log = LogBuilder()
    events = [log.next("E", occurred_at=times[0])]
    for n in range(1, 40):
        # version 18 deletes the entity, version 19 creates it again
        kind = DELETED if n == 17 else ("created" if n == 18 else None)
        extra: dict[str, Any] = {}
        if kind == "created":
            extra["document"] = {"_id": "E", "status": "again", "n": n}
        elif kind is None:
            extra = update(f"s{n}")
        events.append(log.next("E", type=kind, occurred_at=times[n], **extra))
    await store.events.append(events)
    expected = [fold(events[:v]) for v in range(1, 41)]
    for every in (1, 4, 7, 100):
        await clear_snapshots(store)
        h = History(store, snapshot_every=every)

        async def at_versions(versions: Any, h: History = h, every: int = every) -> None:
            for v in versions:
                got = await h.state("orders", "E", version=v)
                assert (got.document, got.exists) == (expected[v - 1].state, v != 18), (every, v)

        async def at_times(h: History = h, every: int = every) -> None:
            for n, t in enumerate(times):
                newest = max(i for i, tt in enumerate(times) if tt <= t) + 1
                got = await h.state("orders", "E", at=t)
                assert (got.version, got.document) == (newest, expected[newest - 1].state), (
                    every,
                    n,
                )

        # the time path lays the snapshots first, then the version path uses them; then the
        # other way round on a fresh cache
        await at_times()
        await at_versions(range(40, 0, -3))
        await clear_snapshots(store)
        await at_versions((40, 1, 17, 18, 19, 8, 39))
        await at_times()


async def clear_snapshots(store: Store) -> None:
    """Empty the snapshot cache (what an operator may do at any time)."""
    if isinstance(store, MongoStore):
        await store.db[SNAPSHOTS].delete_many({})
    else:
        store.snapshots = MemorySnapshots()


async def test_an_update_is_never_folded_from_a_full_document(store: Store) -> None:
    log = LogBuilder()
    created = log.next("X", document={"_id": "X", "status": "new", "n": 1})
    # an update carrying a (later, looked-up) full document: only its changes count
    updated = log.next("X", **update("paid"), document={"_id": "X", "status": "shipped", "n": 9})
    await store.events.append([created, updated])
    state = await History(store).state("orders", "X")
    assert state.document == {"_id": "X", "status": "paid", "n": 1}


async def test_pre_image_findings_come_through_from_snapshots_too(store: Store) -> None:
    log = LogBuilder()
    events = [log.next("P", document={"_id": "P", "status": "new"})]
    events.append(log.next("P", **update("paid"), before={"_id": "P", "status": "other"}))
    events += [log.next("P", **update(f"s{n}")) for n in range(3, 9)]
    await store.events.append(events)
    h = History(store, snapshot_every=3)
    cold = await h.state("orders", "P", version=8)  # lays 3 and 6, carrying the finding
    warm = await h.state("orders", "P", version=8)  # folds from 6
    assert [f.kind for f in cold.findings] == [PRE_IMAGE_MISMATCH]
    assert cold.findings == warm.findings and cold.findings[0].version == 2
    assert (await h.state("orders", "P", version=1)).findings == []


async def test_verification_of_an_entity_reads_it_in_pages(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_module, "_PAGE", 3)
    await timed_log(store, [T0 + timedelta(seconds=n) for n in range(8)])
    h = History(store)
    verdict = await h.verify_entity("orders", "int:1")
    assert verdict.valid and verdict.events_checked == 8
    stream = await h.verify_stream("orders")
    assert stream.valid and (stream.entities_checked, stream.events_checked) == (1, 8)
    log_verdict = await h.verify_log()
    assert log_verdict.valid and log_verdict.events_checked == 8
    assert log_verdict.head_matches is None  # no checkpoint head recorded by an ingester here
    with pytest.raises(UnknownStream):
        await History(store, streams=["orders"]).verify_stream("refunds")
    assert (await History(store).verify_stream("refunds")).entities_checked == 0


async def test_only_gap_events_of_the_stream_record_are_read_as_gaps(store: Store) -> None:
    """A rename or a drop also has a document: it is no gap, and never read as one."""
    log = LogBuilder()
    events = [
        log.next(1),
        log.next(None, RENAMED, document={"to": {"db": "shop", "coll": "old_orders"}}),
        log.next(None, DROPPED, document={"from": "not a time", "to": "not a time"}),
        log.next(1),
    ]
    await store.events.append(events)
    state = await History(store).state("orders", "int:1", at=events[2].occurred_at)
    assert (state.version, state.uncertain, state.gap) == (1, False, None)
