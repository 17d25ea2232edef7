"""Entity snapshots in process memory: per entity, version-sorted lists (lookups O(log n))."""

from __future__ import annotations

import copy
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from eventstore.codec import utc_ms
from eventstore.keys import typed_key
from eventstore.model import EntitySnapshot


class _Entity:
    """One entity's snapshots, sorted by version, with their times alongside for bisection."""

    __slots__ = ("monotonic", "snaps", "times", "versions")

    def __init__(self) -> None:
        self.versions: list[int] = []
        self.times: list[datetime] = []
        self.snaps: list[EntitySnapshot] = []
        # True while times do not decrease with versions (one entity's wallTimes in
        # order): then a time bound is one bisection, else a walk back.
        self.monotonic = True

    def put(self, snap: EntitySnapshot) -> None:
        i = bisect_left(self.versions, snap.version)
        if i < len(self.versions) and self.versions[i] == snap.version:
            old = self.snaps[i].next_version
            new = snap.next_version
            if old is not None and (new is None or old < new):
                snap = msgspec.structs.replace(snap, next_version=old)
            self.snaps[i] = snap
            self.times[i] = snap.occurred_at
        else:
            self.versions.insert(i, snap.version)
            self.times.insert(i, snap.occurred_at)
            self.snaps.insert(i, snap)
        self.monotonic = self.monotonic and _sorted_around(self.times, i)

    def latest(self, max_version: int | None, at: datetime | None) -> EntitySnapshot | None:
        hi = len(self.versions) if max_version is None else bisect_right(self.versions, max_version)
        if at is None:
            return self.snaps[hi - 1] if hi else None
        if self.monotonic:
            hi = min(hi, bisect_right(self.times, at))
            return self.snaps[hi - 1] if hi else None
        for i in range(hi - 1, -1, -1):
            if self.times[i] <= at:
                return self.snaps[i]
        return None


def _sorted_around(times: list[datetime], i: int) -> bool:
    ok_before = i == 0 or times[i - 1] <= times[i]
    ok_after = i + 1 >= len(times) or times[i] <= times[i + 1]
    return ok_before and ok_after


def _detached(snap: EntitySnapshot) -> EntitySnapshot:
    """A snapshot sharing nothing mutable with the caller's (as a database write would)."""
    return msgspec.structs.replace(
        snap,
        occurred_at=utc_ms(snap.occurred_at),
        document=copy.deepcopy(snap.document),
        findings=copy.deepcopy(snap.findings),
    )


class MemorySnapshots:
    """The `Snapshots` port over per-entity sorted lists."""

    def __init__(self) -> None:
        self._by_entity: dict[tuple[str, str], _Entity] = {}

    async def ensure_indexes(self) -> None:
        """Nothing to create: the structures are the indexes."""

    async def put_many(self, snapshots: Sequence[EntitySnapshot], *, session: Any = None) -> None:
        """Store (or replace) snapshots; a stored `next_version` only moves down."""
        for snap in snapshots:
            key = (snap.stream, typed_key(snap.entity_id))
            self._by_entity.setdefault(key, _Entity()).put(_detached(snap))

    async def purge_entity(self, stream: str, entity_id: Any) -> int:
        """Delete every snapshot of one entity."""
        entity = self._by_entity.pop((stream, typed_key(entity_id)), None)
        return 0 if entity is None else len(entity.versions)

    async def latest(
        self,
        stream: str,
        entity_id: Any,
        *,
        max_version: int | None = None,
        at: datetime | None = None,
    ) -> EntitySnapshot | None:
        """The newest snapshot with `version <= max_version` and `occurred_at <= at`."""
        entity = self._by_entity.get((stream, typed_key(entity_id)))
        if entity is None:
            return None
        # Read-only, like every folded state: not copied (a put stored a copy of its own).
        return entity.latest(max_version, utc_ms(at) if at is not None else None)
