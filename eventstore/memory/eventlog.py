"""The event log in process memory: plain Python structures with real indexes.

Besides the log itself (by id, by seq, by entity), every event is listed by the
seq in a few secondary indexes, each an append-only, seq-sorted list: per
stream, per entity, per type, per actor (by `actor_key`: 42 and 42.0 are one
actor), per changed-field prefix (`a.b.c` under `a`, `a.b` and `a.b.c`), per
changed field exactly, and the events that write or remove a whole document.
An audit query reads the shortest list (or union of lists) that holds every
match, from its position after `after_seq`, and filters the rest.
"""

from __future__ import annotations

import asyncio
import heapq
import threading
from bisect import bisect_left, bisect_right, insort
from collections.abc import Awaitable, Callable, Hashable, Iterator, Sequence
from datetime import datetime
from itertools import pairwise
from typing import Any, Final

import msgspec

from eventstore.actor_text import actor_key, actor_keys
from eventstore.codec import ceil_ms
from eventstore.field_match import WHOLE_DOCUMENT_TYPES, changed_field, path_and_ancestors
from eventstore.keys import listed_key, typed_key
from eventstore.model import (
    COMMIT_SCHEME,
    LIVE_TYPES,
    STREAM_ENTITY_ID,
    EntityHead,
    EntitySummary,
    Event,
    EventQuery,
    Head,
    StreamStats,
)
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


def _occurred_at(event: Event) -> datetime:
    return event.occurred_at


def _time_key(entry: tuple[datetime, int]) -> datetime:
    return entry[0]


def field_prefixes(paths: Sequence[str]) -> set[str]:
    """Every path and every path above it: `a.b.c` gives `a`, `a.b`, `a.b.c`."""
    prefixes: set[str] = set()
    for path in paths:
        prefixes.update(path_and_ancestors(path))
    return prefixes


def _summary(event: Event) -> EntitySummary:
    return EntitySummary(
        entity_key=listed_key(event.entity_id),
        entity_id=event.entity_id,
        version=event.version,
        exists=event.type in LIVE_TYPES,
        last_type=event.type,
        last_event_at=event.occurred_at,
        last_seq=event.seq,
    )


class _Marks:
    """0/1 marks over positions 0, 1, ... that grow by appending (a Fenwick tree).

    Append, set, count and select (the k-th mark) each cost O(log n).
    """

    def __init__(self) -> None:
        self._tree: list[int] = [0]  # 1-based; _tree[i] sums positions (i - lowbit(i), i]

    def __len__(self) -> int:
        return len(self._tree) - 1

    def append(self, mark: int) -> None:
        """Add a position at the end, marked (1) or not (0)."""
        i = len(self._tree)
        total, child, stop = mark, i - 1, i - (i & -i)
        while child > stop:  # the nodes this one covers besides itself
            total += self._tree[child]
            child -= child & -child
        self._tree.append(total)

    def add(self, position: int, delta: int) -> None:
        """Mark (+1) or unmark (-1) a position."""
        i = position + 1
        while i < len(self._tree):
            self._tree[i] += delta
            i += i & -i

    def count(self, end: int) -> int:
        """How many of the positions before `end` are marked."""
        total, i = 0, end
        while i > 0:
            total += self._tree[i]
            i -= i & -i
        return total

    def select(self, k: int) -> int:
        """The position of the k-th mark (1-based k, at most `count(len(self))`)."""
        position = 0
        step = 1 << len(self).bit_length() >> 1  # the highest power of two <= len (0 if empty)
        while step:
            nxt = position + step
            if nxt < len(self._tree) and self._tree[nxt] < k:
                position = nxt
                k -= self._tree[nxt]
            step >>= 1
        return position


