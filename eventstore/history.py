"""Point in time: entity histories, state at a time or version, diffs, verification.

Any reconstruction costs at most two store queries, whatever the history length:
the newest snapshot at or before the target, then one `read_entity` range from
it. Snapshots are a cache of the log laid by the reads themselves: a read that
folds past a multiple of `snapshot_every` stores the state there, linked to the
next one (`next_version`), so that

- a version target reads the events from the snapshot to that version (fewer
  than `snapshot_every` once the snapshots are laid);
- a time target whose snapshot knows its successor reads only up to it (the
  successor's own event included, to confirm from the log that the target lies
  before it); the newest snapshot has no successor, so the rest of the entity
  is read once and the snapshots it passes are laid;
- a snapshot is used only when the log's event at its version has the hash it
  recorded; otherwise it is ignored and the entity folded from its first event
  (a third query, only for a snapshot that no longer matches the log).

Times: one entity's `occurred_at` is taken not to go back as versions grow (the
wallTimes of successive writes to one document). `at` is compared at
millisecond precision, MongoDB's; the state at `at` is the one after the
newest version with `occurred_at <= at`.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any, Final

import msgspec

from eventstore import verification
from eventstore.capture import timestamp_time
from eventstore.chain import EntityVerdict, LogVerdict
from eventstore.codec import rfc3339, utc_ms
from eventstore.decimal_text import decimal_int
from eventstore.diff import FieldChange, diff
from eventstore.fold import Finding, Fold
from eventstore.keys import (
    InvalidKey,
    answer_key,
    candidates,
    entity_key,
    shown_key,
    typed_key,
)
from eventstore.model import (
    GAP,
    GENESIS_HASH,
    LIVE_TYPES,
    STREAM_ENTITY_ID,
    STREAM_KEY,
    EntitySnapshot,
    Event,
    Head,
)
from eventstore.ports import Store
from eventstore.settings import Settings
from eventstore.verification import InvalidEntity, StreamVerdict

# The most events one history page holds.
MAX_LIMIT: Final = 1000
# How many findings a state carries (the first ones: the earliest divergence matters most).
FINDINGS_KEPT: Final = 100
# Events per read when verifying or laying snapshots over a whole entity.
_PAGE: Final = 1000
# A long fold (the first read of an entity of many versions, before any snapshot) gives
# the loop a turn every this many versions: other requests go on, and a client gone
# cancels it.
_FOLD_TURN: Final = 1024
# How many folded states a History keeps in memory (events never change, so they never go stale).
FOLDED_KEPT: Final = 10_000
# The time of the version-0 snapshot: before any `at` a caller can give.
_GENESIS_TIME: Final = datetime(1, 1, 1, tzinfo=UTC)


class HistoryError(Exception):
    """A question the log cannot answer as asked (the CLI exits 1, the API answers 4xx).

    Each subclass names a kind of refusal; its HTTP status is the API's business
    (`api.problems.HISTORY_STATUS`).
    """


class UnknownStream(HistoryError):
    """The stream is not captured and holds no such entity."""


class UnknownEntity(HistoryError):
    """No entity of the stream has this key."""


class AmbiguousKey(HistoryError):
    """A bare key names entities of several `_id` types."""

    def __init__(self, message: str, typed_keys: list[str]) -> None:
        super().__init__(message)
        self.typed_keys = typed_keys


class ErasureRefused(HistoryError):
    """An entity that cannot be erased (events of the old hash scheme, the `$stream` record)."""


class NoState(HistoryError):
    """The entity had no recorded state yet at that time."""


class UnknownVersion(HistoryError):
    """The entity has no such version."""


class ImpossibleRange(HistoryError):
    """A well-formed range that cannot hold (from after to); `field` names its start."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class Gap(msgspec.Struct, frozen=True):
    """A stretch of time whose changes were not observed (bounds included)."""

    from_: datetime = msgspec.field(name="from")
    to: datetime


class EntityState(msgspec.Struct, frozen=True, kw_only=True):
    """The DESIGN.md state shape, and the findings of the fold up to that version."""

    stream: str
    entity_key: str
    version: int
    as_of: datetime
    exists: bool
    uncertain: bool = False
    gap: Gap | None = None
    document: dict[str, Any] | None = None
    findings: list[Finding] = []
    # True when an event up to this version was erased: the state cannot be told
    # (document None), only that it existed (`exists`, from the event's type).
    erased: bool = False


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One event of a history and its field-level diff (the state before it to the state after)."""

    event: Event
    diff: list[FieldChange]


class HistoryPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of an entity's events; `next` is the cursor of the following page, or None."""

    stream: str
    entity_key: str
    events: list[HistoryEntry]
    next: str | None


