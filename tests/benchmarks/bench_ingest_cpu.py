"""CPU per event of the ingest core (change -> sealed event, store excluded) vs bson round trip."""

from __future__ import annotations

import time

import bson

from eventstore.badinput import problem
from eventstore.capture import Capture
from eventstore.model import ChangeEvent, Head
from eventstore.settings import Settings
from tests.benchmarks.harness import Row, ratio
from tests.benchmarks.workload import START, changes

N = 10_000


def _floor(batch: list[dict]) -> float:  # type: ignore[type-arg]
    start = time.process_time()
    for c in batch:
        bson.decode(bson.encode(c))
    return (time.process_time() - start) / len(batch) * 1e6


def _core(batch: list[dict], *, salted: bool = True) -> float:  # type: ignore[type-arg]
    capture = Capture(Settings(), Head()) if salted else Capture(Settings(), Head(), salts=None)
    start = time.process_time()
    for n, raw in enumerate(batch):
        change = ChangeEvent.from_bson(raw)
        if n == 0 or capture.needs_heads("orders", [raw["documentKey"]["_id"]]):
            capture.add_heads("orders", [raw["documentKey"]["_id"]], {})
        capture.entity_change(change, now=START)
        if len(capture.pending) >= 1000:
            capture.take()
    return (time.process_time() - start) / len(batch) * 1e6


def _judge(batch: list[dict]) -> float:  # type: ignore[type-arg]
    """The bad-input check every change gets before it is captured (BAD_INPUT)."""
    settings = Settings()
    collections, operations = frozenset(settings.collections), frozenset(settings.operations)
    start = time.process_time()
    for raw in batch:
        if problem(raw, collections=collections, operations=operations) is not None:
            raise AssertionError("the workload's changes are all well formed")
    return (time.process_time() - start) / len(batch) * 1e6


def run() -> list[Row]:
    """Best of three runs of each, same changes, same process."""
    batch = changes(N)
    floor = min(_floor(batch) for _ in range(3))
    core = min(_core(batch) for _ in range(3))
    judge = min(_judge(batch) for _ in range(3))
    unsalted = min(_core(batch, salted=False) for _ in range(3))
    r = ratio(core, floor)
    share = ratio(judge, core)
    salt_cost = ratio(core, unsalted)
    return [
        Row(
            "ingest core CPU per event, salted commitment (erasable) vs payload hash",
            core,
            "µs",
            unsalted,
            salt_cost,
            "<= 1.5x the payload-hash scheme",
            salt_cost is not None and salt_cost <= 1.5,
        ),
        Row(
            "bad-input check CPU per change",
            judge,
            "µs",
            core,
            share,
            "<= 0.1x the ingest core per event",
            share is not None and share <= 0.1,
        ),
        Row(
            "ingest core CPU per event",
            core,
            "µs",
            floor,
            r,
            "<= 25 µs and <= 4x bson encode+decode",
            core <= 25 and r is not None and r <= 4,
        ),
    ]
