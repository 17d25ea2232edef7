"""Test doubles for supervision: a scripted worker, a fake clock that records back-off sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from eventstore.clock import FakeClock
from eventstore.supervisor import Progress, WorkerContext
from eventstore.worker_state import RUNNING


class SleepRecordingClock(FakeClock):
    """A fake clock that keeps every sleep's length (the back-off), advancing by it."""

    def __init__(self, *, advance_on_sleep: bool = True) -> None:
        super().__init__(advance_on_sleep=advance_on_sleep)
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        """Record the wait, then behave as the fake clock does."""
        self.slept.append(seconds)
        await super().sleep(seconds)


class GatedClock(FakeClock):
    """Advances on each sleep by its length (recorded); the n-th sleep may be held by the test."""

    def __init__(self) -> None:
        super().__init__(advance_on_sleep=True)
        self.slept: list[float] = []
        self.holds: dict[int, asyncio.Event] = {}
        self.reached: dict[int, asyncio.Event] = {}

    def hold(self, n: int) -> asyncio.Event:
        """Hold the n-th sleep (1-based) after advancing; returns the event that signals it."""
        self.holds[n] = asyncio.Event()
        self.reached[n] = asyncio.Event()
        return self.reached[n]

    def release(self, n: int) -> None:
        """Let the n-th sleep return."""
        self.holds[n].set()

    async def sleep(self, seconds: float) -> None:
        """Record, advance, and wait while the test holds this sleep."""
        self.slept.append(seconds)
        n = len(self.slept)
        self.advance(seconds)
        if n in self.holds:
            self.reached[n].set()
            await self.holds[n].wait()
        await asyncio.sleep(0)


class ScriptedWorker:
    """Fails with the given exceptions in turn, then runs (reporting healthy) until stopped."""

    def __init__(self, name: str, failures: list[BaseException], *, kind: str = "capture") -> None:
        self.name = name
        self.kind = kind
        self.failures = list(failures)
        self.runs = 0
        self.closed = False
        self.running = asyncio.Event()

    async def run(self, ctx: WorkerContext) -> None:
        """Report running, fail with the next scripted error if any, else work until stopped."""
        self.runs += 1
        ctx.report(RUNNING)
        if self.failures:
            raise self.failures.pop(0)
        ctx.healthy()
        self.running.set()
        await ctx.stop.wait()

    async def progress(self) -> Progress:
        """The number of runs as position: a value the tests can tell apart."""
        return Progress(position=self.runs, lag=0)

    async def close(self) -> None:
        """Remember it was closed."""
        self.closed = True


async def until(condition: Callable[[], bool], *, seconds: float = 5.0) -> None:
    """Let other tasks run until the condition holds (bounded: a hang fails the test)."""
    for _ in range(int(seconds / 0.002)):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("condition never held")


def metric(text: str, name: str, **labels: str) -> float | None:
    """One sample's value from a Prometheus text page (prometheus_client's parser), or None."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None
