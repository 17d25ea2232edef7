"""Point in time: entity histories, state at a time or version, diffs, verification.

Any reconstruction costs at most two store queries whatever the history length:
the newest snapshot at or before the target, then the events after it. Snapshots
are laid lazily (every `snapshot_every` versions) by the reads that fold past them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import msgspec

from eventstore.chain import EntityVerdict, LogVerdict, LogVerifier, entity_problem, verify_entity
from eventstore.codec import utc_ms
from eventstore.diff import FieldChange, diff
from eventstore.fold import Finding, Fold
from eventstore.keys import InvalidKey, candidates, typed_key
from eventstore.model import GAP, GENESIS_HASH, STREAM_ENTITY_ID, EntitySnapshot, Event, Head
from eventstore.ports import Store

_GAP_CACHE_SECONDS = 5.0


class HistoryError(Exception):
    """A question the log cannot answer as asked (the CLI exits 1, the API answers 4xx)."""

    status = 400


class UnknownEntity(HistoryError):
    """No entity of the stream has this key."""

    status = 404


class AmbiguousKey(HistoryError):
    """A bare key names entities of several `_id` types."""

    status = 409

    def __init__(self, message: str, typed_keys: list[str]) -> None:
        super().__init__(message)
        self.typed_keys = typed_keys


class NoState(HistoryError):
    """The entity had no state yet at that point."""

    status = 404


class UnknownVersion(HistoryError):
    """The entity has no such version."""

    status = 404


class ImpossibleRange(HistoryError):
    """A well-formed range that cannot hold (from after to)."""

    status = 422


class Gap(msgspec.Struct, frozen=True):
    """A stretch of time whose changes were not observed."""

    from_: datetime = msgspec.field(name="from")
    to: datetime


class EntityState(msgspec.Struct, frozen=True, kw_only=True):
    """The DESIGN.md state shape (+ findings of the fold)."""

    stream: str
    entity_key: str
    version: int
    as_of: datetime
    exists: bool
    uncertain: bool = False
    gap: Gap | None = None
    document: dict[str, Any] | None = None
    findings: list[Finding] = []


class HistoryPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of an entity's events, each with its field-level diff."""

    stream: str
    entity_key: str
    events: list[tuple[Event, list[FieldChange]]]
    next: str | None


class StreamVerdict(msgspec.Struct, frozen=True, kw_only=True):
    """Verification of every entity of a stream."""

    valid: bool
    entities_checked: int
    events_checked: int
    invalid: list[dict[str, Any]]


