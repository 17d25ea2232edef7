"""One capturing instance per source database; a standby takes over when the lease expires."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from eventstore.clock import FakeClock
from eventstore.ports import LogConflict, Store
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.simulator import Simulator
from eventstore.worker_state import STANDBY
from tests.integration.ingest_helpers import (
    ROLE,
    all_events,
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


async def test_stopped_while_standing_by_it_returns_its_stats_having_written_nothing(
    store: Store,
) -> None:
    clock = FakeClock(advance_on_sleep=False)
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    await feed.collection("orders").insert_one({"_id": 1})
    assert await store.leases.acquire(ROLE, "holder", now=clock.now(), ttl=10)
    standby = ingester(store, feed, clock, owner="standby")
    states: list[str] = []
    standby.lease.observer = states.append
    stop = asyncio.Event()
    task = asyncio.create_task(standby.run(stop=stop))
    await wait_until(lambda: states == [STANDBY])
    stop.set()  # the wait for the lease ends with the stop, not with the lease
    stats = await asyncio.wait_for(task, 5)
    assert stats is standby.stats and (stats.batches, stats.recorded) == (0, 0)
    assert (await store.leases.get(ROLE)).owner == "holder"  # type: ignore[union-attr]
    assert await all_events(store) == []


TOOK_OVER = "stopping capture, another instance took over: "


async def test_a_lease_lost_while_capturing_is_logged_and_the_instance_stands_by(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(advance_on_sleep=False)
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    await feed.collection("orders").insert_one({"_id": 1})
    first = ingester(store, feed, clock, owner="first")
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop=stop))
    await wait_until(lambda: first.stats.caught_up)
    clock.advance(11)  # the holder stalled past its lease; another instance takes it
    assert await store.leases.acquire(ROLE, "second", now=clock.now(), ttl=10)
    with caplog.at_level(logging.WARNING, logger="eventstore.ingester"):
        await feed.collection("orders").insert_one({"_id": 2})
        await wait_until(lambda: _took_over(caplog))
        # (order 2 may be stored first: the batch was awaited with the lease still held;
        # the unique seq and versions fence a write that collides with the new holder's)
        await feed.collection("orders").insert_one({"_id": 3})
        for _ in range(20):  # standing by: it neither writes nor takes the lease back
            await asyncio.sleep(0.002)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert _took_over(caplog) == [TOOK_OVER + f"lost the lease {ROLE}"]
    assert "3" not in [e.entity_key for e in await assert_log_intact(store)]
    assert (await store.leases.get(ROLE)).owner == "second"  # type: ignore[union-attr]


async def test_a_conflict_after_the_lease_was_taken_is_logged_and_the_instance_stands_by(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    # The append collides because the new holder wrote first: not a bug, so not fatal.
    clock = FakeClock(advance_on_sleep=False)
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    first = ingester(store, feed, clock, owner="first")
    real_append = store.events.append

    async def taken_then_conflicting(events: Any, **kw: Any) -> None:
        clock.advance(11)
        assert await store.leases.acquire(ROLE, "second", now=clock.now(), ttl=10)
        store.events.append = real_append  # type: ignore[method-assign]
        raise LogConflict("seq 1 is another event")

    store.events.append = taken_then_conflicting  # type: ignore[method-assign,assignment]
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="eventstore.ingester"):
        task = asyncio.create_task(first.run(stop=stop))
        await feed.collection("orders").insert_one({"_id": 1})
        await wait_until(lambda: _took_over(caplog))
    stop.set()
    await asyncio.wait_for(task, 5)
    assert _took_over(caplog) == [TOOK_OVER + "seq 1 is another event"]
    assert await all_events(store) == []


def _took_over(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(TOOK_OVER)]


async def _noop() -> None:
    return None
