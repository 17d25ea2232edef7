"""`eventstore demo --changes N`: the simulated traffic stops after N changes; without it, it goes on."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from eventstore.cli.bootstrap import build_source
from eventstore.cli.capture import workload_options
from eventstore.cli.demo import REPORT_CHANGES
from eventstore.cli.parser import build_parser
from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.settings import Settings
from eventstore.sources.memory_stream import MemoryChangeSource

START = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
SETTINGS = Settings(uri="memory://", source="simulator")


def demo_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["demo", *argv])


def feed_position(source: object) -> int:
    assert isinstance(source, MemoryChangeSource)
    return source.history.position


def test_changes_is_unlimited_by_default_and_the_report_keeps_its_own_default() -> None:
    assert demo_args().changes is None
    assert demo_args("--report").changes is None  # cmd_demo then makes REPORT_CHANGES
    assert REPORT_CHANGES == 2000
    assert demo_args("--changes", "7").changes == 7


async def test_the_serving_workload_stops_after_changes() -> None:
    clock = FakeClock(START)  # every paced step sleeps on it: each step moves updatedAt
    args = demo_args("--orders", "4", "--changes", "25", "--rate", "5", "--seed", "2")
    wiring = build_source(SETTINGS, MemoryStore(), clock, workload_options(args))
    assert wiring.workload is not None
    await asyncio.wait_for(wiring.workload(), timeout=10)
    assert feed_position(wiring.source) == 4 + 25
    assert (clock.now() - START).total_seconds() == 25 / 5


async def test_without_changes_the_serving_workload_goes_on() -> None:
    clock = FakeClock(START)
    args = demo_args("--orders", "4", "--rate", "5", "--seed", "2")
    wiring = build_source(SETTINGS, MemoryStore(), clock, workload_options(args))
    assert wiring.workload is not None
    task = asyncio.create_task(wiring.workload())
    try:
        while feed_position(wiring.source) < 4 + 300:
            assert not task.done()
            await asyncio.sleep(0)
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
