"""A supervised projection's progress: position, events behind, and how long the oldest waited."""

from __future__ import annotations

from datetime import timedelta

from eventstore.clock import FakeClock
from eventstore.ports import Store
from projections.orders import ORDER_SUMMARY
from projections.runner import ProjectionRunner
from projections.worker import ProjectionWorker
from tests.helpers import T0, LogBuilder


async def test_progress_counts_the_events_behind_and_the_oldest_ones_wait(store: Store) -> None:
    log = LogBuilder()
    events = log.many("a", "b", "c", "a")  # recorded at T0 + 1 s ... + 4 s (+1 ms)
    await store.events.append(events)
    clock = FakeClock(T0 + timedelta(seconds=10))
    runner = ProjectionRunner(store, ORDER_SUMMARY, clock=clock, batch_size=2)
    worker = ProjectionWorker(runner)

    before = await worker.progress()
    assert (before.position, before.lag) == (0, 4)
    assert before.lag_seconds == 8.999  # since the first unapplied event was recorded

    await runner.step()  # seq 1 and 2
    after = await worker.progress()
    assert (after.position, after.lag, after.lag_seconds) == (2, 2, 6.999)

    await runner.step()
    done = await worker.progress()
    assert (done.position, done.lag, done.lag_seconds) == (4, 0, 0.0)
    assert worker.name == "projection:order_summary" and worker.kind == "projection"
