"""Property: for generated workloads, incremental models equal a rebuild and direct computations."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore.clock import FakeClock
from eventstore.keys import typed_key
from eventstore.memory.store import MemoryStore
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.simulator import Simulator
from projections.orders import ORDER_PROJECTIONS, ORDER_SUMMARY, ORDERS_BY_STATUS
from projections.runner import ProjectionRunner
from tests.integration.ingest_helpers import ingester, start_from_the_beginning


async def _check(seed: int, orders: int, steps: int, batch: int) -> None:
    clock = FakeClock()
    store = MemoryStore()
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    sim = Simulator(feed, seed=seed, clock=clock)
    await sim.create_orders(orders)
    runners = [ProjectionRunner(store, p, clock=clock, batch_size=batch) for p in ORDER_PROJECTIONS]
    for half in (steps // 2, steps - steps // 2):  # projections follow while the log grows
        for _ in range(half):
            clock.advance(5400)
            await sim.step()
        await ingester(store, feed, clock).run(until_idle=True)
        for r in runners:
            await r.catch_up()
    incremental = {p.name: await _rows(store, p.collection) for p in ORDER_PROJECTIONS}
    final = await feed.collection("orders").find({})
    live = {k: r for k, r in incremental[ORDER_SUMMARY.name].items() if not r["deleted"]}
    assert set(live) == {typed_key(d["_id"]) for d in final}  # rows are keyed by typed key
    counts = {k: r["count"] for k, r in incremental[ORDERS_BY_STATUS.name].items() if r["count"]}
    assert counts == dict(Counter(d["status"] for d in final))
    for r in runners:
        await r.rebuild_now()
    assert {p.name: await _rows(store, p.collection) for p in ORDER_PROJECTIONS} == incremental


async def _rows(store: MemoryStore, collection: str) -> dict[str, Any]:
    found = await store.read_models.query(collection, filters={}, limit=1_000_000)
    return {r["_id"]: {k: v for k, v in r.items() if k != "seq"} for r in found}


@settings(deadline=None)
@given(
    seed=st.integers(0, 10_000),
    orders=st.integers(1, 8),
    steps=st.integers(0, 60),
    batch=st.sampled_from([1, 3, 16, 1000]),
)
def test_incremental_equals_rebuild_and_the_final_documents(
    seed: int, orders: int, steps: int, batch: int
) -> None:
    asyncio.run(_check(seed, orders, steps, batch))
