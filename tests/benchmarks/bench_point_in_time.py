"""State at any version: snapshots + a bounded fold vs folding from the first event (memory adapters).

One order with 10,000 update events. The same 100 random versions are
reconstructed both ways in one run; every read of the EventLog and Snapshots
ports is counted. The same is done for 100 random times (`at`).
"""

from __future__ import annotations

import random
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
from tests.helpers import READS

UPDATES = 10_000
SAMPLES = 100
SNAPSHOT_EVERY = 100


async def _entity_with_history(store: MemoryStore) -> ObjectId:
    """One order: inserted, then UPDATES updates one second apart (status, a quantity, who, when)."""
    rng = random.Random(5)
    oid = ObjectId()
    capture = Capture(Settings(), Head())
    capture.add_heads("orders", [oid], {})
    base = {"ns": {"db": "shop", "coll": "orders"}, "documentKey": {"_id": oid}}
    insert = {
        **base,
        "_id": {"_data": "0"},
        "operationType": "insert",
        "fullDocument": order(rng, 1, oid, START),
        "wallTime": START,
    }
    capture.entity_change(ChangeEvent.from_bson(insert), now=START)
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


class _Counter:
    """Counts the store reads: wraps every read method of the EventLog and Snapshots ports."""

    def __init__(self, store: MemoryStore) -> None:
        self.queries = 0
        for port_name, names in READS.items():
            port = getattr(store, port_name)
            for name in names:
                setattr(port, name, self._counted(getattr(port, name)))

    def _counted(self, fn: Any) -> Any:
        async def wrapper(*a: Any, **kw: Any) -> Any:
            self.queries += 1
            return await fn(*a, **kw)

        return wrapper


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def _rows(label: str, fast: list[float], slow: list[float], most: int) -> list[Row]:
    fast_p50, fast_p99 = _pct(fast, 0.5) * 1e3, _pct(fast, 0.99) * 1e3
    slow_p50, slow_p99 = _pct(slow, 0.5) * 1e3, _pct(slow, 0.99) * 1e3
    speedup = slow_p50 / fast_p50
    return [
        Row(
            f"{label}, p50 (snapshots)",
            fast_p50,
            "ms",
            slow_p50,
            ratio(fast_p50, slow_p50),
            "-",
            None,
        ),
        Row(
            f"{label}, p99 (snapshots)",
            fast_p99,
            "ms",
            slow_p99,
            ratio(fast_p99, slow_p99),
            "-",
            None,
        ),
        Row(f"{label}: speedup at p50", speedup, "x", 1.0, speedup, ">= 50x", speedup >= 50),
        Row(
            f"{label}: store queries per reconstruction (max of {SAMPLES})",
            float(most),
            "queries",
            None,
            None,
            "<= 2",
            most <= 2,
        ),
    ]


async def run() -> list[Row]:
    """Same entity, same random targets, both ways, in one run."""
    store = MemoryStore()
    oid = await _entity_with_history(store)
    all_events = await store.events.read_entity("orders", oid)
    # remember=0: every state is reconstructed from the store (snapshot + events), never
    # taken from the in-process memo of states already folded.
    history = History(store, snapshot_every=SNAPSHOT_EVERY, remember=0)
    started = time.perf_counter()
    await history.ensure_snapshots("orders", oid)
    laying = time.perf_counter() - started
    rng = random.Random(9)
    versions = rng.sample(range(1, UPDATES + 2), SAMPLES)
    times = [
        all_events[v - 1].occurred_at + timedelta(milliseconds=rng.randrange(1000))
        for v in versions
    ]
    read_entity = store.events.read_entity  # the baseline reads unwrapped
    await history.state_of("orders", oid, at=times[0])  # the stream's gaps: read once, cached
    counter = _Counter(store)

    by_version: list[float] = []
    most_by_version = 0
    for v in versions:
        counter.queries = 0
        t = time.perf_counter()
        state = await history.state_of("orders", oid, version=v)
        by_version.append(time.perf_counter() - t)
        most_by_version = max(most_by_version, counter.queries)
        assert state.version == v

    by_time: list[float] = []
    most_by_time = 0
    for v, at in zip(versions, times, strict=True):
        counter.queries = 0
        t = time.perf_counter()
        state = await history.state_of("orders", oid, at=at)
        by_time.append(time.perf_counter() - t)
        most_by_time = max(most_by_time, counter.queries)
        assert state.version == v

    from_first: list[float] = []
    for v in versions:
        t = time.perf_counter()
        events = await read_entity("orders", oid, from_version=1, to_version=v)
        result = fold(events)
        from_first.append(time.perf_counter() - t)
        assert result.version == v

    return [
        *_rows("state at a version", by_version, from_first, most_by_version),
        *_rows("state at a time", by_time, from_first, most_by_time),
        Row(
            f"laying every snapshot of {UPDATES:,} versions once (ensure_snapshots)",
            laying * 1e3,
            "ms",
            None,
            None,
            "-",
            None,
        ),
    ]
