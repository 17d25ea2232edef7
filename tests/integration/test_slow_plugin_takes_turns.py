"""A projection whose apply is slow (a plugin's) lags on its own: the loop gets turns.

An outside tester's plugin spending 20 ms per event held `/health/live` for 22.9 s:
the runner applied a batch of 1,000 changes without giving the loop a turn, so the
API, health probes, capture and every other projection waited for the batch.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from projections import Change, Projection, Write
from projections.runner import TURN_SECONDS, ProjectionRunner
from tests.helpers import LogBuilder
from tests.integration.test_long_folds_take_turns import turns_during

EVENTS = 60
APPLY_SECONDS = 0.005  # busy: no await in an apply (it is not async)


def slow() -> Projection:
    def keys(change: Change) -> list[str]:
        return [change.event.entity_key]

    def apply(rows: Any, change: Change) -> list[Write]:
        end = time.perf_counter() + APPLY_SECONDS
        while time.perf_counter() < end:
            pass
        return [Write(key=change.event.entity_key, row={"seq": change.event.seq})]

    return Projection(name="slow", collection="rm_slow", keys=keys, apply=apply)


@pytest.mark.parametrize("how", ["following", "rebuild"])
async def test_a_slow_apply_gives_the_loop_turns_as_it_goes(how: str) -> None:
    store = MemoryStore()
    log = LogBuilder()
    await store.events.append([log.next(f"o{i % 7}") for i in range(EVENTS)])
    runner = ProjectionRunner(store, slow(), clock=FakeClock())

    async def work() -> None:
        if how == "following":
            await runner.run(until_caught_up=True)
        else:
            await runner.rebuild_now()

    # 60 applies of 5 ms (0.3 s): a turn every TURN_SECONDS (20 ms) of it, or every 8
    # events folded in a rebuild; held for the whole batch before, the ticker got 1 or 2.
    assert TURN_SECONDS == 0.02
    turns = await turns_during(work)
    assert turns >= 5, turns
    rows = await store.read_models.query("rm_slow", filters={}, limit=100)
    assert sorted(r["_id"] for r in rows) == [f"o{i}" for i in range(7)]
