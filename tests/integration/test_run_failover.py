"""High availability of `eventstore run`: two instances on one database, the capturing one dies.

Both instances start the ingester and every projection (the workers the composition
root builds: `eventstore.cli.bootstrap.Service.workers`);
leases decide who works. The first instance is killed mid-backlog without
releasing anything (as a crashed process would); the standby takes over when the
leases expire and finishes: every change recorded exactly once, dense seq and
versions, both chains valid, and each read model equal to a rebuild from scratch.
Leases are short real timers (0.2 s) so the takeover happens within the test.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from api.workers import Workers
from eventstore.cli.bootstrap import Service, Wiring
from eventstore.clock import SystemClock
from eventstore.memory.store import MemoryStore
from eventstore.settings import Settings
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.simulator import Simulator
from projections.orders import ORDER_PROJECTIONS
from projections.runner import ProjectionRunner
from tests.integration.ingest_helpers import (
    assert_log_intact,
    feed_changes,
    start_from_the_beginning,
    wait_until,
)

# A lease long enough that the dead instance's lease cannot expire before the test has seen the
# second instance standing by, even on a loaded machine (0.2 s did, under load).
SETTINGS = Settings(uri="memory://", source="simulator", lease_seconds=1.0, batch_size=10)


def instance(store: MemoryStore, feed: MemoryChangeFeed, owner: str) -> Workers:
    source = feed.source(["orders"], batch_size=SETTINGS.batch_size, max_await=0.01)
    service = Service(SETTINGS, store, clock=SystemClock(), wiring=Wiring(source=source))
    return service.workers(owner=owner)


class Crash(BaseException):
    """The process dies here (not an Exception: nothing in it may handle this)."""


def crash(workers: Workers) -> None:
    """Stop every task at once, releasing nothing: the leases must expire by themselves."""

    async def keep_it() -> None:
        return None

    keepers: list[Any] = [workers.ingester.lease, *(r.lease for r in workers.runners)]
    for keeper in keepers:
        keeper.release = keep_it
    for supervised in workers.supervisor.workers:
        task = supervised.task
        if task is not None and task is not asyncio.current_task():
            task.cancel()


async def head_seq(store: MemoryStore) -> int:
    return (await store.events.head()).seq


async def test_a_standby_takes_over_capture_and_projections_with_exactly_once_effect() -> None:
    store = MemoryStore()
    feed = MemoryChangeFeed()
    await Simulator(feed, seed=11).run(orders=40, changes=400, rate=0)
    changes = len(feed_changes(feed))
    await start_from_the_beginning(store)

    first = instance(store, feed, "first")
    batches = 0

    def die_after_five_batches(_: Any) -> None:
        nonlocal batches
        batches += 1
        if batches == 5:  # mid-backlog: the first instance dies after its fifth batch
            crash(first)
            raise Crash  # at once: memory adapters never suspend, so a cancel would come late

    first.ingester.on_batch = die_after_five_batches
    await first.start()
    await wait_until(lambda: first.ingester.lease.held)
    second = instance(store, feed, "second")
    await second.start()
    await wait_until(second.caught_up)  # a ready standby, once it found the lease taken
    assert not second.ingester.lease.held

    await wait_until(lambda: batches >= 5)
    # The dead instance's tasks have ended (collect their outcome).
    for supervised in first.supervisor.workers:
        if supervised.task is not None:
            with contextlib.suppress(Crash, asyncio.CancelledError):
                await supervised.task
    at_crash = await head_seq(store)
    assert 0 < at_crash < changes
    assert not second.capture.caught_up_once  # the standby has not worked yet

    await wait_until(lambda: second.ingester.lease.held, seconds=5)
    await wait_until(lambda: second.capture.caught_up_once, seconds=10)
    head = (await store.events.head()).seq
    await wait_until(lambda: all(r.status.position == head for r in second.runners), seconds=10)
    await second.stop()

    events = await assert_log_intact(store)
    assert len(events) == changes  # every change exactly once, across the takeover
    assert len({e.id for e in events}) == changes

    # Each live model equals a rebuild from scratch of the same log.
    for projection in ORDER_PROJECTIONS:
        live = await store.read_models.query(projection.collection, filters={}, limit=10**6)
        fresh = MemoryStore()
        await fresh.events.append(events)
        await ProjectionRunner(fresh, projection, clock=SystemClock()).rebuild_now()
        rebuilt = await fresh.read_models.query(projection.collection, filters={}, limit=10**6)
        strip = [{k: v for k, v in r.items() if k != "seq"} for r in live]
        assert strip == [{k: v for k, v in r.items() if k != "seq"} for r in rebuilt], (
            projection.name
        )


async def test_stop_releases_the_leases_for_an_immediate_takeover() -> None:
    store = MemoryStore()
    feed = MemoryChangeFeed()
    await Simulator(feed, seed=12).run(orders=5, changes=20, rate=0)
    await start_from_the_beginning(store)
    first = instance(store, feed, "first")
    await first.start()
    await wait_until(lambda: first.capture.caught_up_once)
    await first.stop()
    lease = await store.leases.get("ingester:shop")
    assert lease is None or lease.owner != "first" or lease.expires_at < SystemClock().now()
