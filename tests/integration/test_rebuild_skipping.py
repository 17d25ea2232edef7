"""Rebuilds that skip what the next change rewrites (`Projection.skippable`) give the same rows.

order_summary promises that a change leaving the total (and, for a missing total,
the status) alone is rewritten by the order's next change. Over generated orders
with untidy totals (doubles, NaN, text, missing, booleans), status changes,
deletes and re-inserts, its rows from a skipping rebuild (one worker, and
partitions folded in-process) equal those of a rebuild that applies every change
and those of following the log one change at a time: `created_at`, each
problem's seq, `version` and `seq` included.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import bson
import msgspec
import pytest
from bson import Decimal128
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore.clock import FakeClock
from eventstore.fold import apply_event
from eventstore.memory.store import MemoryStore
from eventstore.ports import Store
from eventstore.sources.memory import MemoryChangeFeed
from projections import Change, Projection, Write
from projections.orders import OrderSchema, order_projections
from projections.partitioned import fold_partition
from projections.replay import Replay
from projections.runner import ProjectionRunner
from projections.states import StateCache, state_key
from tests.helpers import LogBuilder, make_event
from tests.integration.ingest_helpers import ingester, start_from_the_beginning

# Statuses coded as numbers are statuses too (their decimal text): "1" is paid here.
PAID = ("paid", "shipped", "1")


def summary() -> Projection:
    """order_summary, built in the test: `make mutate` then knows these tests reach its code."""
    return order_projections(OrderSchema(paid_statuses=PAID))[0]


TOTALS = [
    Decimal128("10.00"),
    Decimal128("NaN"),
    36.32,
    float("nan"),
    float("inf"),
    "7.25",
    "abc",
    3,
    1,  # equal to True and to 1.0, but only True is not money
    1.0,
    True,
    [1],
    None,  # missing: a problem only while paid, so status changes matter (thrice as likely)
    None,
    None,
]
# 1 == 1.0 == True, but only 1 is a status ("1", paid): a change between them moves the problem
STATUSES: list[Any] = ["pending", "paid", "cancelled", 1, 1.0, True]
# createdAt by an op's n: absent, a date, and two that are no date (recorded at the first
# change, whatever later changes set it to)
CREATED: list[Any] = [None, "yesterday", datetime(2025, 1, 2, tzinfo=UTC), 1748736000]
IDS = [1, 2]

KINDS = ["insert", "total", "unset_total", "status", "status", "status", "touch", "touch", "delete"]
# (kind, order id, total, status, n): every field drawn, each kind reading its own
op = st.tuples(
    st.sampled_from([*KINDS, "other_stream", "drop_other"]),
    st.sampled_from(IDS),
    st.sampled_from(TOTALS),
    st.sampled_from(STATUSES),
    st.integers(0, 3),
)
# Every order starts with an insert, so most changes find their order.
opening = st.tuples(
    st.just("insert"),
    st.sampled_from(IDS),
    st.sampled_from(TOTALS),
    st.sampled_from(STATUSES),
    st.integers(0, 3),
)


async def _run(ops: list[tuple[Any, ...]], store: Store, clock: FakeClock) -> None:
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    orders = feed.collection("orders")
    for o in ops:
        clock.advance(60)
        kind, oid = o[0], o[1]
        exists = await orders.find_one({"_id": oid}) is not None
        if kind == "insert":
            doc = {
                "_id": oid,
                "number": f"N{oid}",
                "total": o[2],
                "status": o[3],
                "currency": "EUR",
            }
            if CREATED[o[4]] is not None:
                doc["createdAt"] = CREATED[o[4]]
            if exists:
                await orders.replace_one({"_id": oid}, doc)
            else:
                await orders.insert_one(doc)
        elif not exists:
            continue
        elif kind == "total":
            await orders.update_one({"_id": oid}, {"$set": {"total": o[2]}})
        elif kind == "unset_total":
            await orders.update_one({"_id": oid}, {"$unset": {"total": ""}})
        elif kind == "status":
            await orders.update_one({"_id": oid}, {"$set": {"status": o[3]}})
        elif kind == "touch":
            touched = {"note": o[4], "items": [o[4]], "createdAt": CREATED[o[4]]}
            await orders.update_one({"_id": oid}, {"$set": touched})
        elif kind == "delete":
            await orders.delete_one({"_id": oid})
        elif kind == "other_stream":
            await feed.collection("customers").insert_one({"total": "x", "status": "paid"})
        elif kind == "drop_other":  # a stream event in the log: what is held is applied first
            await feed.drop_collection("customers")
    await ingester(store, feed, clock).run(until_idle=True)


async def _rows(store: Store, collection: str) -> dict[str, Any]:
    found = await store.read_models.query(collection, filters={}, limit=1_000_000)
    return {r["_id"]: {k: v for k, v in r.items() if k != "_id"} for r in found}


def _shown(rows: dict[str, Any]) -> dict[str, Any]:
    """Rows comparable with ==: a NaN double in a row is not equal to itself."""
    return {k: repr(v) for k, v in rows.items()}


async def _check(ops: list[tuple[Any, ...]], batch: int) -> None:
    clock = FakeClock()
    store = MemoryStore()
    await _run(ops, store, clock)
    plain = msgspec.structs.replace(summary(), skippable=None)
    following = ProjectionRunner(store, plain, clock=clock, batch_size=1)
    await following.catch_up()
    expected = _shown(await _rows(store, plain.collection))
    assert expected or not any(o[0] == "insert" for o in ops)
    skipping = ProjectionRunner(store, summary(), clock=clock, batch_size=batch)
    await skipping.rebuild_now()
    assert _shown(await _rows(store, summary().collection)) == expected
    # rows past `rebuild_rows` are read back from the fresh collection: nothing is held then
    reading_back = ProjectionRunner(store, summary(), clock=clock, batch_size=batch)
    reading_back.rebuild_rows = 1
    await reading_back.rebuild_now()
    assert _shown(await _rows(store, summary().collection)) == expected
    events = await store.events.read(after_seq=0, limit=100_000)
    assert _shown(_written(fold_partition(summary(), events))) == expected
    assert _shown(_written(fold_partition(plain, events))) == expected


def _written(rows: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rows.items() if v is not None}


@settings(deadline=None, max_examples=200)
@given(
    first=st.lists(opening, min_size=1, max_size=2),
    ops=st.lists(op, max_size=30),
    batch=st.sampled_from([1, 4, 1000]),
)
def test_a_skipping_rebuild_equals_applying_every_change(
    first: list[tuple[Any, ...]], ops: list[tuple[Any, ...]], batch: int
) -> None:
    asyncio.run(_check(first + ops, batch))


def _touch(n: int) -> tuple[Any, ...]:
    return ("touch", 1, None, "", n)


def _status(status: str) -> tuple[Any, ...]:
    return ("status", 1, None, status, 0)


# One order, every change its own: the runs a rebuild holds are long and many. Half the
# totals are missing, so status changes in and out of the paid ones matter.
one_order_op = st.tuples(
    st.sampled_from(["total", "unset_total", "status", "status", "status", "touch", "touch"]),
    st.just(1),
    st.one_of(st.none(), st.sampled_from(TOTALS)),
    st.sampled_from(STATUSES),
    st.integers(0, 3),
)
one_order_rare = st.tuples(
    st.sampled_from(["delete", "insert"]),
    st.just(1),
    st.one_of(st.none(), st.sampled_from(TOTALS)),
    st.sampled_from(STATUSES),
    st.just(0),
)


@settings(deadline=None, max_examples=200)
@given(
    first=st.tuples(
        st.just("insert"),
        st.just(1),
        st.one_of(st.none(), st.sampled_from(TOTALS)),
        st.sampled_from(STATUSES),
        st.just(0),
    ),
    ops=st.lists(st.one_of(one_order_op, one_order_op, one_order_op, one_order_rare), max_size=20),
)
def test_one_orders_changes_rebuilt_skipping_equal_applying_each(
    first: tuple[Any, ...], ops: list[tuple[Any, ...]]
) -> None:
    asyncio.run(_check([first, *ops], 1000))


def _counted(projection: Projection, calls: list[int]) -> Projection:
    apply = projection.apply

    def counted(rows: Any, change: Change) -> list[Write]:
        calls.append(change.event.seq)
        return apply(rows, change)

    return msgspec.structs.replace(projection, apply=counted)


def _rebuilt(ops: list[tuple[Any, ...]]) -> tuple[list[int], dict[str, Any], int]:
    """A rebuild of order_summary over one order's `ops`: the seqs its apply was called at,
    the order's row, and the problems the runner counted."""

    async def go() -> tuple[list[int], dict[str, Any], int]:
        clock = FakeClock()
        store = MemoryStore()
        await _run(ops, store, clock)
        calls: list[int] = []
        runner = ProjectionRunner(store, _counted(summary(), calls), clock=clock)
        await runner.rebuild_now()
        (row,) = (await _rows(store, summary().collection)).values()
        return calls, row, runner.status.problems

    return asyncio.run(go())


