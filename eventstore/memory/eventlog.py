"""The event log in process memory: plain Python structures with real indexes."""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from eventstore.keys import typed_key
from eventstore.model import LIVE_TYPES, STREAM_KEY, EntityHead, Event, Head
from eventstore.ports import LogConflict


def _version(event: Event) -> int:
    return event.version


def _entity_head(event: Event) -> EntityHead:
    """The head an entity's newest event makes."""
    return EntityHead(
        stream=event.stream,
        entity_id=event.entity_id,
        entity_key=event.entity_key,
        version=event.version,
        hash=event.hash,
        type=event.type,
        actor=event.actor,
    )


def _check_batch_order(events: Sequence[Event]) -> None:
    """Refuse a batch whose `seq` values are not consecutive (a batch is one run of the log)."""
    for before, after in pairwise(events):
        if after.seq != before.seq + 1:
            raise LogConflict(
                f"batch is not one run of the log: seq {after.seq} follows seq {before.seq}"
            )


class MemoryEventLog:
    """The `EventLog` port over dicts and lists: append O(1) per event, entity reads O(log n)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Event] = {}
        # seq is dense from 1 (append enforces it): seq N is at index N - 1.
        self._by_seq: list[Event] = []
        # (stream, typed key) -> the entity's events, sorted by version.
        self._by_entity: dict[tuple[str, str], list[Event]] = {}
        # stream -> typed keys of the entities with events in it.
        self._entities: dict[str, set[str]] = {}

    async def ensure_indexes(self) -> None:
        """Nothing to do: the indexes are the structures themselves."""

    async def append(self, events: Sequence[Event], *, session: Any = None) -> int:
        """Store the events whose ids are new; all or nothing when one conflicts."""
        # No await below: the batch is validated and stored without interleaving.
        new = self._validate(events)
        for event in new:
            key = (event.stream, typed_key(event.entity_id))
            self._by_id[event.id] = event
            self._by_seq.append(event)
            entity = self._by_entity.setdefault(key, [])
            if not entity or entity[-1].version < event.version:
                entity.append(event)  # the usual case: O(1)
            else:
                insort(entity, event, key=_version)
            self._entities.setdefault(event.stream, set()).add(key[1])
        return len(new)

    def _validate(self, events: Sequence[Event]) -> list[Event]:
        """The events to store, in order; raises `LogConflict` before anything is stored."""
        _check_batch_order(events)
        new: list[Event] = []
        ids: set[str] = set()
        versions: set[tuple[str, str, int]] = set()
        expected = len(self._by_seq) + 1
        for event in events:
            if event.id in self._by_id or event.id in ids:
                continue  # already recorded: consumes no seq
            if event.seq != expected:
                raise LogConflict(
                    f"event {event.id} has seq {event.seq} where the log continues at {expected}"
                )
            tk = typed_key(event.entity_id)
            if (event.stream, tk, event.version) in versions or self._has_version(
                event.stream, tk, event.version
            ):
                raise LogConflict(
                    f"{event.stream}/{event.entity_key} already has version {event.version}"
                )
            ids.add(event.id)
            versions.add((event.stream, tk, event.version))
            new.append(event)
            expected += 1
        return new

    def _has_version(self, stream: str, tk: str, version: int) -> bool:
        entity = self._by_entity.get((stream, tk), [])
        i = bisect_left(entity, version, key=_version)
        return i < len(entity) and entity[i].version == version

    async def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of these event ids are stored."""
        return {i for i in ids if i in self._by_id}

    async def entity_heads(self, stream: str, entity_ids: Sequence[Any]) -> dict[str, EntityHead]:
        """The newest event of each entity that has one, keyed by typed key."""
        heads: dict[str, EntityHead] = {}
        for entity_id in entity_ids:
            tk = typed_key(entity_id)
            entity = self._by_entity.get((stream, tk))
            if entity:
                heads[tk] = _entity_head(entity[-1])
        return heads

    async def live_entities(self, stream: str) -> list[EntityHead]:
        """Entities whose newest event leaves a document, ordered by typed key."""
        live: list[EntityHead] = []
        for tk in sorted(self._entities.get(stream, ())):
            newest = self._by_entity[(stream, tk)][-1]
            if newest.entity_key != STREAM_KEY and newest.type in LIVE_TYPES:
                live.append(_entity_head(newest))
        return live

    async def existing_entity_ids(self, stream: str, candidates: Sequence[Any]) -> list[Any]:
        """The candidates that have events in the stream, as stored, in the candidates' order."""
        found: list[Any] = []
        known = self._entities.get(stream, set())
        seen: set[str] = set()
        for candidate in candidates:
            tk = typed_key(candidate)
            if tk in known and tk not in seen:
                seen.add(tk)
                found.append(self._by_entity[(stream, tk)][0].entity_id)
        return found

    async def read_entity(
        self,
        stream: str,
        entity_id: Any,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """One entity's events in the version range, in version order."""
        entity = self._by_entity.get((stream, typed_key(entity_id)), [])
        lo = bisect_left(entity, from_version, key=_version)
        hi = len(entity) if to_version is None else bisect_right(entity, to_version, key=_version)
        if limit is not None:
            hi = min(hi, lo + max(limit, 0))
        return entity[lo:hi]

    async def read(self, *, after_seq: int = 0, limit: int = 1000) -> list[Event]:
        """Events after a position, in seq order."""
        start = max(after_seq, 0)
        return self._by_seq[start : start + max(limit, 0)]

    async def head(self) -> Head:
        """The newest event's position (seq 0 when empty)."""
        if not self._by_seq:
            return Head()
        last = self._by_seq[-1]
        return Head(seq=last.seq, log_hash=last.log_hash)
