"""What a subscription worker reports to the supervisor: its checkpoint and how far behind it is."""

from __future__ import annotations

from datetime import timedelta

from eventstore.clock import FakeClock
from eventstore.subscriptions import positions
from eventstore.supervisor import Progress
from tests.helpers import T0
from tests.realsinks import SECRET
from tests.subscribing import Harness


async def test_progress_is_the_checkpoint_the_events_behind_it_and_the_oldest_ones_age() -> None:
    clock = FakeClock(T0 + timedelta(seconds=10))
    h = Harness(clock)
    await h.append("a", "b", "c", "d", "e")  # seq n recorded at T0 + n s + 1 ms
    await h.subscribe(
        "hooks", {"sink": {"kind": "webhook", "url": "http://127.0.0.1:9/x", "secret": SECRET}}
    )
    worker = h.worker("hooks")
    # no checkpoint written yet: everything is behind, the oldest since seq 1
    assert await worker.progress() == Progress(position=0, lag=5, lag_seconds=8.999)

    async def at(seq: int) -> None:
        await positions.write_position(h.store.checkpoints, "hooks", seq, clock.now())

    await at(3)
    assert await worker.progress() == Progress(position=3, lag=2, lag_seconds=5.999)
    await at(5)
    assert await worker.progress() == Progress(position=5, lag=0, lag_seconds=0.0)
    # a clock behind the events' own times reads as no age, never a negative one
    clock.advance(-9)
    await at(3)
    assert await worker.progress() == Progress(position=3, lag=2, lag_seconds=0.0)
