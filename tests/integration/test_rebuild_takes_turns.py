"""A one-worker rebuild gives the loop a turn between batches: in a running service its
job's progress is seen, other requests go on and a stop is heard.

An outside tester found a rebuild requested through the API of `eventstore run` on
memory:// holding the whole service until the swap (12-16 s at 200,000 events): health
probes waited, and the job was seen only `queued`, then `succeeded`.
"""

from __future__ import annotations

import asyncio

from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from projections.orders import ORDERS_BY_STATUS
from projections.runner import ProjectionRunner, RebuildProgress
from tests.integration.test_projector import workload


async def test_a_rebuild_gives_the_loop_a_turn_after_each_batch() -> None:
    store, clock = MemoryStore(), FakeClock()
    await workload(store, clock, changes=200)
    head = (await store.events.head()).seq
    runner = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, batch_size=20)
    seen: list[int] = []  # the progress another task saw while the rebuild ran
    latest: list[RebuildProgress] = []

    async def watcher() -> None:
        while True:
            if latest:
                seen.append(latest[-1].processed)
            await asyncio.sleep(0)

    task = asyncio.create_task(watcher())
    try:
        done = await runner.rebuild_now(latest.append)
    finally:
        task.cancel()
    assert done.processed == head > 100
    # Another task ran after every batch, and saw the progress grow batch by batch.
    batches = -(-head // 20)
    assert len(set(seen)) >= batches - 1, (len(set(seen)), batches)
    assert sorted(set(seen))[:3] == [20, 40, 60]