class _StreamIndex:
    """One stream: its events by seq, its counts, and its entities by their newest event."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.entities = 0  # version-1 events of entities other than `$stream`
        # The newest event of each entity (not `$stream`) is marked at its position in `seqs`.
        self.newest = _Marks()


def _check_batch_order(events: Sequence[Event]) -> None:
    """Refuse a batch whose `seq` values are not consecutive (a batch is one run of the log)."""
    for before, after in pairwise(events):
        if after.seq != before.seq + 1:
            raise LogConflict(
                f"batch is not one run of the log: seq {after.seq} follows seq {before.seq}"
            )


class MemoryEventLog:
    """The `EventLog` port over dicts and lists: append O(1) per event, entity reads O(log n).

    `examined` counts the events audit queries have looked at (their cost, for
    tests and benchmarks: a selective query examines about what it returns).
    """

    def __init__(self) -> None:
        self._by_id: dict[str, Event] = {}
        # seq is dense from 1 (append enforces it): seq N is at index N - 1.
        self._by_seq: list[Event] = []
        # (stream, typed key) -> the entity's events, sorted by version.
        self._by_entity: dict[tuple[str, str], list[Event]] = {}
        # stream -> typed keys of the entities with events in it.
        self._entities: dict[str, set[str]] = {}
        # Secondary indexes: seq-sorted lists (append-only, seq only grows).
        self._streams: dict[str, _StreamIndex] = {}
        self._entity_seqs: dict[tuple[str, str], list[int]] = {}
        self._type_seqs: dict[str, list[int]] = {}
        self._actor_seqs: dict[Hashable, list[int]] = {}  # by `actor_key`
        self._field_seqs: dict[str, list[int]] = {}  # a changed path, or one beneath it
        self._exact_field_seqs: dict[str, list[int]] = {}  # that very changed path
        # replaced, snapshot and deleted events: they change every field (and are in no field's list)
        self._whole_seqs: list[int] = []
        # (stream, typed key) -> position in its stream's `seqs` of the entity's newest event.
        self._newest_position: dict[tuple[str, str], int] = {}
        # While `occurred_at` never goes back along seq, a time range is a seq range
        # (bisect `_by_seq`); after the first event that goes back, `_by_time` keeps
        # (occurred_at, seq) sorted.
        self._by_time: list[tuple[datetime, int]] | None = None
        # Futures of the pending `wait_for_append` calls, each on its caller's loop: a
        # reader may run on another thread's loop (a test client's portal).
        self._waiters: set[asyncio.Future[None]] = set()
        self._waiters_lock = threading.Lock()
        self.examined = 0

    async def ensure_indexes(self) -> None:
        """Nothing to do: the indexes are the structures themselves."""

    async def index_listings(
        self,
        events: Sequence[Event] | None = None,
        *,
        heartbeat: Callable[[], Awaitable[None]] | None = None,
    ) -> int:
        """Nothing to do: `append` keeps the streams' counts and entities' order itself."""
        return 0

    async def append(self, events: Sequence[Event], *, session: Any = None) -> int:
        """Store the events whose ids are new; all or nothing when one conflicts."""
        # No await below: the batch is validated and stored without interleaving.
        new = self._validate(events)
        for event in new:
            key = (event.stream, typed_key(event.entity_id))
            self._index_time(event)
            self._by_id[event.id] = event
            self._by_seq.append(event)
            entity = self._by_entity.setdefault(key, [])
            newest = not entity or entity[-1].version < event.version
            if newest:
                entity.append(event)  # the usual case: O(1)
            else:
                insort(entity, event, key=_version)
            self._entities.setdefault(event.stream, set()).add(key[1])
            self._index(event, key, newest=newest)
        if new:
            self._wake()
        return len(new)

    async def erase_payloads(
        self, stream: str, entity_id: Any, *, erased_by: int, restamp: int | None = None
    ) -> int:
        """Replace the entity's unerased COMMIT_SCHEME events before `erased_by` by erased copies
        (and those an unrecorded attempt stamped with `restamp`)."""
        key = (stream, typed_key(entity_id))
        entity = self._by_entity.get(key, [])
        erased = 0
        for i, event in enumerate(entity):
            if event.hash_scheme != COMMIT_SCHEME or event.seq >= erased_by:
                continue
            if event.salt is None and (restamp is None or event.erased_by != restamp):
                continue
            gone = msgspec.structs.replace(
                event, document=None, changes=None, before=None, salt=None, erased_by=erased_by
            )
            entity[i] = gone
            self._by_id[event.id] = gone
            self._by_seq[event.seq - 1] = gone  # seq is dense from 1
            erased += 1
        return erased

    def _index(self, event: Event, key: tuple[str, str], *, newest: bool) -> None:
        """List the (just stored) event in the secondary indexes and the stream's counts."""
        seq = event.seq
        stream = self._streams.get(event.stream)
        if stream is None:
            stream = self._streams[event.stream] = _StreamIndex()
        position = len(stream.seqs)
        stream.seqs.append(seq)
        # The stream's own record has a null `_id` (a document's `_id` "$stream" is an entity).
        is_entity = event.entity_id is not STREAM_ENTITY_ID
        if is_entity and event.version == 1:
            stream.entities += 1
        mark = is_entity and newest
        stream.newest.append(int(mark))
        if mark:
            previous = self._newest_position.get(key)
            if previous is not None:
                stream.newest.add(previous, -1)
            self._newest_position[key] = position
        self._entity_seqs.setdefault(key, []).append(seq)
        self._type_seqs.setdefault(event.type, []).append(seq)
        actor = actor_key(event.actor)
        if actor is not None:
            self._actor_seqs.setdefault(actor, []).append(seq)
        if event.type in WHOLE_DOCUMENT_TYPES:
            self._whole_seqs.append(seq)
        else:
            for prefix in field_prefixes(event.changed_fields):
                self._field_seqs.setdefault(prefix, []).append(seq)
            for path in set(event.changed_fields):
                self._exact_field_seqs.setdefault(path, []).append(seq)

    def _index_time(self, event: Event) -> None:
        """Keep time ranges answerable: switch to a sorted time list once time goes back."""
        if self._by_time is None:
            if not self._by_seq or self._by_seq[-1].occurred_at <= event.occurred_at:
                return
            self._by_time = sorted((e.occurred_at, e.seq) for e in self._by_seq)
        entry = (event.occurred_at, event.seq)
        if not self._by_time or self._by_time[-1] < entry:
            self._by_time.append(entry)
        else:
            insort(self._by_time, entry)

    def _wake(self) -> None:
        """Wake every `wait_for_append` (each re-checks the head), on its own loop."""
        with self._waiters_lock:
            waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            loop = waiter.get_loop()
            if not loop.is_closed():
                loop.call_soon_threadsafe(_release, waiter)

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

    async def events_by_id(self, ids: Sequence[str]) -> dict[str, Event]:
        """The stored events of these ids, as stored now (an erased one erased)."""
        return {i: self._by_id[i] for i in ids if i in self._by_id}

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
            if newest.entity_id is not STREAM_ENTITY_ID and newest.type in LIVE_TYPES:
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

    async def query(self, q: EventQuery, *, after_seq: int = 0, limit: int = 100) -> list[Event]:
        """The matches after `after_seq`, in seq order: the shortest index list, filtered.

        Costs O(log n) plus the events of the chosen list between `after_seq` and
        the last match returned (each counted in `examined`).
        """
        if q.entity_ids is not None and q.stream is None:
            raise ValueError("an audit query by entity needs the stream")
        if limit <= 0:
            return []
        since = None if q.since is None else ceil_ms(q.since)
        until = None if q.until is None else ceil_ms(q.until)
        entity_keys = (
            None if q.entity_ids is None else {typed_key(entity_id) for entity_id in q.entity_ids}
        )
        types = frozenset(q.types)
        actors = None if q.actor is None else actor_keys(q.actor)
        found: list[Event] = []
        candidates = self._candidates(q, entity_keys, actors, since, until, max(after_seq, 0))
        for examined, seq in enumerate(candidates, start=1):
            event = self._by_seq[seq - 1]
            self.examined += 1
            if examined % _QUERY_TURN == 0:
                # Criteria each matching much of the log but seldom together are walked
                # until a page is found: a turn for the loop now and then, as MongoDB's
                # own scan of an index yields (and a client gone cancels the walk).
                await asyncio.sleep(0)
            if _matches(event, q, entity_keys, actors, types, since, until):
                found.append(event)
                if len(found) == limit:
                    break
        return found

    def _candidates(
        self,
        q: EventQuery,
        entity_keys: set[str] | None,
        actors: frozenset[Hashable] | None,
        since: datetime | None,
        until: datetime | None,
        after_seq: int,
    ) -> Iterator[int]:
        """In seq order, each once, a superset of the matches after `after_seq`: the smallest known.

        Each option is a union of seq-sorted lists (one per type, per entity, per
        actor key; a field's lists may share events); the whole log is the option of
        last resort.
        """
        low, high = after_seq + 1, len(self._by_seq) + 1  # the seq window [low, high)
        by_time: list[tuple[datetime, int]] = []  # `_by_time`, when time went back
        time_range: tuple[int, int] | None = None
        if since is not None or until is not None:
            if self._by_time is None:  # time follows seq: the range is a seq window
                if since is not None:
                    low = max(low, bisect_left(self._by_seq, since, key=_occurred_at) + 1)
                if until is not None:
                    high = min(high, bisect_left(self._by_seq, until, key=_occurred_at) + 1)
            else:
                start = 0 if since is None else bisect_left(self._by_time, since, key=_time_key)
                end = len(self._by_time)
                if until is not None:
                    end = bisect_left(self._by_time, until, key=_time_key)
                by_time, time_range = self._by_time, (start, end)
        if low >= high:
            return iter(())
        options: list[list[Sequence[int]]] = [[range(1, len(self._by_seq) + 1)]]
        if q.stream is not None:
            stream = self._streams.get(q.stream)
            options.append([stream.seqs] if stream is not None else [])
        if entity_keys is not None:
            options.append(
                [self._entity_seqs.get((q.stream or "", key), []) for key in sorted(entity_keys)]
            )
        if q.types:
            options.append([self._type_seqs.get(t, []) for t in sorted(set(q.types))])
        if actors is not None:
            options.append([self._actor_seqs.get(key, []) for key in actors])
        if q.field is not None:
            # The path or beneath it, a path above it changed whole, a whole document.
            *above, path = path_and_ancestors(q.field)
            options.append(
                [
                    self._field_seqs.get(path, []),
                    *(self._exact_field_seqs.get(a, []) for a in above),
                    self._whole_seqs,
                ]
            )
        best = min(
            (
                [(seqs, bisect_left(seqs, low), bisect_left(seqs, high)) for seqs in option]
                for option in options
            ),
            key=_span_size,
        )
        if time_range is not None and time_range[1] - time_range[0] < _span_size(best):
            # Time went back somewhere: the time slice, sorted by seq, is the smaller list.
            seqs = sorted(seq for _, seq in by_time[time_range[0] : time_range[1]])
            best = [(seqs, bisect_left(seqs, low), bisect_left(seqs, high))]
        runs = [_run(seqs, start, end) for seqs, start, end in best if end > start]
        if len(runs) == 1:
            return runs[0]
        # A field's lists may share an event (changed `a` and `a.b`): each seq is read once.
        return _distinct(heapq.merge(*runs))

    async def streams(self) -> list[StreamStats]:
        """Each stream's counts and newest event, kept up to date by `append`."""
        stats: list[StreamStats] = []
        for name in sorted(self._streams):
            stream = self._streams[name]
            last = self._by_seq[stream.seqs[-1] - 1]
            stats.append(
                StreamStats(
                    stream=name,
                    entities=stream.entities,
                    events=len(stream.seqs),
                    last_seq=last.seq,
                    last_event_at=last.occurred_at,
                )
            )
        return stats

    async def entities(
        self, stream: str, *, limit: int, before_seq: int | None = None
    ) -> list[EntitySummary]:
        """The stream's entities by their newest event's seq, descending: O(limit log n)."""
        index = self._streams.get(stream)
        if index is None or limit <= 0:
            return []
        end = len(index.seqs) if before_seq is None else bisect_left(index.seqs, before_seq)
        count = index.newest.count(end)
        page: list[EntitySummary] = []
        for k in range(count, max(count - limit, 0), -1):
            seq = index.seqs[index.newest.select(k)]
            page.append(_summary(self._by_seq[seq - 1]))
        return page

    async def wait_for_append(self, after_seq: int, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait for `append` to store an event past `after_seq` (woken by it, no polling)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        while len(self._by_seq) <= after_seq:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            waiter: asyncio.Future[None] = loop.create_future()
            with self._waiters_lock:
                self._waiters.add(waiter)
            try:
                # Checked again once registered: an append in between has woken nobody.
                if len(self._by_seq) > after_seq:
                    return True
                await asyncio.wait({waiter}, timeout=remaining)
            finally:
                with self._waiters_lock:
                    self._waiters.discard(waiter)
                waiter.cancel()
        return True


def _release(waiter: asyncio.Future[None]) -> None:
    """Let a `wait_for_append` re-check (run on the waiter's own loop)."""
    if not waiter.done():
        waiter.set_result(None)


def _span_size(option: list[tuple[Sequence[int], int, int]]) -> int:
    """How many seqs an option holds inside the window."""
    return sum(end - start for _, start, end in option)


def _run(seqs: Sequence[int], start: int, end: int) -> Iterator[int]:
    """`seqs[start:end]` without copying it."""
    for i in range(start, end):
        yield seqs[i]


# Candidates an audit query examines between two turns of the loop.
_QUERY_TURN: Final = 4096


def _distinct(seqs: Iterator[int]) -> Iterator[int]:
    """An ascending run of seqs without its repeats."""
    last = 0  # seq starts at 1
    for seq in seqs:
        if seq != last:
            yield seq
            last = seq


def _matches(
    event: Event,
    q: EventQuery,
    entity_keys: set[str] | None,
    actors: frozenset[Hashable] | None,
    types: frozenset[str],
    since: datetime | None,
    until: datetime | None,
) -> bool:
    """Every criterion of the query holds for the event."""
    if q.stream is not None and event.stream != q.stream:
        return False
    if entity_keys is not None and typed_key(event.entity_id) not in entity_keys:
        return False
    if types and event.type not in types:
        return False
    if actors is not None and actor_key(event.actor) not in actors:
        return False
    if since is not None and event.occurred_at < since:
        return False
    if until is not None and event.occurred_at >= until:
        return False
    return q.field is None or changed_field(event.type, event.changed_fields, q.field)