def _problems(row: dict[str, Any], *fields: str) -> list[tuple[Any, ...]]:
    return [tuple(p[f] for f in fields) for p in row["problems"]]


def test_an_order_changed_ten_times_without_its_total_is_applied_twice() -> None:
    ops: list[tuple[Any, ...]] = [("insert", 1, Decimal128("NaN"), "paid", 0)]
    calls, row, counted = _rebuilt(ops + [("touch", 1, None, "", n % 4) for n in range(10)])
    assert calls == [1, 11]  # the insert (no row yet) and the last change
    assert row["version"] == 11 and row["seq"] == 11
    # the bad total is dated at the insert that brought it, as following dates it
    assert _problems(row, "seq", "reason") == [(1, "not_finite")] and counted == 1


def test_an_unreadable_created_at_is_recorded_once_whatever_follows() -> None:
    """The first change sets `created_at` and its problem for good: later changes (one
    setting a real date) are skipped, the record keeps its seq, and it is counted once."""
    ops: list[tuple[Any, ...]] = [("insert", 1, Decimal128("1.00"), "paid", 1)]
    calls, row, counted = _rebuilt(ops + [("touch", 1, None, "", n % 4) for n in range(6)])
    assert calls == [1, 7]
    assert _problems(row, "seq", "field", "value", "reason") == [
        (1, "created_at", "yesterday", "not_a_date")
    ]
    assert counted == 1 and row["created_at"] == datetime(2026, 1, 1, 0, 1, tzinfo=UTC)


