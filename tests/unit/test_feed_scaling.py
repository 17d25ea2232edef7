"""The memory change feed and the simulator cost the same per write at any collection size.

A write addressed by `_id` looks at its own document only: counted through
`FeedDocuments.examined`, which a write that scanned the collection would drive
up in proportion to its size (the counter is shown to see scans, too). A time
ratio (per write at 4,000 documents against 400) backs the count up for what
the counter does not see (the history, the simulator's own bookkeeping).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

from eventstore.clock import FakeClock
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.simulator import IdPool, Simulator
from tests.benchmarks.bench_listings import _best

START = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
STEPS = 300


async def _per_step(orders: int) -> tuple[float, float]:
    """(documents examined per step, seconds per step) of `STEPS` steps after `orders` orders."""
    clock = FakeClock(START)
    feed = MemoryChangeFeed(clock=clock)
    simulator = Simulator(feed, seed=5, clock=clock)
    await simulator.create_orders(orders)
    examined = feed.documents.examined

    async def batch() -> int:
        for _ in range(STEPS // 5):
            clock.advance(1)
            await simulator.step()
        return STEPS // 5

    # best of five batches, the collector out of each (a pass over the larger heap costs
    # more, and whether one falls in a batch is chance): a loaded machine only adds time
    best = await _best(batch)
    return (feed.documents.examined - examined) / STEPS, best


async def test_a_simulated_write_examines_only_its_own_document_at_any_size() -> None:
    small_examined, small_seconds = await _per_step(400)
    large_examined, large_seconds = await _per_step(4000)
    # A step reads its order by _id and writes it by _id: at most two looks, at any size.
    assert 0 < small_examined <= 2
    assert 0 < large_examined <= 2
    # Ten times the documents: a scanning write would cost ~10x; allow noise, not growth.
    assert large_seconds <= 3 * small_seconds, (small_seconds, large_seconds)


async def test_the_counter_sees_a_scan() -> None:
    feed = MemoryChangeFeed(clock=FakeClock(START))
    orders = feed.collection("orders")
    await orders.insert_many([{"_id": i, "status": "pending"} for i in range(50)])
    before = feed.documents.examined
    await orders.update_one({"_id": 49}, {"$set": {"status": "paid"}})
    assert feed.documents.examined - before == 1
    before = feed.documents.examined
    await orders.update_one({"status": "paid"}, {"$set": {"status": "shipped"}})
    assert feed.documents.examined - before == 50  # no _id: every document is looked at
    before = feed.documents.examined
    assert await orders.count_documents({"_id": {"$in": [3, 7, 99]}}) == 2
    assert feed.documents.examined - before == 2


def test_id_pool_add_discard_and_pick_stay_consistent() -> None:
    rng = random.Random(3)
    pool, model = IdPool(), set[int]()
    for _ in range(5000):
        value = rng.randrange(200)
        if rng.random() < 0.5:
            pool.add(value)
            model.add(value)
        else:
            pool.discard(value)
            model.discard(value)
        assert len(pool) == len(model)
    assert {pool[i] for i in range(len(pool))} == model
    assert all(v in pool for v in model) and 200 not in pool
