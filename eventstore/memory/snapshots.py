"""Entity snapshots in process memory: per entity, a version-sorted list (lookups O(log n))."""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from eventstore.codec import utc_ms
from eventstore.keys import typed_key
from eventstore.model import EntitySnapshot


def _version(s: EntitySnapshot) -> int:
    return s.version


class MemorySnapshots:
    """The `Snapshots` port over dicts of sorted lists."""

    def __init__(self) -> None:
        self._by_entity: dict[tuple[str, str], list[EntitySnapshot]] = {}

    async def ensure_indexes(self) -> None:
        """Nothing to create: the structures are the indexes."""

    async def put_many(self, snapshots: Sequence[EntitySnapshot], *, session: Any = None) -> None:
        """Store snapshots, keeping one already stored for the same entity and version."""
        for snap in snapshots:
            entity = self._by_entity.setdefault((snap.stream, typed_key(snap.entity_id)), [])
            i = bisect_right(entity, snap.version, key=_version)
            if i and entity[i - 1].version == snap.version:
                continue
            insort(entity, snap, key=_version)

    async def latest(
        self,
        stream: str,
        entity_id: Any,
        *,
        max_version: int | None = None,
        at: datetime | None = None,
    ) -> EntitySnapshot | None:
        """The newest snapshot at or before a version and a time."""
        entity = self._by_entity.get((stream, typed_key(entity_id)), [])
        hi = len(entity) if max_version is None else bisect_right(entity, max_version, key=_version)
        if at is None:
            return entity[hi - 1] if hi else None
        limit = utc_ms(at)
        # occurred_at grows with version for one entity; walk back from the version bound.
        for i in range(hi - 1, -1, -1):
            if entity[i].occurred_at <= limit:
                return entity[i]
        return None
