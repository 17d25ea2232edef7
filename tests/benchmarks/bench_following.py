"""Following the four order models over 100,000 events (memory adapters), CPU time.

The runners of a process share their entity states (`projections.states.SharedStates`):
each event is folded once, by the first runner to reach it. Baseline: the same four
runners each with a cache of its own (each folding every event itself), as before.
They step in turn, a page each, as the service's runners do when they keep up.
Best of RUNS, after a collection, the log frozen out of the collector's passes.
"""

from __future__ import annotations

import gc
import time

from eventstore.cli.common import frozen_gc
from eventstore.clock import SystemClock
from eventstore.memory.store import MemoryStore
from eventstore.model import Checkpoint
from projections.orders import ORDER_PROJECTIONS
from projections.runner import ProjectionRunner
from projections.states import SharedStates
from tests.benchmarks.bench_rebuild import _log
from tests.benchmarks.harness import Row, ratio

EVENTS = 100_000
BATCH = 1000
RUNS = 2
ENTITIES = 20_000  # STATE_CACHE's default; the log has 5,000 orders


async def _follow(store: MemoryStore, *, shared: bool) -> float:
    """CPU seconds for the four order models to follow the whole log from nothing."""
    for p in ORDER_PROJECTIONS:
        await store.read_models.drop(p.collection)
        await store.checkpoints.put(Checkpoint(name=f"projection:{p.name}"))
    states = SharedStates(entities=ENTITIES) if shared else None
    runners = [
        ProjectionRunner(
            store, p, clock=SystemClock(), batch_size=BATCH, state_cache=ENTITIES, states=states
        )
        for p in ORDER_PROJECTIONS
    ]
    gc.collect()
    started = time.process_time()
    while sum([await r.step() for r in runners]):
        pass
    seconds = time.process_time() - started
    assert [await r.position() for r in runners] == [EVENTS] * len(runners)
    return seconds


async def run() -> list[Row]:
    """The four models followed with shared states, against each with its own."""
    store = await _log()
    own = shared = float("inf")
    with frozen_gc():
        for _ in range(RUNS):
            own = min(own, await _follow(store, shared=False))
            shared = min(shared, await _follow(store, shared=True))
    rate, base = EVENTS / shared, EVENTS / own
    r = ratio(rate, base)
    return [
        Row(
            "following the four order models, shared entity states, CPU (baseline: each "
            "runner folding every event into a cache of its own; 100k events)",
            rate,
            "events/s",
            base,
            r,
            ">= 1.5 of the baseline",
            r is not None and r >= 1.5,
        )
    ]
