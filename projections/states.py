"""Entity states for the projection runners: the state just before and after each event.

`StateCache` is one runner's: entity states by entity, least recently used dropped
first (a rebuild keeps a large one of its own). `SharedStates` is shared by the
runners of one process and keyed by (entity, version): the state after version v
of an entity is a pure function of the log, the same for every runner, so the
first runner to reach an event folds it and the others find it. (Each runner used
to fold every event into a cache of its own: the four order read models folded
each state four times and held four copies.) Keyed by version, runners at
different positions never overwrite each other's states: a runner one batch
behind still finds version v-1 after another has stored v.

A state is shared, never copied: the fold is copy-on-write, so the state after an
event shares its untouched sub-objects with the state before it, and both stay
valid. Projections read states and must never edit them. A state not found is
read from history.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import MutableMapping, Sequence
from typing import Any, Final, Protocol

from bson import ObjectId

from eventstore.fold import apply_event
from eventstore.history import History
from eventstore.keys import typed_key
from eventstore.model import ERASED, STREAM_TYPES, Event
from projections.api import Change

_MISSING: Final[Any] = object()
EntityKey = tuple[str, Any, str]
StateKey = tuple[EntityKey, int]


def state_key(event: Event) -> EntityKey:
    """The cache key of an event's entity: unique per BSON `_id` value, as `typed_key` is.

    ObjectId and str ids (nearly all of them) are keyed by the event's entity key
    (the 24 hex digits, the string itself) and their type, which `typed_key` would
    spell as a prefix; other ids by their typed key.
    """
    cls = event.entity_id.__class__
    if cls is ObjectId or cls is str:
        return (event.stream, cls, event.entity_key)
    return (event.stream, None, typed_key(event.entity_id))


async def state_before(history: History, event: Event) -> dict[str, Any] | None:
    """The entity's document just before `event`, read from history (None: none then)."""
    state = await history.state_of(event.stream, event.entity_id, version=event.version - 1)
    return state.document


class _Folds:
    """What both caches give: an event's change, without I/O when they can."""

    _history: History
    # States read from history because the cache did not hold them (misses), since made.
    _reads = 0

    @property
    def state_reads(self) -> int:
        """How many entity states were read from history: the cache did not hold them."""
        return self._reads

    async def _read_before(self, event: Event) -> dict[str, Any] | None:
        """The state just before `event`, read from history (a miss, counted)."""
        self._reads += 1
        return await state_before(self._history, event)

    def fold(self, event: Event) -> Change | None:
        """The change of an entity event, when the state before it is known without I/O."""
        raise NotImplementedError

    async def change(self, event: Event) -> Change:
        """The event with the entity's state just before and just after it."""
        raise NotImplementedError

    async def changes(self, events: Sequence[Event]) -> list[Change]:
        """Each entity event with the entity's states just before and just after it.

        Stream events (gap, dropped, renamed) change no entity and are left out.
        """
        fold = self.fold
        out: list[Change] = []
        for event in events:
            if event.type not in STREAM_TYPES:
                out.append(fold(event) or await self.change(event))
        return out


class StateCache(_Folds):
    """Entity states by entity, least recently used dropped first.

    A state is shared, never copied: the fold is copy-on-write, so the state
    after an event shares its untouched sub-objects with the state before it,
    and both stay valid. Projections read states and must never edit them.
    """

    def __init__(self, history: History, *, size: int = 10_000) -> None:
        self._history = history
        self._size = size
        # key -> [version, state after that version] (one list per entity, updated in place)
        self._states: OrderedDict[tuple[str, Any, str], list[Any]] = OrderedDict()

    def fold(self, event: Event) -> Change | None:
        """The change of an entity event, when the state before it is known without I/O.

        None when it is not (the state must be read from history: `change`).
        """
        key = state_key(event)
        version = event.version
        entry = self._states.get(key)
        before: dict[str, Any] | None
        if entry is not None and entry[0] == version - 1:
            before = entry[1]
        elif version == 1:
            before = None
        else:
            return None
        if entry is None:
            return self._fold(key, entry, before, event)
        # `_fold` inlined for the usual case (the entity's state is cached)
        after = apply_event(before, event)
        entry[0], entry[1] = version, after
        self._states.move_to_end(key)
        return Change(event=event, before=before, after=after)

    async def change(self, event: Event) -> Change:
        """The event with the entity's state just before and just after it."""
        folded = self.fold(event)
        if folded is not None:
            return folded
        key = state_key(event)
        before = await self._read_before(event)
        return self._fold(key, self._states.get(key), before, event)

    def _fold(
        self,
        key: tuple[str, Any, str],
        entry: list[Any] | None,
        before: dict[str, Any] | None,
        event: Event,
    ) -> Change:
        # What Fold(before).apply(event) gives, without the findings nobody reads here.
        after = apply_event(before, event)
        if entry is None:
            states = self._states
            states[key] = [event.version, after]
            if len(states) > self._size:
                states.popitem(last=False)
        else:
            entry[0], entry[1] = event.version, after
            self._states.move_to_end(key)
        return Change(event=event, before=before, after=after)

    def clear(self) -> None:
        """Forget every state (a rebuild starts from nothing)."""
        self._states.clear()

    def load(self, states: dict[EntityKey, list[Any]]) -> None:
        """Keep these states (entity -> [version, state after it], the list itself) as the
        most recently used, in their order; past `size`, the least recently used go."""
        kept = self._states
        for key, entry in states.items():
            kept[key] = entry
            kept.move_to_end(key)
        while len(kept) > self._size:
            kept.popitem(last=False)

    def forget(self, stream: str, entity_key: str) -> None:
        """Forget an erased entity's states (see `forget_erased`)."""
        forget_entity(self._states, stream, entity_key)