def test_a_change_of_the_total_is_never_skipped() -> None:
    ops: list[tuple[Any, ...]] = [("insert", 1, Decimal128("1.00"), "paid", 0)]
    calls, row, _ = _rebuilt([*ops, _touch(0), ("total", 1, "abc", "", 0), _touch(1), _touch(2)])
    assert calls == [1, 3, 5]
    assert _problems(row, "seq", "value") == [(3, "abc")]


def test_a_status_change_that_makes_a_missing_total_a_problem_is_never_skipped() -> None:
    ops: list[tuple[Any, ...]] = [("insert", 1, None, "pending", 0), _touch(0)]
    calls, row, _ = _rebuilt([*ops, _status("paid"), _touch(1), _status("shipped"), _touch(2)])
    assert calls == [1, 3, 5, 6]  # shipped: paid either way, but the status changed
    assert _problems(row, "seq", "reason") == [(3, "missing")]


def test_a_status_replaced_by_an_equal_value_of_another_type_is_never_skipped() -> None:
    # True == 1, but only 1 is a status ("1", paid): the missing total becomes a problem there
    # (1.0 is status "1" too since ORDER_RULES 4: a number by its value)
    ops: list[tuple[Any, ...]] = [("insert", 1, None, True, 0), ("status", 1, None, 1, 0)]
    calls, row, _ = _rebuilt([*ops, _touch(0), _touch(1)])
    assert calls == [1, 2, 4]
    assert _problems(row, "seq", "reason") == [(2, "missing")] and row["status"] == "1"


def test_a_total_replaced_by_an_equal_value_of_another_type_is_never_skipped() -> None:
    # 1 == True, but True is not money: the change from one to the other moves the problem
    ops: list[tuple[Any, ...]] = [("insert", 1, 1, "paid", 0), ("total", 1, True, "", 0)]
    calls, row, _ = _rebuilt([*ops, _touch(0), _touch(1)])
    assert calls == [1, 2, 4]
    assert _problems(row, "seq", "reason") == [(2, "wrong_type")]


class _Orders:
    """A shop's `orders` collection through the memory feed, and its changes ingested."""

    def __init__(self, store: MemoryStore, clock: FakeClock) -> None:
        self.store, self.clock = store, clock
        self.feed = MemoryChangeFeed(clock=clock)
        collection = self.feed.collection("orders")
        self.insert_one, self.update_one = collection.insert_one, collection.update_one
        self.delete_one = collection.delete_one

    async def ingest(self) -> None:
        await ingester(self.store, self.feed, self.clock).run(until_idle=True)


async def _shop() -> tuple[MemoryStore, FakeClock, _Orders]:
    """An empty store that captures from the beginning, its clock, and the shop's orders."""
    clock = FakeClock()
    store = MemoryStore()
    await start_from_the_beginning(store)
    return store, clock, _Orders(store, clock)


def test_a_delete_is_never_held_its_row_shows_the_last_state() -> None:
    async def go() -> None:
        store, clock, orders = await _shop()
        # no total and no status: nothing about them changes, so only the delete's own
        # rule keeps it from being held (and applied with the state before the touch)
        await orders.insert_one({"_id": 1, "number": "N1", "items": ["old"]})
        await orders.update_one({"_id": 1}, {"$set": {"items": ["new"]}})
        await orders.delete_one({"_id": 1})
        await orders.ingest()
        await ProjectionRunner(store, summary(), clock=clock).rebuild_now()
        (row,) = (await _rows(store, summary().collection)).values()
        assert row["deleted"] is True and row["items"] == ["new"] and row["version"] == 3

    asyncio.run(go())


def test_a_re_insert_is_never_held() -> None:
    async def go() -> None:
        store, clock, orders = await _shop()
        await orders.insert_one({"_id": 1, "status": "paid"})  # paid, no total: a problem
        await orders.delete_one({"_id": 1})
        await orders.insert_one({"_id": 1, "number": "N1"})  # back, no status: no problem
        await orders.update_one({"_id": 1}, {"$set": {"status": "paid"}})  # a new one, at 4
        await orders.ingest()
        await ProjectionRunner(store, summary(), clock=clock).rebuild_now()
        (row,) = (await _rows(store, summary().collection)).values()
        assert [(p["seq"], p["reason"]) for p in row["problems"]] == [(4, "missing")]

    asyncio.run(go())


