"""Holding a role's lease: wait as a hot standby, renew while working, give it back."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime

from eventstore.ports import Clock, Leases
from eventstore.worker_state import RUNNING, STANDBY

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another instance holds the role now: stop working at once."""


def default_owner() -> str:
    """A unique owner name: host, process and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseKeeper:
    """Takes and renews one role's lease with compare-and-set.

    Renewal happens at most every third of the lease time, so the lease costs
    about one database command per `ttl / 3` seconds, not one per batch.
    """

    def __init__(self, leases: Leases, role: str, owner: str, *, ttl: float, clock: Clock) -> None:
        self.leases = leases
        self.role = role
        self.owner = owner
        self.ttl = ttl
        self.clock = clock
        self._renewed_at: datetime | None = None
        self.held = False
        # Told `standby` when waiting for the lease and `running` once it is held (supervision).
        self.observer: Callable[[str], None] | None = None

    async def try_acquire(self) -> bool:
        """Take or renew the lease once; True when held."""
        now = self.clock.now()
        lease = await self.leases.acquire(self.role, self.owner, now=now, ttl=self.ttl)
        self.held = lease is not None
        self._renewed_at = now if self.held else None
        return self.held

    async def acquire(self, stop: asyncio.Event | None = None) -> bool:
        """Wait as a standby until the lease is ours (False if `stop` is set first)."""
        announced = False
        while not (stop and stop.is_set()):
            if await self.try_acquire():
                if announced:
                    log.info("took over %s", self.role)
                if self.observer is not None:
                    self.observer(RUNNING)
                return True
            if not announced:
                if self.observer is not None:
                    self.observer(STANDBY)
                current = await self.leases.get(self.role)
                holder = current.owner if current else "another instance"
                log.info("standing by: %s is held by %s", self.role, holder)
                announced = True
            await self.clock.sleep(max(self.ttl / 4, 0.01))
        return False

    async def keep(self) -> None:
        """Renew when a third of the lease time has passed; raise `LeaseLost` if it is gone."""
        now = self.clock.now()
        if self._renewed_at is not None and (now - self._renewed_at).total_seconds() < self.ttl / 3:
            return
        if not await self.try_acquire():
            raise LeaseLost(f"lost the lease {self.role}")

    async def is_ours(self) -> bool:
        """True when the stored lease is this owner's and not expired (asks the lease store)."""
        lease = await self.leases.get(self.role)
        return (
            lease is not None and lease.owner == self.owner and lease.expires_at > self.clock.now()
        )

    async def release(self) -> None:
        """Give the lease back so a standby can take over at once."""
        if self.held:
            self.held = False
            try:
                await self.leases.release(self.role, self.owner)
            except Exception:  # the lease expires by itself; never mask the real error
                log.warning("could not release %s; it expires in %ss", self.role, self.ttl)