def forget_entity(states: MutableMapping[EntityKey, Any], stream: str, entity_key: str) -> None:
    """Drop every state of this stream's entity from `states` (keyed by `state_key`)."""
    for key in [k for k in states if _names(k, stream, entity_key)]:
        del states[key]


def _names(entity: EntityKey, stream: str, entity_key: str) -> bool:
    """True when a state key is of this stream and bare entity key (any id type: to be safe)."""
    if entity[0] != stream:
        return False
    key = entity[2]
    return key == entity_key or (entity[1] is None and key.partition(":")[2] == entity_key)


class Forgets(Protocol):
    """What keeps entity states and can forget an erased entity's (a cache, a rebuild's replay)."""

    def forget(self, stream: str, entity_key: str) -> None:
        """Forget the states of this entity."""


def forget_erased(cache: Forgets, events: Sequence[Event]) -> None:
    """Forget the states of every entity these events say was erased.

    For a per-entity read model (`Projection.per_entity`): a state folded before an
    erasure still holds the erased data, and folded onto by a later change of the same
    document it would bring that data back into the entity's row. Forgotten, the state
    comes from history, where it is erased, as a rebuild folds it. (Aggregate models
    keep their sums, as the README says, and go on from the states they had.)
    """
    for event in events:
        if event.type == ERASED and isinstance(event.document, dict):
            erased = event.document.get("entity_key")
            if isinstance(erased, str):
                cache.forget(event.stream, erased)


class SharedStates:
    """States by (entity, version), shared by several runners; the oldest stored go first."""

    def __init__(self, *, entities: int = 10_000) -> None:
        # Two versions per entity in use at once (the one before an event and the one after).
        self.size = max(2 * entities, 2)
        self._states: OrderedDict[StateKey, dict[str, Any] | None] = OrderedDict()
        # Folds done, and states found already folded by another runner (for tests, metrics).
        self.folded = 0
        self.found = 0

    def get(self, key: StateKey) -> Any:
        """The state stored under `key`, or `_MISSING`."""
        return self._states.get(key, _MISSING)

    def put(self, key: StateKey, state: dict[str, Any] | None) -> None:
        """Store a state (None: the entity is deleted at that version)."""
        states = self._states
        states[key] = state
        if len(states) > self.size:
            states.popitem(last=False)

    def view(self, history: History) -> SharedStateCache:
        """A runner's cache over these states, reading misses from `history`."""
        return SharedStateCache(self, history)

    def clear(self) -> None:
        """Forget every state."""
        self._states.clear()


class SharedStateCache(_Folds):
    """One runner's view of `SharedStates`, with `StateCache`'s interface.

    An entity this runner forgot (erased: `forget`) is folded apart from then on, in a
    small cache of the view's own, from its erased history; the shared states, which
    other runners may still fold on from, are left as they are.
    """

    def __init__(self, shared: SharedStates, history: History) -> None:
        self.shared = shared
        self._history = history
        self._apart: set[tuple[str, str]] = set()  # (stream, bare entity key)
        self._own = StateCache(history, size=1_000)

    def fold(self, event: Event) -> Change | None:
        """The change of an entity event, when the state before it is known without I/O."""
        if self._apart and (event.stream, event.entity_key) in self._apart:
            return self._own.fold(event)
        entity = state_key(event)
        version = event.version
        shared = self.shared
        if version == 1:
            before = None
        else:
            before = shared.get((entity, version - 1))
            if before is _MISSING:
                return None
        return self._after(entity, before, event)

    async def change(self, event: Event) -> Change:
        """The event with the entity's state just before and just after it."""
        if self._apart and (event.stream, event.entity_key) in self._apart:
            return await self._own.change(event)
        folded = self.fold(event)
        if folded is not None:
            return folded
        entity = state_key(event)
        before = await self._read_before(event)
        self.shared.put((entity, event.version - 1), before)
        return self._after(entity, before, event)

    @property
    def state_reads(self) -> int:
        """How many entity states this view read from history (its erased entities' too)."""
        return self._reads + self._own.state_reads

    def clear(self) -> None:
        """Forget this view's own states (the shared ones never go stale)."""
        self._own.clear()

    def forget(self, stream: str, entity_key: str) -> None:
        """This runner folds an erased entity apart from now on, from its erased history."""
        self._apart.add((stream, entity_key))
        self._own.forget(stream, entity_key)

    def _after(self, entity: tuple[str, Any, str], before: Any, event: Event) -> Change:
        shared = self.shared
        key = (entity, event.version)
        after = shared.get(key)
        if after is _MISSING:
            after = apply_event(before, event)
            shared.put(key, after)
            shared.folded += 1
        else:
            shared.found += 1
        return Change(event=event, before=before, after=after)


__all__ = [
    "Forgets",
    "SharedStateCache",
    "SharedStates",
    "StateCache",
    "forget_entity",
    "forget_erased",
    "state_key",
]