def test_a_released_run_is_applied_under_the_key_it_was_held_with() -> None:
    # A key that reads `before` and `after` together: each change of the run moves `g`
    # ("moved"), while the run as one change (A to A) would not ("same").
    def keys(change: Change) -> list[str]:
        b, a = change.before, change.after
        same = b is not None and a is not None and b.get("g") == a.get("g")
        return [f"{change.event.entity_key}:{'same' if same else 'moved'}"]

    def apply(rows: Any, change: Change) -> list[Write]:
        # the row it is given when it exists (so its write never depends on `before`)
        key = next(iter(rows), None) or keys(change)[0]
        return [Write(key=key, row={"v": change.event.version})]

    moving = Projection(
        name="moving", collection="rm_moving", keys=keys, apply=apply, skippable=lambda c: True
    )

    async def go() -> None:
        store, clock, orders = await _shop()
        await orders.insert_one({"_id": 1, "g": "A"})
        await orders.update_one({"_id": 1}, {"$set": {"g": "B"}})
        await orders.update_one({"_id": 1}, {"$set": {"g": "A"}})
        await orders.ingest()
        plain = msgspec.structs.replace(moving, skippable=None)
        await ProjectionRunner(store, plain, clock=clock, batch_size=1).catch_up()
        expected = await _rows(store, "rm_moving")
        assert {k: r["v"] for k, r in expected.items()} == {"1:moved": 3}
        await ProjectionRunner(store, moving, clock=clock).rebuild_now()
        assert await _rows(store, "rm_moving") == expected

    asyncio.run(go())


# -- Replay: what a rebuild holds back ------------------------------------------------------
def _recording(skip: Any, keys: Any = None) -> tuple[Projection, list[tuple[int, Any, Any]]]:
    """A projection writing {"v": version} per key; it records (seq, before, after) per apply."""
    applied: list[tuple[int, Any, Any]] = []

    def apply(rows: Any, c: Change) -> list[Write]:
        applied.append((c.event.seq, c.before, c.after))
        return [Write(key=k, row={"v": c.event.version}) for k in projection.keys(c)]

    projection = Projection(
        name="p",
        collection="rm_p",
        keys=keys or (lambda c: [c.event.entity_key]),
        apply=apply,
        skippable=skip,
    )
    return projection, applied


def test_held_changes_are_each_rows_last_released_in_seq_order() -> None:
    log = LogBuilder()
    events = [log.next(e) for e in ["a", "b", "a", "b", "a", "c"]]  # seqs 1..6
    projection, applied = _recording(lambda c: True)
    replay = Replay(projection)
    assert replay.run(events) == len(events)
    # each entity's first change applies (no row yet); the later ones are held
    assert [seq for seq, _, _ in applied] == [1, 2, 6] and sorted(replay.held) == ["a", "b"]
    a1_after, states = applied[0][2], replay.states
    replay.release()
    assert [seq for seq, _, _ in applied[3:]] == [4, 5]  # b's (seq 4) before a's (seq 5)
    # a run of held changes is one change: from the state before its first to its last's after
    _, before, after = applied[4]
    assert before is a1_after and after is next(s for k, (v, s) in states.items() if k[2] == "a")
    assert not replay.held  # the runner keeps each row's last applied seq in `_seq`
    assert replay.rows == {
        "a": {"v": 3, "_seq": 5},
        "b": {"v": 2, "_seq": 4},
        "c": {"v": 1, "_seq": 6},
    }
    assert replay.changed == {"a", "b", "c"}


def test_a_change_that_is_not_skippable_drops_the_one_held_for_its_row() -> None:
    log = LogBuilder()
    events = [log.next("a") for _ in range(3)]
    projection, applied = _recording(lambda c: c.event.version == 2)
    replay = Replay(projection)
    assert replay.run(events) == 3 and not replay.held  # version 3 rewrote what 2 wrote
    assert [seq for seq, _, _ in applied] == [1, 3]
    replay.release()
    assert [seq for seq, _, _ in applied] == [1, 3] and replay.rows == {"a": {"v": 3, "_seq": 3}}
    plain, applied = _recording(None)
    assert Replay(plain).run(events) == 3 and [s for s, _, _ in applied] == [1, 2, 3]


