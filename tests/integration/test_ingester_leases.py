"""One capturing instance per source database; a standby takes over when the lease expires."""

from __future__ import annotations

import asyncio

from eventstore.clock import FakeClock
from eventstore.ports import Store
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.simulator import Simulator
from tests.integration.ingest_helpers import (
    ROLE,
    assert_log_intact,
    feed_changes,
    ingester,
    start_from_the_beginning,
    wait_until,
)


async def test_standby_waits_then_takes_over_when_the_holder_dies(store: Store) -> None:
    clock = FakeClock(advance_on_sleep=False)  # the standby's polling must not move time
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    sim = Simulator(feed, seed=5, clock=clock)
    await sim.run(orders=10, changes=40, rate=0)

    first = ingester(store, feed, clock, owner="first", batch_size=8)
    stop_first = asyncio.Event()
    task_first = asyncio.create_task(first.run(stop=stop_first))
    await wait_until(lambda: first.stats.caught_up)
    lease = await store.leases.get(ROLE)
    assert lease is not None and lease.owner == "first"

    second = ingester(store, feed, clock, owner="second", batch_size=8)
    stop_second = asyncio.Event()
    task_second = asyncio.create_task(second.run(stop=stop_second))
    for _ in range(20):  # the standby polls; the holder keeps renewing
        await asyncio.sleep(0.01)
    assert second.stats.batches == 0
    assert (await store.leases.get(ROLE)).owner == "first"  # type: ignore[union-attr]

    # the holder dies without releasing its lease (a crash, not a shutdown)
    first.lease.release = _noop  # type: ignore[method-assign]
    task_first.cancel()
    await asyncio.gather(task_first, return_exceptions=True)
    await sim.run(orders=0, changes=40, rate=0)  # a backlog builds up meanwhile
    clock.advance(11)  # past LEASE_SECONDS
    await wait_until(lambda: second.stats.caught_up and second.stats.recorded)
    stop_second.set()
    await task_second

    assert (await store.leases.get(ROLE)) is None or second.lease.held is False
    events = await assert_log_intact(store)
    assert [e.id for e in events] == [c["_id"]["_data"] for c in feed_changes(feed)]
    assert first.stats.recorded + second.stats.recorded == len(events)
    assert second.stats.recorded > 0 and second.stats.duplicates_skipped == 0


async def test_a_stalled_former_holder_cannot_write_over_the_new_one(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    await feed.collection("orders").insert_one({"_id": 1})
    stale = ingester(store, feed, clock, owner="stale")
    await stale.run(until_idle=True)
    fresh = ingester(store, feed, clock, owner="fresh")
    await feed.collection("orders").insert_one({"_id": 2})
    await fresh.run(until_idle=True)
    # the stale instance wakes up with an old view: the lease and the unique seq fence it
    await feed.collection("orders").insert_one({"_id": 3})
    clock.advance(11)
    await stale.run(until_idle=True)
    events = await assert_log_intact(store)
    assert [e.entity_key for e in events] == ["1", "2", "3"]


async def _noop() -> None:
    return None
