"""A rebuild's pass over the log: fold each event, apply the projection, rows in memory.

`Replay` is the loop of a one-worker rebuild while every row of the fresh
collection is in memory, and of each partition of a partitioned rebuild: events in
seq order are folded onto their entity's state and the projection applied to the
rows they touch, all kept here. It is written as one loop (no call per event
beyond the fold and the projection's own functions): a rebuild is this loop, and a
call per event for each of the state cache, the holding and the applying made
its own work as long as a third of the fold's (`bench_rebuild_workers`).

States: each entity's (version, state after it), up to `states` entities (the
oldest stored go first, a quarter at a time). An event whose state before is not
kept (version v with no state at v - 1) stops the loop: `run` returns its index,
the caller reads that state (from history) and gives it to `seed`, and runs on.

Skipping (`Projection.skippable`): a projection whose rows mirror each entity's
latest state (order_summary) writes a row per event, and all but the entity's last
are overwritten within the same rebuild. When `skippable(change)` is true, the
projection promises two things: the row written for that change does not depend on
`change.before`, and it is wholly rewritten by the entity's next change, whatever it
is: `apply(apply(row, change), next) == apply(row, next)`. The loop then holds such
a change instead of applying it, drops it when the entity's next change comes, and
applies the ones still held when told to (`release`): one apply per entity instead
of one per event, the same rows.

A run of held changes of one row is held as one change: the last one's event and
`after`, and as `before` the state before the run's first change. So the states in
between are released as the fold goes on (holding each change's own `before` kept
one more state per entity alive, and cost a rebuild 10-20% of its time).

Invariants that make the rows equal to applying every change:
- a change is held only when it touches exactly one row and that row exists (the
  promise is about an existing row: an entity's first change always applies);
- the entity's next change touching the held one's row replaces it (held, or
  applied onto the row as it was before the held one, which the promise makes
  equal); any other change touching that row (another entity's, where entities
  share rows) finds the held one applied first, as the promise does not cover it;
- everything held is applied, in seq order, before anything that is not an entity
  change of the projection's own rows is processed: a stream event (the loop
  releases), the end of the log and a rebuild that starts reading rows back from
  the store (the caller releases).

Following the log never skips: each batch's rows are written with its checkpoint.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from itertools import islice
from time import perf_counter
from typing import Any

from eventstore.fold import apply_event
from eventstore.model import STREAM_TYPES, Event
from eventstore.row_problems import held_problems
from projections.api import Change, Projection
from projections.idempotent import check_named, checked_keys, checked_skippable, guarded
from projections.states import EntityKey, forget_entity, state_key

Row = dict[str, Any] | None


def _seq_of(item: tuple[str, Change]) -> int:
    return item[1].event.seq


class Replay:
    """One projection replayed over events in seq order, its rows and its states in memory."""

    def __init__(self, projection: Projection, *, states: int | None = None) -> None:
        self.keys = checked_keys(projection)
        self.apply = guarded(projection)
        self.skippable = checked_skippable(projection)
        # Entity states kept: each entity's [version, state after it], oldest stored first.
        self.states: dict[EntityKey, list[Any]] = {}
        self.bound = states if states is not None else sys.maxsize
        # The rows as applied (None: deleted), and the keys written since `changed` was cleared.
        self.rows: dict[str, Row] = {}
        self.changed: set[str] = set()
        # Each held row's last skippable change (a run of them as one change).
        self.held: dict[str, Change] = {}
        # The change in the problems the rows hold, from the rows written (`held`).
        self.problems = 0
        # The seq of the change whose keys, skippable or apply raised (what `run` re-raised).
        self.failed_seq: int | None = None
        # Whether the last `run` stopped at its `until`, not at an unknown state.
        self.paused = False

    def run(self, events: Sequence[Event], start: int = 0, *, until: float | None = None) -> int:
        """Fold and apply `events[start:]` in order; the index of the first whose state is unknown.

        Returns len(events) when every event was applied (or held). An event whose
        entity's state before it is not kept stops the loop: `seed` it and run on
        from that index. With `until` (a `time.perf_counter()` value), the loop also
        stops once that time has passed, at an event whose state may be known: then
        `paused` is True, and nothing is to be seeded (run on from that index). An
        exception of the projection's keys, skippable or apply is re-raised with
        `failed_seq` set to the change's seq; one of the fold, as is.
        """
        self.paused = False
        states, rows, held, changed = self.states, self.rows, self.held, self.changed
        get = rows.get
        keys_of, apply, skippable, bound = self.keys, self.apply, self.skippable, self.bound
        change: Change | None = None
        e: Event | None = None
        try:
            for i, e in enumerate(islice(events, start, None), start):
                # Every 8th event: the clock costs nothing beside a fold, and a slow
                # projection (a plugin's apply of 20 ms) holds the loop 8 events at most.
                if until is not None and not i & 7 and i > start and perf_counter() >= until:
                    self.paused = True
                    return i
                if e.type in STREAM_TYPES:
                    if held:
                        self.release()
                    continue
                version = e.version
                who = state_key(e)
                entry = states.get(who)
                if version == 1:
                    before = None
                elif entry is not None and entry[0] == version - 1:
                    before = entry[1]
                else:
                    return i
                after = apply_event(before, e)
                if entry is None:
                    states[who] = [version, after]
                    if len(states) > bound:
                        self._evict()
                else:
                    entry[0], entry[1] = version, after
                change = Change(event=e, before=before, after=after)
                touched = keys_of(change)
                if len(touched) == 1:
                    key = touched[0]
                    prior = held.get(key) if held else None
                    if prior is not None and (before is None or prior.after is not before):
                        # Another entity's change of the row (or not the next of its own):
                        # the promise is about the entity's next change, so it goes first.
                        del held[key]
                        self._apply_held(key, prior)
                        prior = None
                    if skippable is not None and get(key) is not None and skippable(change):
                        held[key] = (
                            change
                            if prior is None
                            else Change(event=e, before=prior.before, after=after)
                        )
                        continue
                    if prior is not None:  # the entity's next change rewrites the held one's
                        del held[key]
                elif held:
                    for key in touched:
                        prior = held.pop(key, None)
                        if prior is not None and (before is None or prior.after is not before):
                            self._apply_held(key, prior)
                for w in apply(view_of(get, touched), change):
                    key, row = w.key, w.row
                    if skippable is not None:
                        check_named(key, touched)
                    old = get(key)
                    rows[key] = row
                    changed.add(key)
                    if (row is not None and row.get("problems")) or (
                        old is not None and old.get("problems")
                    ):
                        self.problems += held_problems(row) - held_problems(old)
        except Exception:
            # The projection's (a held change's has its own seq already), not the fold's.
            if self.failed_seq is None and change is not None and change.event is e:
                self.failed_seq = e.seq
            raise
        return len(events)

    def seed(self, event: Event, before: Row) -> None:
        """The state of `event`'s entity just before it (read elsewhere: `run` stopped there)."""
        self.states[state_key(event)] = [event.version - 1, before]

    def release(self) -> None:
        """Apply every held change, in seq order; nothing is held after."""
        held = sorted(self.held.items(), key=_seq_of)
        self.held.clear()
        for key, change in held:
            self._apply_held(key, change)

    def _apply_held(self, key: str, change: Change) -> None:
        """Apply a held change to its row now (no longer held)."""
        rows, changed = self.rows, self.changed
        try:
            writes = self.apply(view_of(rows.get, [key]), change)
            for w in writes:
                check_named(w.key, [key])
        except Exception:
            self.failed_seq = change.event.seq
            raise
        for w in writes:
            self.problems += held_problems(w.row) - held_problems(rows.get(w.key))
            rows[w.key] = w.row
            changed.add(w.key)

    def forget(self, stream: str, entity_key: str) -> None:
        """Forget an erased entity's state (`projections.states.forget_erased`)."""
        forget_entity(self.states, stream, entity_key)

    def _evict(self) -> None:
        """Drop the oldest stored quarter of the states (one pass, not one per new entity)."""
        states = self.states
        for who in list(islice(states, max(len(states) - self.bound + self.bound // 4, 1))):
            del states[who]


def view_of(
    get: Callable[[str], dict[str, Any] | None], touched: list[str]
) -> dict[str, dict[str, Any]]:
    """The rows an apply may see: those of its keys that exist (`get` reads one by key)."""
    if len(touched) == 1:  # the usual case, without a comprehension
        key = touched[0]
        row = get(key)
        return {key: row} if row is not None else {}
    return {k: r for k in touched if (r := get(k)) is not None}


__all__ = ["Replay", "view_of"]