def test_another_entitys_change_of_a_held_row_applies_the_held_one_first() -> None:
    # Rows shared by entities (one per group): the promise is about the entity's next change,
    # so a held change is applied before another entity's change of its row, one key or two.
    log = LogBuilder()
    events = [log.next(e) for e in ["a", "a", "b", "a", "c", "c"]]
    groups = {"a": ["g"], "b": ["g"], "c": ["g", "h"]}
    projection, applied = _recording(lambda c: True, keys=lambda c: groups[c.event.entity_key])
    replay = Replay(projection)
    assert replay.run(events) == len(events)
    replay.release()
    # a's seq 2 is applied before b's seq 3, b's before a's seq 4, a's before c's seq 5
    assert [seq for seq, _, _ in applied] == [1, 2, 3, 4, 5, 6]


def test_a_state_not_kept_stops_the_replay_until_it_is_seeded() -> None:
    log = LogBuilder()
    events = [log.next(e) for e in ["a", "b", "c", "a"]]
    projection, applied = _recording(None)
    replay = Replay(projection, states=2)
    at = replay.run(events)
    assert at == 3 and len(replay.states) <= 2  # a's state went first (the oldest stored)
    folded = apply_event(None, events[0])
    replay.seed(events[3], folded)
    assert replay.run(events, at) == 4
    assert applied[-1][1] is folded and replay.rows["a"] == {"v": 2, "_seq": 4}


def test_a_change_of_two_rows_drops_its_entitys_held_one_and_applies_anothers_first() -> None:
    # c's third change touches g (held for a's second) and h (held for c's second): a's is
    # applied before it, c's own is rewritten by it.
    log = LogBuilder()
    events = [log.next(e) for e in ["a", "c", "a", "c", "c"]]  # seqs 1..5
    rows_of = {("a", 1): ["g"], ("c", 1): ["h"], ("a", 2): ["g"], ("c", 2): ["h"]}

    def keys(c: Change) -> list[str]:
        return rows_of.get((c.event.entity_key, c.event.version), ["g", "h"])

    projection, applied = _recording(lambda c: True, keys=keys)
    replay = Replay(projection)
    assert replay.run(events) == 5 and not replay.held
    assert [seq for seq, _, _ in applied] == [1, 2, 3, 5]  # c's seq 4 was rewritten by seq 5


def test_past_the_bound_the_oldest_stored_quarter_of_the_states_goes() -> None:
    log = LogBuilder()
    five = [log.next(e) for e in "abcde"]
    replay = Replay(_recording(None)[0], states=4)
    assert replay.run(five) == 5
    assert sorted(k[2] for k in replay.states) == ["c", "d", "e"]  # a and b went at e
    log = LogBuilder()
    replay = Replay(_recording(None)[0], states=1)
    assert replay.run([log.next("a"), log.next("b"), log.next("b")]) == 3  # b's state kept
    assert [k[2] for k in replay.states] == ["b"]


def test_a_partition_folds_an_entity_it_first_sees_past_version_1_onto_nothing() -> None:
    # A log that starts mid-history: the partition has no state before the entity's first
    # event here, and folds it onto None, as a partition always has.
    log = LogBuilder()
    _, a2, a3 = (log.next("a") for _ in range(3))
    projection, applied = _recording(None)
    assert fold_partition(projection, [a2, a3]) == {"a": {"v": 3, "_seq": 3}}
    assert [seq for seq, _, _ in applied] == [2, 3]
    assert applied[0][1] is None and applied[1][1] is applied[0][2]


def test_the_replays_states_move_into_a_state_cache_the_newest_kept() -> None:
    log = LogBuilder()
    firsts = [log.next(e) for e in "abc"]
    replay = Replay(_recording(None)[0])
    assert replay.run(firsts) == 3
    cache = StateCache(None, size=2)  # type: ignore[arg-type]  # no history: nothing is read
    assert cache.fold(firsts[2]) is not None  # c, already cached, is loaded as the newest
    cache.load(replay.states)
    a2, c2 = log.next("a"), log.next("c")
    c1_state = replay.states[state_key(c2)][1]
    assert cache.fold(a2) is None  # the oldest went: it would be read from history
    change = cache.fold(c2)
    assert change is not None and change.before is c1_state


def _with_problems(fail_at: int | None = None) -> Projection:
    """LATEST, its rows recording a problem at the seq of the change that wrote them."""

    def apply(rows: Any, change: Change) -> list[Write]:
        if change.event.seq == fail_at:
            raise RuntimeError(f"cannot apply {fail_at}")
        (w,) = _latest_apply(rows, change)
        assert w.row is not None
        return [Write(key=w.key, row={**w.row, "problems": [{"seq": change.event.seq}]})]

    return msgspec.structs.replace(LATEST, apply=apply)


def test_the_problems_of_released_changes_are_counted() -> None:
    async def go() -> None:
        from tests.integration.test_partitioned_rebuild import simulated

        store = await simulated(seed=5, orders=6, steps=60)
        calls: list[int] = []
        runner = ProjectionRunner(
            store, _counted(_with_problems(), calls), clock=FakeClock(), batch_size=7
        )
        await runner.rebuild_now()
        rows = await _rows(store, LATEST.collection)
        # each apply wrote a row holding one problem: the entities' first changes and the
        # released ones; each row holds its last apply's, and that is what is counted
        assert len(rows) < len(calls) < 2 * len(rows) + 1 and runner.status.problems == len(rows)
        assert {r["problems"][0]["seq"] for r in rows.values()} <= set(calls)

    asyncio.run(go())