class History:
    """Reads the log to answer point-in-time questions; writes only snapshots."""

    def __init__(
        self, store: Store, *, snapshot_every: int = 100, head_checkpoint: str = "ingester:shop"
    ) -> None:
        self.store = store
        self.snapshot_every = snapshot_every
        self.head_checkpoint = head_checkpoint
        self._gaps: dict[str, tuple[float, list[Gap]]] = {}

    # -- keys --------------------------------------------------------------------------------
    async def resolve(self, stream: str, key: str) -> Any:
        """The `_id` a key names in a stream (typed keys exactly; bare keys by what exists)."""
        try:
            options = candidates(key)
        except InvalidKey as exc:
            raise HistoryError(str(exc)) from None
        found = await self.store.events.existing_entity_ids(stream, options)
        if not found:
            raise UnknownEntity(f"no entity {key!r} in stream {stream!r}")
        if len(found) > 1:
            typed = [typed_key(f) for f in found]
            raise AmbiguousKey(
                f"{key!r} names several entities in {stream!r}: use one of {', '.join(typed)}",
                typed,
            )
        return found[0]

    # -- state -------------------------------------------------------------------------------
    async def state(
        self, stream: str, key: str, *, at: datetime | None = None, version: int | None = None
    ) -> EntityState:
        """The entity as it was at a time or a version (neither: now)."""
        entity_id = await self.resolve(stream, key)
        return await self.state_of(stream, entity_id, at=at, version=version)

    async def state_of(
        self, stream: str, entity_id: Any, *, at: datetime | None = None, version: int | None = None
    ) -> EntityState:
        """The reconstruction itself: two queries (snapshot, then the events after it)."""
        if at is not None and version is not None:
            raise HistoryError("give a time or a version, not both")
        if version is not None and version < 1:
            raise UnknownVersion(f"versions start at 1, got {version}")
        limit_at = utc_ms(at) if at is not None else None
        snap = await self.store.snapshots.latest(
            stream, entity_id, max_version=version, at=limit_at
        )
        start = snap.version + 1 if snap else 1
        events = await self.store.events.read_entity(
            stream, entity_id, from_version=start, to_version=version
        )
        if limit_at is not None:
            events = [e for e in events if e.occurred_at <= limit_at]
        if snap is not None and events and events[0].prev_hash != snap.event_hash:
            # The snapshot does not chain into the log (edited or stale): never trust it.
            snap = None
            events = await self.store.events.read_entity(stream, entity_id, to_version=version)
            if limit_at is not None:
                events = [e for e in events if e.occurred_at <= limit_at]
        if snap is None and not events:
            if version is not None:
                raise UnknownVersion(f"version {version} does not exist")
            raise NoState(
                f"the entity had no state yet at {at.isoformat() if at else 'that point'}"
            )
        reached = events[-1].version if events else snap.version if snap else 0
        if version is not None and reached != version:
            raise UnknownVersion(f"version {version} does not exist")
        folder = Fold(snap.document if snap else None, version=snap.version if snap else 0)
        due: list[EntitySnapshot] = []
        for event in events:
            folder.apply(event)
            if event.version % self.snapshot_every == 0:
                due.append(self._snapshot(event, folder.state))
        if due:
            await self.store.snapshots.put_many(due)
        if events:
            last = events[-1]
            as_of, exists, key = last.occurred_at, last.type != "deleted", last.entity_key
        else:
            assert snap is not None
            as_of, exists, key = snap.occurred_at, snap.exists, snap.entity_key
        gap = await self._gap_at(stream, limit_at) if limit_at is not None else None
        return EntityState(
            stream=stream,
            entity_key=key,
            version=folder.version,
            as_of=as_of,
            exists=exists,
            uncertain=gap is not None,
            gap=gap,
            document=folder.state if exists else None,
            findings=folder.findings,
        )

    def _snapshot(self, event: Event, state: dict[str, Any] | None) -> EntitySnapshot:
        return EntitySnapshot(
            stream=event.stream,
            entity_id=event.entity_id,
            entity_key=event.entity_key,
            version=event.version,
            occurred_at=event.occurred_at,
            exists=state is not None and event.type != "deleted",
            document=state,
            event_hash=event.hash,
        )

    async def ensure_snapshots(self, stream: str, entity_id: Any) -> int:
        """Lay every missing snapshot of an entity; returns how many versions it has."""
        latest = await self.store.events.read_entity(stream, entity_id)
        if not latest:
            return 0
        await self.state_of(stream, entity_id, version=latest[-1].version)
        return latest[-1].version

    async def _gap_at(self, stream: str, at: datetime) -> Gap | None:
        """The recorded gap of the stream holding `at`, if any (gaps are few and cached)."""
        cached = self._gaps.get(stream)
        if cached is None or time.monotonic() - cached[0] > _GAP_CACHE_SECONDS:
            events = await self.store.events.read_entity(stream, STREAM_ENTITY_ID)
            gaps = [
                Gap(from_=utc_ms(e.document["from_time"]), to=utc_ms(e.document["to_time"]))
                for e in events
                if e.type == GAP and e.document and "from_time" in e.document
            ]
            cached = (time.monotonic(), gaps)
            self._gaps[stream] = cached
        for gap in cached[1]:
            if gap.from_ <= at <= gap.to:
                return gap
        return None

    # -- history and diff --------------------------------------------------------------------
    async def history(
        self,
        stream: str,
        key: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> HistoryPage:
        """A page of the entity's events in version order, each with its diff."""
        entity_id = await self.resolve(stream, key)
        start = from_version
        if after is not None:
            try:
                start = max(start, int(after) + 1)
            except ValueError:
                raise HistoryError(f"malformed page cursor {after!r}") from None
        if to_version is not None and from_version > to_version:
            raise ImpossibleRange(f"from_version {from_version} is after to_version {to_version}")
        events = await self.store.events.read_entity(
            stream, entity_id, from_version=start, to_version=to_version, limit=limit + 1
        )
        more = len(events) > limit
        events = events[:limit]
        before: dict[str, Any] | None = None
        if events and events[0].version > 1:
            prior = await self.state_of(stream, entity_id, version=events[0].version - 1)
            before = prior.document
        folder = Fold(before, version=events[0].version - 1 if events else 0)
        out: list[tuple[Event, list[FieldChange]]] = []
        for event in events:
            old = folder.state
            new = folder.apply(event)
            out.append((event, diff(old, new)))
        return HistoryPage(
            stream=stream,
            entity_key=events[0].entity_key if events else key,
            events=out,
            next=str(events[-1].version) if more and events else None,
        )

    async def diff(
        self, stream: str, key: str, from_version: int, to_version: int
    ) -> list[FieldChange]:
        """What changed, field by field, between two versions."""
        if from_version > to_version:
            raise ImpossibleRange(f"from_version {from_version} is after to_version {to_version}")
        entity_id = await self.resolve(stream, key)
        a = await self.state_of(stream, entity_id, version=from_version)
        b = await self.state_of(stream, entity_id, version=to_version)
        return diff(a.document, b.document)

    # -- verification ------------------------------------------------------------------------
    async def verify_entity(self, stream: str, key: str) -> EntityVerdict:
        """Recompute one entity's chain; the first bad version is named."""
        entity_id = await self.resolve(stream, key)
        return verify_entity(await self.store.events.read_entity(stream, entity_id))

    async def verify_stream(self, stream: str) -> StreamVerdict:
        """Recompute every entity chain of a stream in one pass along seq."""
        last: dict[str, tuple[int, str]] = {}  # typed key -> (version, hash) verified so far
        bad: dict[str, dict[str, Any]] = {}
        checked = 0
        async for event in self._all_events():
            if event.stream != stream:
                continue
            checked += 1
            tk = typed_key(event.entity_id)
            if tk in bad:
                continue
            version, prev = last.get(tk, (0, GENESIS_HASH))
            problem = entity_problem(event, version + 1, prev)
            if problem is not None:
                first = version + 1 if event.version > version + 1 else event.version
                bad[tk] = {
                    "entity_key": event.entity_key,
                    "first_invalid_version": first,
                    "reason": problem,
                }
            else:
                last[tk] = (event.version, event.hash)
        return StreamVerdict(
            valid=not bad,
            entities_checked=len(set(last) | set(bad)),
            events_checked=checked,
            invalid=list(bad.values()),
        )

    async def verify_log(self, expected_head: Head | None = None) -> LogVerdict:
        """Recompute both chains along seq, against a given head or the ingester's recorded one."""
        if expected_head is None:
            cp = await self.store.checkpoints.get(self.head_checkpoint)
            expected_head = cp.head if cp is not None else None
        verifier = LogVerifier(expected_head)
        async for event in self._all_events():
            verifier.feed(event)
            if verifier.failed:
                break
        return verifier.verdict()

    async def _all_events(self, page: int = 1000) -> AsyncIterator[Event]:
        after = 0
        while True:
            events = await self.store.events.read(after_seq=after, limit=page)
            if not events:
                return
            for e in events:
                yield e
            after = events[-1].seq
            if len(events) < page:
                return
