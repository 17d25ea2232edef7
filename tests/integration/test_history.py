"""Point in time over both adapters: state at versions and times, diffs, histories, snapshots."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId

from eventstore.clock import FakeClock
from eventstore.history import (
    AmbiguousKey,
    History,
    ImpossibleRange,
    NoState,
    UnknownEntity,
    UnknownVersion,
)
from eventstore.ports import Store
from eventstore.sources.memory import MemoryChangeFeed
from tests.integration.ingest_helpers import all_events, ingester, start_from_the_beginning


async def write(store: Store, clock: FakeClock, ops: list[Any]) -> MemoryChangeFeed:
    """Apply writes through the feed one second apart, then capture them."""
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


async def test_state_at_each_version_and_at_times(store: Store, clock: FakeClock) -> None:
    await write(store, clock, LIFE)
    h = History(store, snapshot_every=2)
    v2 = await h.state("orders", "A", version=2)
    assert v2.document == {"_id": "A", "status": "paid", "items": [{"sku": "x", "qty": 2}]}
    v3 = await h.state("orders", "A", version=3)
    assert v3.document is not None and v3.document["items"][1] == {"sku": "y", "qty": 1}
    v4 = await h.state("orders", "A", version=4)
    assert (v4.exists, v4.document) == (False, None)
    v5 = await h.state("orders", "A", version=5)
    assert (v5.exists, v5.document) == (True, {"_id": "A", "status": "pending", "items": []})
    events = await all_events(store)
    # `at` equal to an event's occurred_at gives that version; a millisecond before, the one before
    at3 = events[2].occurred_at
    assert (await h.state("orders", "A", at=at3)).version == 3
    assert (await h.state("orders", "A", at=at3 - timedelta(milliseconds=1))).version == 2
    assert (await h.state("orders", "A", at=at3 + timedelta(microseconds=999))).version == 3
    latest = await h.state("orders", "A", at=at3 + timedelta(days=365))
    assert latest.version == 5 and latest.as_of == events[-1].occurred_at
    with pytest.raises(NoState):
        await h.state("orders", "A", at=events[0].occurred_at - timedelta(milliseconds=1))
    with pytest.raises(UnknownVersion):
        await h.state("orders", "A", version=6)
    with pytest.raises(UnknownEntity):
        await h.state("orders", "nope")


async def test_history_pages_carry_diffs_and_diff_spans_versions(
    store: Store, clock: FakeClock
) -> None:
    await write(store, clock, LIFE)
    h = History(store)
    first = await h.history("orders", "A", limit=2)
    assert [e.version for e, _ in first.events] == [1, 2] and first.next == "2"
    second = await h.history("orders", "A", limit=2, after=first.next)
    assert [e.version for e, _ in second.events] == [3, 4]
    _, d2 = first.events[1]
    assert [(c.path, c.op, c.before, c.after) for c in d2] == [
        ("status", "changed", "pending", "paid"),
        ("items.0.qty", "changed", 1, 2),
    ]
    changes = await h.diff("orders", "A", 1, 3)
    assert [(c.path, c.op) for c in changes] == [
        ("status", "changed"),
        ("items.0.qty", "changed"),
        ("items.1", "added"),
    ]
    with pytest.raises(ImpossibleRange):
        await h.diff("orders", "A", 3, 1)


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
        ],
    )
    h = History(store)
    with pytest.raises(AmbiguousKey) as err:
        await h.state("orders", "42")
    assert sorted(err.value.typed_keys) == ["int:42", "str:42"]
    assert (await h.state("orders", "int:42")).document == {"_id": 42}
    assert (await h.state("orders", "str:42")).document == {"_id": "42"}
    with pytest.raises(AmbiguousKey):
        await h.state("orders", str(oid))
    assert (await h.state("orders", f"oid:{oid}")).document == {"_id": oid}


class CountingReads:
    """Counts the store reads a reconstruction makes."""

    def __init__(self, store: Store) -> None:
        self.count = 0
        for port, names in (
            (store.events, ("read_entity", "read")),
            (store.snapshots, ("latest",)),
        ):
            for name in names:
                setattr(port, name, self._counted(getattr(port, name)))

    def _counted(self, fn: Any) -> Any:
        async def wrapper(*a: Any, **kw: Any) -> Any:
            self.count += 1
            return await fn(*a, **kw)

        return wrapper


async def test_any_reconstruction_costs_two_queries_with_lazy_snapshots(
    store: Store, clock: FakeClock
) -> None:
    ops = [o("insert_one", {"_id": 1, "n": 0})] + [
        o("update_one", {"_id": 1}, {"$set": {"n": k}}) for k in range(1, 60)
    ]
    await write(store, clock, ops)
    h = History(store, snapshot_every=10)
    counter = CountingReads(store)
    assert (await h.state("orders", "int:1", version=60)).document == {"_id": 1, "n": 59}
    assert counter.count == 2
    # the read laid snapshots at 10, 20, ..., 60: later reads start from them
    snap = await store.snapshots.latest("orders", 1, max_version=47)
    assert snap is not None and snap.version == 40 and snap.document == {"_id": 1, "n": 39}
    for version in (7, 33, 47, 60):
        counter.count = 0
        state = await h.state_of("orders", 1, version=version)
        assert state.document == {"_id": 1, "n": version - 1}
        assert counter.count == 2


async def test_a_time_inside_a_gap_is_uncertain(store: Store, clock: FakeClock) -> None:
    feed = await write(store, clock, [o("insert_one", {"_id": 1, "s": "a"})])
    clock.advance(5)
    await feed.collection("orders").update_one({"_id": 1}, {"$set": {"s": "b"}})
    feed.forget_before(None)
    clock.advance(5)
    await feed.collection("orders").update_one({"_id": 1}, {"$set": {"s": "c"}})
    feed.forget_before(None)
    await ingester(store, feed, clock).run(until_idle=True)
    gap = next(e for e in await all_events(store) if e.type == "gap")
    assert gap.document is not None
    h = History(store)
    inside = await h.state("orders", "int:1", at=gap.document["from_time"] + timedelta(seconds=1))
    assert inside.uncertain and inside.gap is not None
    after = await h.state("orders", "int:1", at=gap.document["to_time"] + timedelta(seconds=1))
    assert not after.uncertain and after.gap is None
    assert after.document == {"_id": 1, "s": "c"}