def test_an_apply_that_raises_on_a_released_change_fails_at_its_seq() -> None:
    async def go() -> None:
        from projections.runner import ProjectionFailed
        from tests.integration.test_partitioned_rebuild import simulated

        store = await simulated(seed=5, orders=6, steps=60)
        events = await store.events.read(after_seq=0, limit=10_000)
        last = {}
        for e in events:
            last[e.entity_key] = e
        # an entity's last change, held (not its first, not a delete) and applied at the end
        held = next(e for e in last.values() if e.version > 1 and e.type == "updated")
        runner = ProjectionRunner(store, _with_problems(held.seq), clock=FakeClock())
        with pytest.raises(ProjectionFailed):
            await runner.rebuild_now()
        assert runner.status.failed_seq == held.seq
        assert runner.status.error == f"RuntimeError: cannot apply {held.seq}"

    asyncio.run(go())


# -- a plugin that declares skippable -------------------------------------------------------
def _latest_keys(change: Change) -> list[str]:
    return [f"{change.event.stream}:{change.event.entity_key}"]


def _latest_apply(rows: Any, change: Change) -> list[Write]:
    key = _latest_keys(change)[0]
    old = rows.get(key)
    doc = change.after or {}
    return [
        Write(
            key=key,
            row={
                "status": doc.get("status"),
                "version": change.event.version,
                "first_seen": old["first_seen"] if old else change.event.seq,
                "deleted": change.after is None,
            },
        )
    ]


LATEST = Projection(
    name="latest_status",
    collection="rm_latest_status",
    keys=_latest_keys,
    apply=_latest_apply,
    merge=lambda key, a, b: a if a["version"] >= b["version"] else b,
    # the row reads the latest state only (never `before`), but `first_seen` from the row
    skippable=lambda change: change.after is not None,
)


def test_a_plugins_skipping_rebuilds_equal_following_it() -> None:
    async def go() -> None:
        from tests.integration.test_partitioned_rebuild import simulated

        store = await simulated(seed=5, orders=12, steps=150)
        clock = FakeClock()
        plain = msgspec.structs.replace(LATEST, skippable=None)
        following = ProjectionRunner(store, plain, clock=clock, batch_size=3)
        await following.catch_up()
        expected = await _rows(store, LATEST.collection)
        assert len(expected) >= 12  # the simulator creates more orders as it goes
        calls: list[int] = []
        one = ProjectionRunner(store, _counted(LATEST, calls), clock=clock, batch_size=50)
        await one.rebuild_now()
        assert await _rows(store, LATEST.collection) == expected
        events = await store.events.read(after_seq=0, limit=100_000)
        # about twice per order (its first change, its last), not once per event
        assert len(expected) <= len(calls) <= 2 * len(expected) < len(events) / 2
        two = ProjectionRunner(store, LATEST, clock=clock, batch_size=50)
        two.processes = False
        assert await two.lease.try_acquire()
        await two.rebuild(workers=2)
        assert await _rows(store, LATEST.collection) == expected

    asyncio.run(go())


def _raising_skippable(at_seq: int) -> Projection:
    def skippable(change: Change) -> bool:
        if change.event.seq == at_seq:
            raise RuntimeError(f"cannot tell at {at_seq}")
        return change.after is not None

    return msgspec.structs.replace(
        LATEST, name="raising", collection="rm_raising", skippable=skippable
    )


def test_a_skippable_that_raises_fails_only_its_projection_at_that_seq() -> None:
    async def go() -> None:
        from projections.runner import ProjectionFailed
        from tests.integration.test_partitioned_rebuild import simulated

        store = await simulated(seed=6, orders=6, steps=40)
        await store.read_models.write("rm_raising", [("live", {"v": 1})])
        clock = FakeClock()
        runner = ProjectionRunner(store, _raising_skippable(20), clock=clock)
        with pytest.raises(ProjectionFailed):
            await runner.rebuild_now()
        assert runner.status.state == "failed" and runner.status.failed_seq == 20
        assert runner.status.error == "RuntimeError: cannot tell at 20"
        assert await _rows(store, "rm_raising") == {"live": {"v": 1}}  # the live model untouched
        # another projection over the same log rebuilds as ever
        other = ProjectionRunner(store, LATEST, clock=clock)
        await other.rebuild_now()
        assert await _rows(store, LATEST.collection)

    asyncio.run(go())


