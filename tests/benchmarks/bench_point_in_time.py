"""State at any version: snapshots + a bounded fold vs folding from the first event (memory adapters)."""

from __future__ import annotations

import random
import statistics
import time
from datetime import timedelta
from typing import Any

from bson import ObjectId

from eventstore.capture import Capture
from eventstore.fold import fold
from eventstore.history import History
from eventstore.memory.store import MemoryStore
from eventstore.model import ChangeEvent, Head
from eventstore.settings import Settings
from tests.benchmarks.harness import Row, ratio
from tests.benchmarks.workload import START, order

UPDATES = 10_000
SAMPLES = 100


async def _entity_with_history(store: MemoryStore) -> Any:
    rng = random.Random(5)
    oid = ObjectId()
    capture = Capture(Settings(), Head())
    capture.add_heads("orders", [oid], {})
    base = {"ns": {"db": "shop", "coll": "orders"}, "documentKey": {"_id": oid}}
    doc = order(rng, 1, oid, START)
    capture.entity_change(
        ChangeEvent.from_bson(
            {
                **base,
                "_id": {"_data": "0"},
                "operationType": "insert",
                "fullDocument": doc,
                "wallTime": START,
            }
        ),
        now=START,
    )
    for n in range(1, UPDATES + 1):
        at = START + timedelta(seconds=n)
        fields = {
            "status": rng.choice(["paid", "shipped"]),
            "items.0.qty": rng.randint(1, 9),
            "updatedAt": at,
            "updatedBy": "bob",
        }
        raw = {
            **base,
            "_id": {"_data": f"{n:08d}"},
            "operationType": "update",
            "wallTime": at,
            "updateDescription": {
                "updatedFields": fields,
                "removedFields": [],
                "truncatedArrays": [],
            },
        }
        capture.entity_change(ChangeEvent.from_bson(raw), now=at)
        if len(capture.pending) >= 1000:
            await store.events.append(capture.take())
    await store.events.append(capture.take())
    return oid


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


async def run() -> list[Row]:
    """Same entity, same random versions, both ways, in one run."""
    store = MemoryStore()
    oid = await _entity_with_history(store)
    history = History(store, snapshot_every=100)
    await history.ensure_snapshots("orders", oid)
    versions = random.Random(9).sample(range(1, UPDATES + 2), SAMPLES)

    queries = 0
    real_latest, real_read = store.snapshots.latest, store.events.read_entity

    async def latest(*a: Any, **kw: Any) -> Any:
        nonlocal queries
        queries += 1
        return await real_latest(*a, **kw)

    async def read_entity(*a: Any, **kw: Any) -> Any:
        nonlocal queries
        queries += 1
        return await real_read(*a, **kw)

    store.snapshots.latest = latest  # type: ignore[method-assign]
    store.events.read_entity = read_entity  # type: ignore[method-assign]

    with_snap: list[float] = []
    most_queries = 0
    for v in versions:
        queries = 0
        t = time.perf_counter()
        state = await history.state_of("orders", oid, version=v)
        with_snap.append(time.perf_counter() - t)
        most_queries = max(most_queries, queries)
        assert state.version == v

    from_first: list[float] = []
    for v in versions:
        t = time.perf_counter()
        events = await real_read("orders", oid, from_version=1, to_version=v)
        result = fold(events)
        from_first.append(time.perf_counter() - t)
        assert result.version == v

    snap_p50, snap_p99 = _pct(with_snap, 0.5) * 1e3, _pct(with_snap, 0.99) * 1e3
    full_p50, full_p99 = _pct(from_first, 0.5) * 1e3, _pct(from_first, 0.99) * 1e3
    speedup = statistics.mean(from_first) / statistics.mean(with_snap)
    return [
        Row(
            "state at a version, p50 (snapshots)",
            snap_p50,
            "ms",
            full_p50,
            ratio(snap_p50, full_p50),
            "-",
            None,
        ),
        Row(
            "state at a version, p99 (snapshots)",
            snap_p99,
            "ms",
            full_p99,
            ratio(snap_p99, full_p99),
            "-",
            None,
        ),
        Row(
            "point-in-time speedup from snapshots (mean)",
            speedup,
            "x",
            1.0,
            speedup,
            ">= 50x",
            speedup >= 50,
        ),
        Row(
            "store queries per reconstruction (max of 100)",
            float(most_queries),
            "queries",
            None,
            None,
            "<= 2",
            most_queries <= 2,
        ),
    ]
