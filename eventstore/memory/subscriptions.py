"""Subscription records, delivery positions, parked events and the admin trail in process memory."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from eventstore.codec import utc_ms
from eventstore.subscription_records import AdminAction, ParkedEvent, SubscriptionRecord


def _ms(record: SubscriptionRecord) -> SubscriptionRecord:
    """Times at MongoDB's millisecond precision, nested values copied (what the mongo adapter reads)."""
    return msgspec.structs.replace(
        record,
        config=copy.deepcopy(record.config),
        commands=copy.deepcopy(record.commands),
        created_at=utc_ms(record.created_at),
        updated_at=utc_ms(record.updated_at),
        last_delivery_at=utc_ms(record.last_delivery_at) if record.last_delivery_at else None,
    )


class MemorySubscriptions:
    """The `Subscriptions` port over a dict keyed by name."""

    def __init__(self) -> None:
        self._by_name: dict[str, SubscriptionRecord] = {}

    async def get(self, name: str) -> SubscriptionRecord | None:
        """The record, or None."""
        record = self._by_name.get(name)
        return None if record is None else _ms(record)

    async def all(self) -> list[SubscriptionRecord]:
        """Every record, by name."""
        return [_ms(self._by_name[n]) for n in sorted(self._by_name)]

    async def create(self, record: SubscriptionRecord) -> bool:
        """Store a new record; False when the name exists."""
        if record.name in self._by_name:
            return False
        self._by_name[record.name] = _ms(record)
        return True

    async def patch(self, name: str, fields: Mapping[str, Any]) -> bool:
        """Set top-level fields; False when there is no record."""
        record = self._by_name.get(name)
        if record is None:
            return False
        self._by_name[name] = _ms(msgspec.structs.replace(record, **dict(fields)))
        return True

    async def delete(self, name: str) -> bool:
        """Remove a record."""
        return self._by_name.pop(name, None) is not None

    async def push_command(self, name: str, command: Mapping[str, Any]) -> bool:
        """Queue a command."""
        record = self._by_name.get(name)
        if record is None:
            return False
        commands = [*record.commands, copy.deepcopy(dict(command))]
        self._by_name[name] = msgspec.structs.replace(record, commands=commands)
        return True

    async def drop_commands(self, name: str, ids: Sequence[str]) -> None:
        """Remove carried-out commands."""
        record = self._by_name.get(name)
        if record is not None:
            kept = [c for c in record.commands if c.get("id") not in set(ids)]
            self._by_name[name] = msgspec.structs.replace(record, commands=kept)


class MemoryDeliveries:
    """The `Deliveries` port: a set of settled seqs and a dict of parked events per subscription."""

    def __init__(self) -> None:
        self._settled: dict[str, set[int]] = {}
        self._parked: dict[str, dict[int, ParkedEvent]] = {}

    async def settle(self, name: str, seqs: Sequence[int]) -> None:
        """Record settled seqs."""
        self._settled.setdefault(name, set()).update(seqs)

    async def settled(self, name: str, *, above: int) -> list[int]:
        """Settled seqs above a position."""
        return sorted(s for s in self._settled.get(name, ()) if s > above)

    async def forget_settled(self, name: str, *, up_to: int) -> None:
        """Drop settled seqs covered by the checkpoint."""
        kept = {s for s in self._settled.get(name, ()) if s > up_to}
        self._settled[name] = kept

    async def park(self, events: Sequence[ParkedEvent]) -> None:
        """Store parked events."""
        for e in events:
            self._parked.setdefault(e.name, {})[e.seq] = msgspec.structs.replace(
                e, parked_at=utc_ms(e.parked_at)
            )

    async def parked(
        self, name: str, *, after_seq: int = 0, up_to: int | None = None, limit: int | None = None
    ) -> list[ParkedEvent]:
        """Parked events in seq order."""
        found = [
            e
            for s, e in sorted(self._parked.get(name, {}).items())
            if s > after_seq and (up_to is None or s <= up_to)
        ]
        return found if limit is None else found[:limit]

    async def count_parked(self, name: str) -> int:
        """How many are parked."""
        return len(self._parked.get(name, {}))

    async def unpark(self, name: str, seqs: Sequence[int]) -> int:
        """Remove parked events."""
        parked = self._parked.get(name, {})
        return sum(1 for s in seqs if parked.pop(s, None) is not None)

    async def clear(self, name: str) -> None:
        """Forget everything of a subscription."""
        self._settled.pop(name, None)
        self._parked.pop(name, None)


class MemoryAdminActions:
    """The `AdminActions` port over a list kept in id order."""

    def __init__(self) -> None:
        self._actions: list[AdminAction] = []

    async def append(self, action: AdminAction) -> None:
        """Add an action."""
        self._actions.append(msgspec.structs.replace(action, at=utc_ms(action.at)))
        self._actions.sort(key=lambda a: a.id)

    async def page(self, *, after: str | None = None, limit: int = 100) -> list[AdminAction]:
        """Actions after a cursor."""
        return [a for a in self._actions if after is None or a.id > after][:limit]
