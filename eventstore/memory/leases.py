"""Leases in process memory, with the compare-and-set semantics of the mongo adapter."""

from __future__ import annotations

from datetime import datetime, timedelta

from eventstore.codec import utc_ms
from eventstore.model import Lease


class MemoryLeases:
    """The `Leases` port over a dict keyed by role."""

    def __init__(self) -> None:
        self._by_role: dict[str, Lease] = {}

    async def acquire(self, role: str, owner: str, *, now: datetime, ttl: float) -> Lease | None:
        """Take or renew the role if it is free, expired (expires_at <= now), or `owner`'s."""
        # Times at millisecond precision, as MongoDB stores and compares them.
        now = utc_ms(now)
        current = self._by_role.get(role)
        if current is not None and current.owner != owner and current.expires_at > now:
            return None
        lease = Lease(role=role, owner=owner, expires_at=utc_ms(now + timedelta(seconds=ttl)))
        self._by_role[role] = lease
        return lease

    async def release(self, role: str, owner: str) -> bool:
        """Give the role up if `owner` holds it."""
        current = self._by_role.get(role)
        if current is None or current.owner != owner:
            return False
        del self._by_role[role]
        return True

    async def get(self, role: str) -> Lease | None:
        """The current lease (possibly expired), or None."""
        return self._by_role.get(role)
