"""Clocks: the system clock, and a fake one for leases and timers in tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta


class SystemClock:
    """The real UTC clock."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to (or when someone sleeps on it)."""

    def __init__(self, start: datetime | None = None, *, advance_on_sleep: bool = True) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        # With several tasks on one clock, a sleeper must not move everyone's time:
        # then sleeping only yields briefly and the test advances the clock itself.
        self._advance_on_sleep = advance_on_sleep

    def now(self) -> datetime:
        """The fake current time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self._now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        """Advance instead of waiting (or only yield, see above), then let other tasks run."""
        if self._advance_on_sleep:
            self.advance(seconds)
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(0.001)
