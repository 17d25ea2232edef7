"""Helpers for subscription tests: a store with a log, a subscription created, its worker run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from eventstore.clock import FakeClock, SystemClock
from eventstore.memory.store import MemoryStore
from eventstore.model import Event
from eventstore.subscriptions.control import SubscriptionAdmin
from eventstore.subscriptions.delivery import SubscriptionWorker
from eventstore.supervisor import Supervised, Supervisor
from tests.helpers import LogBuilder


def fake_clock() -> FakeClock:
    """A fake clock at the real time (webhook timestamps are checked against the real one)."""
    return FakeClock(datetime.now(UTC))


class Harness:
    """A memory store, a log builder, the admin, and supervised subscription workers."""

    def __init__(self, clock: FakeClock | None = None, *, lease_seconds: float = 10.0) -> None:
        self.store = MemoryStore()
        self.log = LogBuilder()
        self.clock = clock or fake_clock()
        self.lease_seconds = lease_seconds
        self.admin = SubscriptionAdmin(
            self.store, clock=self.clock, owner="test", lease_seconds=lease_seconds
        )
        self.supervisors: list[Supervisor] = []

    async def append(self, *entities: Any, **kw: Any) -> list[Event]:
        """The next event of each entity, appended to the log."""
        events = [self.log.next(e, **kw) for e in entities]
        await self.store.events.append(events)
        return events

    async def subscribe(self, name: str, body: dict[str, Any]) -> None:
        """Create a subscription (default start: earliest)."""
        created, _ = await self.admin.put(name, {"start": "earliest", **body}, actor="tester")
        assert created

    def worker(self, name: str, owner: str = "a", **kw: Any) -> SubscriptionWorker:
        """A delivery worker of `name` (fast polling)."""
        kw.setdefault("poll_s", 0.05)
        kw.setdefault("backoff_first", 1.0)
        return SubscriptionWorker(
            self.store,
            name,
            clock=self.clock,
            wall_clock=SystemClock(),
            owner=owner,
            lease_seconds=self.lease_seconds,
            **kw,
        )

    async def start(self, worker: SubscriptionWorker, instance: str = "a") -> Supervised:
        """Run a worker under its own supervisor."""
        supervisor = Supervisor(
            clock=self.clock, instance=instance, lease_seconds=self.lease_seconds
        )
        supervised = supervisor.add(worker)
        await supervisor.start()
        self.supervisors.append(supervisor)
        return supervised

    async def stop(self) -> None:
        """Stop every supervisor started here."""
        for s in self.supervisors:
            await s.stop(grace=2)

    async def position(self, name: str) -> int:
        """The subscription's checkpoint."""
        status = await self.admin.status(await self.admin.get(name))
        return int(status["position"])


async def until(condition: Callable[[], object], *, seconds: float = 10.0) -> None:
    """Wait (real time) until `condition()` is truthy; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def until_async(condition: Callable[[], Any], *, seconds: float = 10.0) -> None:
    """Like `until`, for a coroutine function."""
    deadline = time.monotonic() + seconds
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)