def test_a_skippable_that_raises_in_a_partition_fails_the_job() -> None:
    async def go() -> None:
        from projections.runner import ProjectionFailed, request_rebuild
        from tests.integration.test_partitioned_rebuild import simulated

        store = await simulated(seed=6, orders=6, steps=40)
        await store.read_models.write("rm_raising", [("live", {"v": 1})])
        runner = ProjectionRunner(store, _raising_skippable(20), clock=FakeClock())
        with pytest.raises(ProjectionFailed, match="failed at seq 20: RuntimeError: cannot tell"):
            await request_rebuild(runner, workers=2)
        (job,) = [j for j in store.jobs._jobs.values() if j.projection == "raising"]  # type: ignore[attr-defined]
        assert job.state == "failed" and "cannot tell at 20" in (job.error or "")
        assert await _rows(store, "rm_raising") == {"live": {"v": 1}}

    asyncio.run(go())


async def test_each_adapter_stores_the_rows_a_skipping_rebuild_writes(store: Store) -> None:
    """The same rows on MongoDB (mongomock) as on memory: what is held goes through BSON."""
    clock = FakeClock()
    ops: list[tuple[Any, ...]] = [
        ("insert", 1, Decimal128("NaN"), "paid", 0),
        ("insert", 2, 36.32, "pending", 0),
        _touch(0),
        ("status", 2, None, "paid", 0),
        ("touch", 2, None, "", 1),
        ("total", 1, "abc", "", 0),
        _touch(1),
        ("delete", 2, None, "", 0),
        _touch(2),
    ]
    await _run(ops, store, clock)
    plain = msgspec.structs.replace(summary(), skippable=None)
    await ProjectionRunner(store, plain, clock=clock, batch_size=1).catch_up()
    expected = _shown(await _rows(store, plain.collection))
    assert len(expected) == 2
    calls: list[int] = []
    await ProjectionRunner(store, _counted(summary(), calls), clock=clock).rebuild_now()
    assert _shown(await _rows(store, summary().collection)) == expected
    assert calls == [1, 2, 6, 8, 9]  # the inserts, the total and the delete, the last touch


def test_a_skippable_plugin_writing_a_row_its_keys_did_not_name_fails_at_that_change() -> None:
    # Held changes are released by key: a write to a row the keys did not name would slip
    # past them, so it is refused, following or rebuilding, at the change that made it.
    def apply(rows: Any, change: Change) -> list[Write]:
        return [*_latest_apply(rows, change), Write(key="everyone", row={"n": 1})]

    async def go() -> None:
        from projections.runner import ProjectionFailed
        from tests.integration.test_partitioned_rebuild import simulated

        store = await simulated(seed=5, orders=3, steps=10)
        first = (await store.events.read(after_seq=0, limit=1))[0].seq
        sprawling = msgspec.structs.replace(LATEST, apply=apply)
        message = (
            "PluginOutputError: apply wrote the row 'everyone', which keys did not name "
            "(['orders:{key}']): a projection that declares skippable writes only the rows "
            "its keys name"
        )
        for run in ("catch_up", "rebuild_now"):
            runner = ProjectionRunner(store, sprawling, clock=FakeClock())
            with pytest.raises(ProjectionFailed):
                await getattr(runner, run)()
            assert runner.status.failed_seq == first, run
            key = (await store.events.read(after_seq=0, limit=1))[0].entity_key
            assert runner.status.error == message.format(key=key), run

        # the same write made by a held change only, when it is released at the log's end
        def later(rows: Any, change: Change) -> list[Write]:
            held = change.event.version > 1 and change.after is not None  # all such are held
            return apply(rows, change) if held else _latest_apply(rows, change)

        runner = ProjectionRunner(
            store, msgspec.structs.replace(LATEST, apply=later), clock=FakeClock()
        )
        with pytest.raises(ProjectionFailed, match="apply wrote the row 'everyone'"):
            await runner.rebuild_now()
        (failed,) = await store.events.read(after_seq=(runner.status.failed_seq or 0) - 1, limit=1)
        assert failed.version > 1 and failed.seq > first
        # without skippable the same apply is a blind upsert of that row, as before
        plain = msgspec.structs.replace(sprawling, skippable=None)
        await ProjectionRunner(store, plain, clock=FakeClock()).catch_up()
        assert (await _rows(store, LATEST.collection))["everyone"]["n"] == 1
        await ProjectionRunner(store, plain, clock=FakeClock()).rebuild_now()
        assert (await _rows(store, LATEST.collection))["everyone"]["n"] == 1

    asyncio.run(go())


# -- rows shared by entities ----------------------------------------------------------------
def _statuses_apply(rows: Any, change: Change) -> list[Write]:
    old = rows.get("all")
    statuses = dict(old["statuses"]) if old else {}
    statuses[change.event.entity_key] = (change.after or {}).get("status")
    return [Write(key="all", row={"statuses": statuses})]


STATUSES_OF_ALL = Projection(
    name="statuses_of_all",
    collection="rm_statuses_of_all",
    keys=lambda change: ["all"],
    apply=_statuses_apply,
    merge=lambda key, a, b: {"statuses": {**a["statuses"], **b["statuses"]}},
    # A change sets its own entity's entry only, from `after`: the entity's next change
    # sets it again. Other entities' changes of the same row are not covered by the promise.
    skippable=lambda change: True,
)


