"""CHECKPOINT_INTERVAL holds under light traffic, and the newest events are still checkpointed.

Light traffic goes idle after every batch. A checkpoint is made at most once an interval,
idle or not, and while idle as soon as the interval has passed, so events are in a
checkpoint about one interval after they were stored even when traffic stops; a run
that ends (until idle, stopped) checkpoints what it stored at once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable

from eventstore.checkpointing import Checkpointer
from eventstore.clock import FakeClock
from eventstore.model import TreeCheckpoint
from eventstore.ports import Store
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.tree import LogTree
from tests.helpers import LogBuilder
from tests.integration.ingest_helpers import ingester, start_from_the_beginning, wait_until

INTERVAL = 10.0
POLL = 0.05  # how often an idle capture calls `idle` (the memory feed's wait)


def checkpointer(store: Store, clock: FakeClock) -> Checkpointer:
    return Checkpointer(
        LogTree(store.merkle, store.events),
        origin="eventstore/test",
        clock=clock,
        interval=INTERVAL,
    )


async def made(store: Store) -> list[TreeCheckpoint]:
    """Every stored checkpoint, smallest first."""
    out = []
    for size in range(1, await store.merkle.size() + 1):
        checkpoint = await store.merkle.checkpoint(size)
        if checkpoint is not None:
            out.append(checkpoint)
    return out


def gaps(checkpoints: list[TreeCheckpoint]) -> list[float]:
    return [
        (b.created_at - a.created_at).total_seconds() for a, b in itertools.pairwise(checkpoints)
    ]


async def test_light_traffic_gets_one_checkpoint_an_interval_not_one_an_event(
    store: Store, clock: FakeClock, log: LogBuilder
) -> None:
    cp = checkpointer(store, clock)
    await cp.open()
    # Five events a second for 25 s, one a batch, capture idle (polling) between them.
    for _ in range(125):
        event = log.next("o1")
        await store.events.append([event])
        await cp.after_batch([event])
        for _ in range(4):
            clock.advance(POLL)
            await cp.idle()
    checkpoints = await made(store)
    # The first batch; then the idle poll at 10 s (after event 50) and at 20 s (after 100).
    assert [c.size for c in checkpoints] == [1, 50, 100]
    assert gaps(checkpoints) == [INTERVAL, INTERVAL]

    # Traffic stops at 25 s: the 25 newest events are checkpointed once the interval since
    # the last checkpoint has passed (5 s after the last event), and nothing more is made.
    for _ in range(int(3 * INTERVAL / POLL)):
        clock.advance(POLL)
        await cp.idle()
    checkpoints = await made(store)
    assert [c.size for c in checkpoints] == [1, 50, 100, 125]
    assert gaps(checkpoints) == [INTERVAL, INTERVAL, INTERVAL]


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.005)):
        if await check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached in time")


async def test_a_following_capture_checkpoints_once_an_interval_and_what_it_stored_when_stopped(
    store: Store, clock: FakeClock
) -> None:
    clock = FakeClock(advance_on_sleep=False)  # time moves only when this test says
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    await start_from_the_beginning(store)
    ing = ingester(store, feed, clock)
    ing.checkpointer = checkpointer(store, clock)
    stop = asyncio.Event()
    task = asyncio.create_task(ing.run(stop=stop))

    async def sizes() -> list[int]:
        return [c.size for c in await made(store)]

    async def captured(n: int) -> None:
        """`n` events stored, and capture idle after them (two empty batches: one idle done)."""
        await wait_until(lambda: ing.stats.recorded == n)
        for _ in range(2):
            ing.stats.caught_up = False
            await wait_until(lambda: ing.stats.caught_up)

    try:
        for n in range(5):  # one change at a time, capture going idle after each
            await orders.insert_one({"_id": n, "status": "new"})
            await captured(n + 1)
        # Within the interval: the first batch's checkpoint only, not one an event.
        assert await sizes() == [1]
        clock.advance(INTERVAL)  # the interval passes while idle: the newest are covered
        await eventually(lambda: _equal(sizes(), [1, 5]))
        for n in range(5, 7):
            await orders.insert_one({"_id": n, "status": "new"})
            await captured(n + 1)
        assert await sizes() == [1, 5]
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    # Stopped within the interval: what it stored is checkpointed before the run ends.
    assert await sizes() == [1, 5, 7]


async def _equal(got: Awaitable[list[int]], want: list[int]) -> bool:
    return await got == want
