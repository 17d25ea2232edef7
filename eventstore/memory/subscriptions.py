"""Subscription records, delivery positions, parked events and the admin trail in process memory."""

from __future__ import annotations

import copy
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from eventstore.codec import utc_ms
from eventstore.memory.sorted_keys import merge_in
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
        # Each subscription's parked seqs, sorted: a page is a bisection, not a sort.
        self._parked_seqs: dict[str, list[int]] = {}

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
        new: dict[str, list[int]] = {}
        for e in events:
            parked = self._parked.setdefault(e.name, {})
            if e.seq not in parked:
                new.setdefault(e.name, []).append(e.seq)
            parked[e.seq] = msgspec.structs.replace(e, parked_at=utc_ms(e.parked_at))
        for name, seqs in new.items():
            merge_in(self._parked_seqs.setdefault(name, []), seqs)

    async def parked(
        self, name: str, *, after_seq: int = 0, up_to: int | None = None, limit: int | None = None
    ) -> list[ParkedEvent]:
        """Parked events in seq order."""
        seqs = self._parked_seqs.get(name, [])
        start = bisect_right(seqs, after_seq)
        end = len(seqs) if up_to is None else bisect_right(seqs, up_to)
        if limit is not None:
            end = min(end, start + limit)
        parked = self._parked[name] if seqs else {}
        return [parked[s] for s in seqs[start:end]]

    async def count_parked(self, name: str) -> int:
        """How many are parked."""
        return len(self._parked.get(name, {}))

    async def unpark(self, name: str, seqs: Sequence[int]) -> int:
        """Remove parked events."""
        parked = self._parked.get(name, {})
        order = self._parked_seqs.get(name, [])
        removed = 0
        for s in seqs:
            if parked.pop(s, None) is not None:
                del order[bisect_left(order, s)]
                removed += 1
        return removed

    async def clear(self, name: str) -> None:
        """Forget everything of a subscription."""
        self._settled.pop(name, None)
        self._parked.pop(name, None)
        self._parked_seqs.pop(name, None)


class MemoryAdminActions:
    """The `AdminActions` port over a list kept in id order."""

    def __init__(self) -> None:
        self._actions: list[AdminAction] = []
        self._ids: list[str] = []  # the actions' ids, alongside, for bisection

    async def append(self, action: AdminAction) -> None:
        """Add an action."""
        i = bisect_right(self._ids, action.id)
        self._ids.insert(i, action.id)
        self._actions.insert(i, msgspec.structs.replace(action, at=utc_ms(action.at)))

    async def page(self, *, after: str | None = None, limit: int = 100) -> list[AdminAction]:
        """Actions after a cursor."""
        start = 0 if after is None else bisect_right(self._ids, after)
        return self._actions[start : start + limit]