def test_a_skipping_rebuild_of_rows_shared_by_entities_equals_following() -> None:
    async def go() -> None:
        from tests.integration.test_partitioned_rebuild import simulated

        store = await simulated(seed=7, orders=8, steps=120)
        clock = FakeClock()
        plain = msgspec.structs.replace(STATUSES_OF_ALL, skippable=None)
        await ProjectionRunner(store, plain, clock=clock, batch_size=5).catch_up()
        expected = await _rows(store, STATUSES_OF_ALL.collection)
        assert len(expected["all"]["statuses"]) >= 8
        assert len(set(expected["all"]["statuses"].values())) > 1  # statuses moved
        for batch in (1, 7, 1000):
            await ProjectionRunner(
                store, STATUSES_OF_ALL, clock=clock, batch_size=batch
            ).rebuild_now()
            assert await _rows(store, STATUSES_OF_ALL.collection) == expected, batch
        events = await store.events.read(after_seq=0, limit=100_000)
        (row,) = fold_partition(STATUSES_OF_ALL, events).values()
        assert row is not None and row["statuses"] == expected["all"]["statuses"]

    asyncio.run(go())


def test_a_status_that_cannot_be_read_away_and_back_is_never_held() -> None:
    # true -> cancelled -> true: the second true is a new record at its own seq. Holding the
    # middle change kept the first record's seq (found by the property test above).
    ops: list[tuple[Any, ...]] = [
        ("insert", 1, "abc", "pending", 0),
        ("status", 1, None, True, 0),
        ("status", 1, None, "cancelled", 0),
        ("status", 1, None, True, 0),
        _touch(1),
    ]
    asyncio.run(_check(ops, 1000))
    calls, row, _ = _rebuilt(ops)
    assert calls == [1, 2, 3, 4, 5]  # 3 and 4 never held (5, the last, is applied at the end)
    assert _problems(row, "seq", "field", "reason") == [
        (4, "status", "wrong_type"),
        (1, "total", "not_a_number"),
    ]


# The top-level total and status (the default schema) are read by a faster `skippable`
# than other paths: it must answer as the general one does, here read through `o.`.
NESTED = order_projections(
    OrderSchema(
        paid_statuses=PAID, paths={**OrderSchema().paths, "total": "o.total", "status": "o.status"}
    )
)[0]
UNREADABLE: list[Any] = [[1], {"a": 1}, float("nan")]


def _after(before: Any, drawn: Any) -> Any:
    """The after side: the very object before it ("same", an update that left it alone), an
    equal copy ("copy", an update that set the same value again) or another value."""
    if drawn == "same":
        return before
    if drawn == "copy":
        return bson.decode(bson.encode({"v": before}))["v"]
    return drawn


def _both(before: dict[str, Any], after: dict[str, Any], stream: str = "orders") -> None:
    event = make_event(seq=2, entity_id=1, version=2, stream=stream)
    fast, general = summary().skippable, NESTED.skippable
    assert fast is not None and general is not None
    expected = general(Change(event=event, before={"o": before}, after={"o": after}))
    assert fast(Change(event=event, before=before, after=after)) is expected, (before, after)


def test_top_level_fields_are_tested_for_skipping_as_any_path_is() -> None:
    statuses = [*STATUSES, *UNREADABLE, None]
    for status in statuses:  # the total left alone, the status changed or not (or removed)
        for drawn in ["same", "copy", *statuses]:
            for total in (Decimal128("1.00"), None):
                before = {"total": total, "status": status}
                after = {"total": total, "status": _after(status, drawn)}
                _both(before, after)
                del after["status"]
                _both(before, after)
    totals = [*TOTALS[:-2], *UNREADABLE]
    for total in totals:  # the total changed or not (or removed), and the status with it
        for drawn in ["same", "copy", *totals]:
            for status, new_status in (("paid", "paid"), ("paid", "pending"), (True, True)):
                before = {"total": total, "status": status}
                after = {"total": _after(total, drawn), "status": new_status}
                _both(before, after)
                del after["total"]
                _both(before, after)
    event = make_event(seq=2, entity_id=1, version=2)
    fast = summary().skippable
    assert fast is not None
    state = {"total": Decimal128("1.00"), "status": "paid"}
    assert fast(Change(event=event, before=state, after=state)) is True
    # another stream's change, or no state on either side: never skipped
    _both(state, state, stream="customers")
    assert (
        fast(
            Change(
                event=make_event(seq=2, entity_id=1, version=2, stream="customers"),
                before=state,
                after=state,
            )
        )
        is False
    )
    assert fast(Change(event=event, before=None, after=state)) is False
    assert fast(Change(event=event, before=state, after=None)) is False