class VersionDiff(msgspec.Struct, frozen=True, kw_only=True):
    """What changed between two versions of an entity, field by field."""

    from_version: int
    to_version: int
    changes: list[FieldChange]
    # True when either version's state comes from an erased event: what changed cannot be
    # told (`changes` is empty), which is not the same as nothing having changed.
    erased: bool = False


def _continues(base: EntitySnapshot, events: Sequence[Event]) -> bool:
    """True when the log read from `base` starts where the snapshot says it was taken."""
    if not events:
        return False
    first = events[0]
    if base.version == 0:
        return first.version == 1 and first.prev_hash == base.event_hash
    return first.version == base.version and first.hash == base.event_hash


class _Folding:
    """Folds one entity's events from a base snapshot (or nothing), laying snapshots as it goes.

    A multiple of `every` is laid when it lies after the base and before
    `lay_below` (a later snapshot known to exist). Laid snapshots are linked in
    a chain: base (or a version-0 snapshot) -> each laid one -> `lay_below`.
    """

    def __init__(self, base: EntitySnapshot | None, every: int, lay_below: int | None) -> None:
        self.base_version = base.version if base is not None else 0
        self.fold = Fold(base.document if base is not None else None, version=self.base_version)
        self.prior = msgspec.convert(base.findings, list[Finding]) if base is not None else []
        self.every = every
        self.lay_below = lay_below
        self.head = base
        self.laid: list[EntitySnapshot] = []

    def findings(self, upto: int | None = None) -> list[Finding]:
        found = self.prior + self.fold.findings
        if upto is not None:
            found = [f for f in found if f.version <= upto]
        return found[:FINDINGS_KEPT]

    def apply(self, event: Event) -> None:
        self.fold.apply(event)
        v = event.version
        if (
            v % self.every == 0
            and v > self.base_version
            and (self.lay_below is None or v < self.lay_below)
            and not event.is_stream_event
        ):
            self.laid.append(
                EntitySnapshot(
                    stream=event.stream,
                    entity_id=event.entity_id,
                    entity_key=event.entity_key,
                    version=v,
                    occurred_at=event.occurred_at,
                    exists=self.fold.state is not None,
                    document=self.fold.state,
                    event_hash=event.hash,
                    findings=[msgspec.to_builtins(f) for f in self.findings()],
                )
            )

    def lays_after(self, version: int, last: int) -> bool:
        """True when folding on from `version` to `last` would lay a snapshot."""
        due = (version // self.every + 1) * self.every
        return due <= last and (self.lay_below is None or due < self.lay_below)

    def take_writes(self) -> list[EntitySnapshot]:
        """The snapshots to store for what was laid since the last call, links set."""
        if not self.laid:
            return []
        first = self.laid[0]
        head = self.head or EntitySnapshot(
            stream=first.stream,
            entity_id=first.entity_id,
            entity_key=first.entity_key,
            version=0,
            occurred_at=_GENESIS_TIME,
            exists=False,
            event_hash=GENESIS_HASH,
        )
        chain = [head, *self.laid]
        out = [msgspec.structs.replace(a, next_version=b.version) for a, b in pairwise(chain)]
        out.append(msgspec.structs.replace(self.laid[-1], next_version=self.lay_below))
        self.head = self.laid[-1]
        self.laid = []
        return out


def _erased_state(stream: str, events: Sequence[Event], target: int) -> EntityState | None:
    """The state at `target` when an event read up to it was erased (no document), else None.

    `events` start at the base snapshot's own event, so a snapshot of erased data
    (laid before the erasure purged snapshots) is never trusted either.
    """
    folded = [e for e in events if e.version <= target]
    if not any(e.erased for e in folded):
        return None
    last = folded[-1]
    return EntityState(
        stream=stream,
        entity_key=last.entity_key,
        version=last.version,
        as_of=last.occurred_at,
        exists=last.type in LIVE_TYPES,
        document=None,
        erased=True,
    )


def _page_range(
    from_version: int, to_version: int | None, limit: int, after: str | None
) -> tuple[int, int]:
    """A history page's first version, and the last version to read (one past the page)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise HistoryError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    if from_version < 1:
        raise HistoryError(f"versions start at 1, got from_version {from_version}")
    if to_version is not None and from_version > to_version:
        raise ImpossibleRange(
            f"from_version {from_version} is after to_version {to_version}", field="from_version"
        )
    start = from_version
    if after is not None:
        seen = decimal_int(after)
        if seen is None or seen < 0:
            raise HistoryError(f"malformed page cursor {after!r}")
        start = max(start, seen + 1)
    end = start + limit if to_version is None else min(start + limit, to_version)
    return start, end


class History:
    """Reads the log to answer point-in-time questions; writes only snapshots (a cache)."""

    def __init__(
        self,
        store: Store,
        *,
        snapshot_every: int = 100,
        streams: Iterable[str] = (),
        head_checkpoint: str = "ingester:shop",
        gap_cache_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        remember: int = FOLDED_KEPT,
    ) -> None:
        if snapshot_every < 1:
            raise ValueError("snapshot_every must be 1 or more")
        self.store = store
        self.snapshot_every = snapshot_every
        # The captured streams: a key not found in another stream names an unknown stream.
        self.streams = frozenset(streams)
        # The checkpoint whose head `verify_log` checks truncation against.
        self.head_checkpoint = head_checkpoint
        self._gap_cache_seconds = gap_cache_seconds
        self._monotonic = monotonic
        self._gaps: dict[str, tuple[float, list[Gap]]] = {}
        # Folded states by (stream, typed key, version, that version's event hash), LRU;
        # at most `remember` (0: none, every state is reconstructed from the store).
        self.remember = remember
        self._folded: OrderedDict[
            tuple[str, str, int, str], tuple[dict[str, Any] | None, list[Finding]]
        ] = OrderedDict()

    @classmethod
    def from_settings(cls, store: Store, settings: Settings) -> History:
        """The history service of a deployment: its interval, streams and ingester checkpoint."""
        return cls(
            store,
            snapshot_every=settings.snapshot_every,
            streams=settings.collections,
            head_checkpoint=settings.ingester_role,
        )

    # -- keys --------------------------------------------------------------------------------
    async def resolve(self, stream: str, key: str) -> Any:
        """The `_id` a key names in a stream (typed keys exactly; bare keys by what exists)."""
        options = self._candidates(key)
        found = await self.store.events.existing_entity_ids(stream, options)
        if not found:
            raise self._unknown(stream, key)
        if len(found) > 1:
            typed = sorted(typed_key(f) for f in found)
            raise AmbiguousKey(
                f"{shown_key(key)} names {len(found)} entities in {shown_key(stream)}: use one of {', '.join(typed)}",
                typed,
            )
        return found[0]

    def _candidates(self, key: str) -> list[Any]:
        if key == STREAM_KEY:
            return [STREAM_ENTITY_ID]
        try:
            return candidates(key)
        except InvalidKey as exc:
            raise HistoryError(str(exc)) from None

    async def _target(self, stream: str, key: str) -> Any:
        """The `_id` to read: a key that can name one value only costs no lookup (the read confirms it)."""
        options = self._candidates(key)
        if len(options) == 1:
            return options[0]
        return await self.resolve(stream, key)

    def _unknown(self, stream: str, key: str) -> HistoryError:
        if self.streams and stream not in self.streams:
            captured = ", ".join(sorted(self.streams))
            return UnknownStream(
                f"unknown stream {shown_key(stream)} (captured: {captured}), and no entity {shown_key(key)} in it"
            )
        return UnknownEntity(f"no entity {shown_key(key)} in stream {shown_key(stream)}")

    # -- state -------------------------------------------------------------------------------
    async def state(
        self, stream: str, key: str, *, at: datetime | None = None, version: int | None = None
    ) -> EntityState:
        """The entity as it was at a time or a version (neither: its latest state)."""
        entity_id = await self._target(stream, key)
        state = await self._state(stream, entity_id, key, at=at, version=version)
        named = answer_key(entity_id, key)
        return msgspec.structs.replace(state, entity_key=named)

    async def state_of(
        self, stream: str, entity_id: Any, *, at: datetime | None = None, version: int | None = None
    ) -> EntityState:
        """The state of an entity given by its `_id` (two queries)."""
        return await self._state(stream, entity_id, entity_key(entity_id), at=at, version=version)

    async def _state(
        self,
        stream: str,
        entity_id: Any,
        key: str,
        *,
        at: datetime | None,
        version: int | None,
    ) -> EntityState:
        if at is not None and version is not None:
            raise HistoryError("give a time or a version, not both")
        if version is not None and version < 1:
            raise UnknownVersion(f"versions start at 1, got {version}")
        at_ms = utc_ms(at) if at is not None else None
        events_port, snaps = self.store.events, self.store.snapshots

        base = await snaps.latest(stream, entity_id, max_version=version, at=at_ms)
        link = base.next_version if base is not None else None
        upper: int | None
        lay_below: int | None
        if version is not None:
            # No snapshot lies in (base, version]: a link at or below it is stale.
            upper = version
            lay_below = link if link is not None and link > version else None
        elif at_ms is not None and link is not None:
            upper = lay_below = link
        else:
            upper = lay_below = None
        start = max(base.version, 1) if base is not None else 1
        events = await events_port.read_entity(
            stream, entity_id, from_version=start, to_version=upper
        )
        if base is not None and not _continues(base, events):
            # The snapshot does not match the log (edited, or the log was): never trust it.
            base, lay_below = None, None
            upper = version
            events = await events_port.read_entity(stream, entity_id, to_version=upper)
        if not events:
            raise self._unknown(stream, key)
        if entity_id is STREAM_ENTITY_ID:  # not a document's `_id` "$stream", stored before
            raise HistoryError(
                f"{STREAM_KEY} is the stream's own record (gaps, drops, renames, rejected changes): "
                "it has a history, not a state"
            )
        if (
            at_ms is not None
            and upper is not None
            and events[-1].version == upper
            and events[-1].occurred_at <= at_ms
        ):
            # The linked snapshot's own event is not after `at` after all: read on.
            more = await events_port.read_entity(stream, entity_id, from_version=upper + 1)
            events = [*events, *more]
            lay_below = None

        base_version = base.version if base is not None else 0
        if version is not None:
            target = version
            if events[-1].version < version:
                raise UnknownVersion(
                    f"{shown_key(key)} has no version {version}: its latest is {events[-1].version}"
                )
        elif at_ms is not None:
            target = base_version
            for e in events:
                if e.occurred_at <= at_ms and e.version > target:
                    target = e.version
        else:
            target = events[-1].version

        erased_state = _erased_state(stream, events, target)
        if erased_state is not None:
            self._forget(stream, entity_id)
            return erased_state
        folding = _Folding(base, self.snapshot_every, lay_below)
        state = base.document if base is not None else None
        target_event = events[0] if events[0].version == target else None
        findings: list[Finding] | None = None
        # A state folded before (same entity, version and event hash) is not folded again,
        # unless this fold would lay a snapshot.
        memo = None
        i = target - events[0].version
        if (
            target > base_version
            and 0 <= i < len(events)
            and events[i].version == target
            and not folding.lays_after(base_version, events[-1].version)
        ):
            # Trusted like a snapshot: by the hash of the event at its version.
            memo = (stream, typed_key(entity_id), target, events[i].hash)
            hit = self._folded.get(memo)
            if hit is not None:
                self._folded.move_to_end(memo)
                state, findings = hit
                target_event = events[i]
                events = []
        for event in events:
            if event.version <= base_version:
                continue  # the snapshot's own event: its state is the snapshot's
            if event.version % _FOLD_TURN == 0:
                await asyncio.sleep(0)
            folding.apply(event)
            if event.version == target:
                state, target_event = folding.fold.state, event
            if event.version >= target and not folding.lays_after(
                event.version, events[-1].version
            ):
                break  # what is left would lay no snapshot: folding it is wasted
        await snaps.put_many(folding.take_writes())
        if findings is None:
            findings = folding.findings(upto=target)
            if memo is not None and self.remember > 0:
                self._folded[memo] = (state, findings)
                if len(self._folded) > self.remember:
                    self._folded.popitem(last=False)

        gap = await self._gap_at(stream, at_ms) if at_ms is not None else None
        if target_event is None:
            assert at_ms is not None  # only a time can come before the first event
            note = (
                f"; it falls inside a gap in the record ({rfc3339(gap.from_)} to {rfc3339(gap.to)})"
                if gap
                else ""
            )
            raise NoState(
                f"{shown_key(key)} has no recorded state at {rfc3339(at_ms)}: its first event is at "
                f"{rfc3339(events[0].occurred_at)}{note}"
            )
        return EntityState(
            stream=stream,
            entity_key=target_event.entity_key,
            version=target,
            as_of=target_event.occurred_at,
            exists=state is not None,
            uncertain=gap is not None,
            gap=gap,
            document=state,
            findings=findings,
        )

    def _forget(self, stream: str, entity_id: Any) -> None:
        """Drop the remembered states of an entity met erased (they hold its data)."""
        tk = typed_key(entity_id)
        for memo in [m for m in self._folded if m[0] == stream and m[1] == tk]:
            del self._folded[memo]

    async def ensure_snapshots(self, stream: str, entity_id: Any) -> int:
        """Lay every missing snapshot after the newest one, reading in pages; returns the latest version.

        (Holes below the newest snapshot, left by a changed interval, stay: reads
        across them remain exact, only longer.)
        """
        base = await self.store.snapshots.latest(stream, entity_id)
        start = max(base.version, 1) if base is not None else 1
        events = await self.store.events.read_entity(
            stream, entity_id, from_version=start, limit=_PAGE
        )
        if base is not None and not _continues(base, events):
            base = None
            events = await self.store.events.read_entity(stream, entity_id, limit=_PAGE)
        folding = _Folding(base, self.snapshot_every, None)
        latest = 0
        while events:
            for event in events:
                if event.version > folding.base_version:
                    folding.apply(event)
            latest = events[-1].version
            await self.store.snapshots.put_many(folding.take_writes())
            if len(events) < _PAGE:
                break
            events = await self.store.events.read_entity(
                stream, entity_id, from_version=latest + 1, limit=_PAGE
            )
        return latest

    async def _gap_at(self, stream: str, at: datetime) -> Gap | None:
        """The recorded gap of the stream holding `at`, if any (gaps are few: cached a while)."""
        now = self._monotonic()
        cached = self._gaps.get(stream)
        if cached is None or now - cached[0] > self._gap_cache_seconds:
            cached = (now, await self._read_gaps(stream))
            self._gaps[stream] = cached
        for gap in cached[1]:
            if gap.from_ <= at <= gap.to:
                return gap
        return None

    async def _read_gaps(self, stream: str) -> list[Gap]:
        gaps: list[Gap] = []
        for e in await self.store.events.read_entity(stream, STREAM_ENTITY_ID):
            if not e.is_stream_event or e.type != GAP or not e.document:
                continue
            doc = e.document
            start = doc.get("from_time") or (doc.get("from") and timestamp_time(doc["from"]))
            end = doc.get("to_time") or (doc.get("to") and timestamp_time(doc["to"]))
            if isinstance(start, datetime) and isinstance(end, datetime):
                gaps.append(Gap(from_=utc_ms(start), to=utc_ms(end)))
        return gaps

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
        """A page of the entity's events in version order, each with its field-level diff.

        Two queries: the newest snapshot before the page, then the events from it
        to one past the page (to know whether another page follows).
        """
        start, end = _page_range(from_version, to_version, limit, after)
        entity_id = await self._target(stream, key)

        base = await self.store.snapshots.latest(stream, entity_id, max_version=start - 1)
        link = base.next_version if base is not None else None
        lay_below = link if link is not None and link > start - 1 else None
        first = max(base.version, 1) if base is not None else 1
        events = await self.store.events.read_entity(
            stream, entity_id, from_version=first, to_version=end
        )
        if base is not None and not _continues(base, events):
            base, lay_below = None, None
            events = await self.store.events.read_entity(stream, entity_id, to_version=end)
        if not events:
            raise self._unknown(stream, key)
        if after is None and start > events[-1].version:
            # Asked for versions the entity never had: as `state` and `diff` say, not an empty page.
            raise UnknownVersion(
                f"{shown_key(key)} has no version {start}: its latest is {events[-1].version}"
            )

        folding = _Folding(base, self.snapshot_every, lay_below)
        page: list[HistoryEntry] = []
        # After an erased event the states are unknown: no diff, no fold, no snapshot.
        erased_seen = False
        for event in events:
            if event.version <= folding.base_version:
                continue
            if event.version % _FOLD_TURN == 0:
                await asyncio.sleep(0)
            erased_seen = erased_seen or event.erased
            if erased_seen:
                if start <= event.version < start + limit:
                    page.append(HistoryEntry(event=event, diff=[]))
                continue
            before = folding.fold.state
            folding.apply(event)
            if start <= event.version < start + limit:
                page.append(HistoryEntry(event=event, diff=diff(before, folding.fold.state)))
        if not erased_seen:
            await self.store.snapshots.put_many(folding.take_writes())
        more = bool(page) and events[-1].version >= start + limit
        return HistoryPage(
            stream=stream,
            entity_key=answer_key(entity_id, key),
            events=page,
            next=str(page[-1].event.version) if more else None,
        )

    async def page_events(
        self,
        stream: str,
        key: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> tuple[list[Event], bool]:
        """The events `history` would put on this page, without folding (one query).

        With whether another page follows. An empty list says nothing about the
        entity (unknown, or a page past its end): ask `history` then.
        """
        start, end = _page_range(from_version, to_version, limit, after)
        entity_id = await self._target(stream, key)
        events = await self.store.events.read_entity(
            stream, entity_id, from_version=start, to_version=end
        )
        page = [e for e in events if e.version < start + limit]
        return page, bool(page) and events[-1].version >= start + limit

    async def diff(self, stream: str, key: str, from_version: int, to_version: int) -> VersionDiff:
        """What changed, field by field, from one version to another (two reconstructions)."""
        if from_version < 1 or to_version < 1:
            raise UnknownVersion(f"versions start at 1, got {min(from_version, to_version)}")
        if from_version > to_version:
            raise ImpossibleRange(
                f"from_version {from_version} is after to_version {to_version}",
                field="from_version",
            )
        entity_id = await self._target(stream, key)
        a = await self._state(stream, entity_id, key, at=None, version=from_version)
        b = (
            a
            if to_version == from_version
            else await self._state(stream, entity_id, key, at=None, version=to_version)
        )
        if a.erased or b.erased:
            return VersionDiff(
                from_version=from_version, to_version=to_version, changes=[], erased=True
            )
        return VersionDiff(
            from_version=from_version, to_version=to_version, changes=diff(a.document, b.document)
        )

    # -- verification ------------------------------------------------------------------------
    async def verify_entity(self, stream: str, key: str) -> EntityVerdict:
        """Recompute one entity's chain, page by page; the first bad version is named.

        The latest checkpoint is held to the entity's newest event inside it.
        """
        entity_id = await self._target(stream, key)
        verdict = await verification.verify_entity(
            self.store.events,
            stream,
            entity_id,
            page=_PAGE,
            checkpoint=await self.store.merkle.checkpoint(),
            merkle=self.store.merkle,
        )
        if verdict is None:
            raise self._unknown(stream, key)
        return verdict

    async def verify_stream(self, stream: str) -> StreamVerdict:
        """Recompute every entity chain of a stream in one pass along `seq` (read in pages).

        The same pass holds the latest checkpoint to the log (its root recomputed).
        """
        verdict = await verification.verify_stream(
            self.store.events, stream, page=_PAGE, checkpoint=await self.store.merkle.checkpoint()
        )
        if verdict.events_checked == 0 and self.streams and stream not in self.streams:
            raise UnknownStream(
                f"unknown stream {shown_key(stream)} (captured: {', '.join(sorted(self.streams))})"
            )
        return verdict

    async def verify_log(self, expected_head: Head | None = None) -> LogVerdict:
        """Both chains along `seq`, against a given head or the recorded one; and the latest checkpoint."""
        if expected_head is None:
            cp = await self.store.checkpoints.get(self.head_checkpoint)
            expected_head = cp.head if cp is not None else None
        latest = await self.store.merkle.checkpoint()
        return await verification.verify_log(
            self.store.events, expected_head, page=_PAGE, checkpoint=latest
        )


__all__ = [
    "FINDINGS_KEPT",
    "MAX_LIMIT",
    "AmbiguousKey",
    "EntityState",
    "Gap",
    "History",
    "HistoryEntry",
    "HistoryError",
    "HistoryPage",
    "ImpossibleRange",
    "InvalidEntity",
    "NoState",
    "StreamVerdict",
    "UnknownEntity",
    "UnknownStream",
    "UnknownVersion",
    "VersionDiff",
]
