"""The public projection API: `Projection`, `Change`, `Write` (import them from `projections`).

A projection names the rows each change touches (`keys`) and computes their new
values (`apply`, pure: no I/O, rows read-only). The runner reads the rows, calls
`apply`, writes what it returns and keeps each row's last applied seq in `_seq`,
so a change is never applied twice to a row (see `projections.idempotent`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import msgspec

from eventstore.model import Event

# The row field where the runner keeps the last seq applied to a row (plugins never set it).
SEQ_FIELD: Final = "_seq"


class Change(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An entity event and the entity's state just before and just after it.

    `before` is None for an entity's first event, `after` None once it is deleted.
    Both states are shared with the runner's cache and with each other (the fold
    is copy-on-write): read them, never edit them. (`gc=False`: a change is never
    part of a reference cycle, so the garbage collector need not track one per event.)
    """

    event: Event
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class Write(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Upsert `row` under `key` (None deletes the row). Never part of a reference cycle."""

    key: str
    row: dict[str, Any] | None


Rows = Mapping[str, dict[str, Any]]
Keys = Callable[[Change], list[str]]
Apply = Callable[[Rows, Change], list[Write]]
Merge = Callable[[str, dict[str, Any], dict[str, Any]], dict[str, Any]]
Skippable = Callable[[Change], bool]
# A row rewritten once the data an erased entity gave is taken out of it (None deletes it).
Rewrite = Callable[[dict[str, Any]], dict[str, Any] | None]
# (stream, entity_key) -> the equality filter of the rows holding that entity's data (or a
# list of them: a row matching any), and how each becomes; None when no row does.
Forget = Callable[
    [str, str], tuple[Mapping[str, Any] | Sequence[Mapping[str, Any]], Rewrite] | None
]


class Projection(msgspec.Struct, frozen=True, kw_only=True):
    """A read model: its name, its collection, which rows a change touches, and apply.

    `keys(change)` names the rows a change touches; `apply(rows, change)` gets
    those of them that exist (read-only) and returns the writes; `merge(key, a, b)`
    (optional) combines two partial rows of one key, computed from disjoint sets
    of entities (a partitioned rebuild). `skippable(change)` (optional) promises
    that the row written for this change does not depend on `change.before` and is
    wholly rewritten by the entity's next change, whatever it is
    (`apply(apply(row, change), next) == apply(row, next)` for an existing row): a
    rebuild then applies such a change only when it is the entity's last, with the
    state before the run of such changes as `before` (`projections.replay`). `tracks_seq` is for the built-in order
    projections only, which keep their own `seq` field: the runner then leaves
    idempotency to them. `config` (optional): what the rows depend on beyond the
    log, as text (the order models' field mapping); when it differs from the one a
    projection's rows were built with, its status says `rebuild needed`.
    """

    name: str
    collection: str
    keys: Keys
    apply: Apply
    merge: Merge | None = None
    skippable: Skippable | None = None
    tracks_seq: bool = False
    config: str = ""
    # The stream whose entities the rows are, one row each keyed by its typed key (None: rows
    # of any other shape): an erasure of one of that stream's entities deletes its row, and
    # never the row of another stream's entity that has the same typed key.
    per_entity: str | None = None
    # Rows of several entities that keep something an entity's payload gave (a customer's
    # name from an order): when that entity is erased, the runner following the log finds
    # them (`forget(stream, entity_key)`: filter, rewrite) and rewrites them, in log order.
    forget: Forget | None = None
    # True: `forget` is given the erased entity's typed key (`int:5`), which names it alone,
    # instead of its entity key (`5`, which the string "5" shares).
    forget_typed: bool = False
    # Row fields the rows are looked up by (`forget`'s filter; the API's filters on the
    # built-in models): on MongoDB each gets an index on (field, `_id`), made when the runner
    # starts and on a rebuild's fresh collection, so such a look-up is a walk of its matches,
    # not of every row.
    indexes: tuple[str, ...] = ()


__all__ = [
    "SEQ_FIELD",
    "Change",
    "Forget",
    "Keys",
    "Merge",
    "Projection",
    "Rewrite",
    "Rows",
    "Skippable",
    "Write",
]
