"""Projection rebuild throughput (100,000 events, memory adapters) next to the raw floor.

The floor reads the same events and writes the same number of rows with no
projection logic (no fold, no apply), in the same run.
"""

from __future__ import annotations

import time

from eventstore.capture import Capture
from eventstore.clock import SystemClock
from eventstore.memory.store import MemoryStore
from eventstore.model import ChangeEvent, Head
from eventstore.settings import Settings
from projections.orders import ORDER_SUMMARY
from projections.runner import ProjectionRunner
from tests.benchmarks.harness import Row, ratio
from tests.benchmarks.workload import START, changes

EVENTS = 100_000


async def _log() -> MemoryStore:
    store = MemoryStore()
    capture = Capture(Settings(), Head())
    seen: set[object] = set()
    for raw in changes(EVENTS, entities=5000):
        oid = raw["documentKey"]["_id"]
        if oid not in seen:
            capture.add_heads("orders", [oid], {})
            seen.add(oid)
        capture.entity_change(ChangeEvent.from_bson(raw), now=START)
        if len(capture.pending) >= 5000:
            await store.events.append(capture.take())
    await store.events.append(capture.take())
    return store


async def _floor(store: MemoryStore, batch: int) -> tuple[float, int]:
    started = time.perf_counter()
    after, written = 0, 0
    while events := await store.events.read(after_seq=after, limit=batch):
        await store.read_models.write("rm_floor", [(e.entity_key, {"seq": e.seq}) for e in events])
        written += len(events)
        after = events[-1].seq
    return time.perf_counter() - started, written


async def run() -> list[Row]:
    """Rebuild `order_summary` from 100,000 events, then the floor, same store."""
    store = await _log()
    runner = ProjectionRunner(store, ORDER_SUMMARY, clock=SystemClock(), batch_size=1000)
    progress = await runner.rebuild_now()
    assert progress.processed == EVENTS
    floor_seconds, written = await _floor(store, 1000)
    rebuild_rate = EVENTS / progress.seconds
    floor_rate = written / floor_seconds
    r = ratio(rebuild_rate, floor_rate)
    return [
        Row(
            "projection rebuild throughput (100k events)",
            rebuild_rate,
            "events/s",
            floor_rate,
            r,
            ">= 0.5 of the raw floor",
            r is not None and r >= 0.5,
        ),
    ]
