"""Folding an entity's events into its document (pure: no I/O, never awaits).

An `updated` event keeps `changes` as MongoDB reported them (CHANGE_EVENTS.md);
`apply_update` replays them with the server's semantics:

Order: `truncatedArrays`, then `updatedFields`, then `removedFields`.
- A truncation's `newSize` is the array's final length, and the element paths
  reported with it in the same event (`items.1.note`) index kept elements of
  that final array, so cutting first and then setting gives the post-image.
  Every `updatedFields` value is a resulting value: applying it after the cut
  means a reported value is never shortened by a truncation.
- Removals come last: a removed path is absent afterwards even if an enclosing
  value was set in the same event (MongoDB never reports both; the order only
  makes such input deterministic).

Paths:
- When `disambiguatedPaths` has the path, its components are used exactly:
  strings are field names (even "1" or "a.b"), ints are array indices.
- Otherwise the path is split on "."; a numeric component indexes an array when
  the container at that point is a list and names a field when it is a
  sub-document.
- `$set` semantics: missing sub-documents along the path are created as
  documents (a numeric component included: `a.1` on `{}` gives
  `{"a": {"1": v}}`); an index equal to the length appends; an index beyond it
  pads with None. Reported values replace whole (an array, a sub-document).
- `$unset` semantics: removing a missing path is a no-op; removing an array
  element leaves None in its place (MongoDB keeps positions).
- A path that cannot be applied to the state (a scalar or null in the way, a
  field name into an array, a truncation of something that is not an array) is
  skipped and reported, never guessed: the state diverged from the server's.

Copy-on-write: an apply copies only the containers along the paths it changes
(each at most once per apply) and never edits an object it did not create, so a
new state shares its untouched sub-objects with the previous one and older states
stay valid. Values taken from an event are copied, so a state never aliases the
stored event. States are read-only to callers: deep-copy one before editing it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import msgspec

from eventstore.diff import diff, same_value
from eventstore.model import CREATED, DELETED, REPLACED, SNAPSHOT, STREAM_TYPES, UPDATED, Event

# Finding kinds (stable strings, shown to people and stored in reports).
PRE_IMAGE_MISMATCH: Final = "pre_image_mismatch"
UPDATE_WITHOUT_STATE: Final = "update_without_state"
PATH_CONFLICT: Final = "path_conflict"
UNEXPECTED_VERSION: Final = "unexpected_version"
UNKNOWN_TYPE: Final = "unknown_type"

# MongoDB refuses to pad an array by more than this many nulls in one $set.
_MAX_PAD: Final = 1_500_000
# How many differing paths a pre-image finding names.
_MAX_PATHS: Final = 10

Part = str | int


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """Something the fold noticed at an entity version; the fold goes on."""

    version: int
    kind: str
    detail: str


class FoldResult(msgspec.Struct, frozen=True, kw_only=True):
    """The state after the last event folded (None: no document), its version, the findings."""

    state: dict[str, Any] | None
    version: int
    findings: list[Finding]


class _Missing:
    pass


_MISSING: Final = _Missing()
_CONTAINERS: Final = (dict, list)
_NO_PATHS: Final[Mapping[str, Sequence[Part]]] = {}


def _clone(value: Any) -> Any:
    """A copy of the containers in `value` (scalars are immutable and shared)."""
    if isinstance(value, dict):
        return {k: _clone(v) if isinstance(v, _CONTAINERS) else v for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) if isinstance(v, _CONTAINERS) else v for v in value]
    return value


def _resolve(container: Any, part: Part, exact: bool) -> str | int | None:
    """The key `part` names in `container`, or None when it names nothing there."""
    if isinstance(container, dict):
        return part if isinstance(part, str) else None
    if isinstance(container, list):
        if isinstance(part, int):
            return part if part >= 0 else None
        if not exact and part.isascii() and part.isdigit():
            return int(part)
    return None


def _get(container: Any, key: str | int) -> Any:
    if isinstance(container, dict):
        return container.get(key, _MISSING)
    assert isinstance(key, int)
    return container[key] if key < len(container) else _MISSING


def _put(container: Any, key: str | int, value: Any) -> bool:
    """Set `container[key]`; False (nothing done) past MongoDB's padding limit."""
    if isinstance(container, dict):
        container[key] = value
        return True
    assert isinstance(key, int)
    if key >= len(container):
        if key - len(container) > _MAX_PAD:
            return False
        # $set past the end pads the gap with nulls
        container.extend([None] * (key - len(container) + 1))
    container[key] = value
    return True


def is_component_list(path: str, parts: Any) -> bool:
    """True when `parts` is what `disambiguatedPaths` gives for `path`: its components in
    order, field names as strings and array indexes as non-negative integers, which
    joined with "." spell `path`."""
    if not isinstance(parts, list | tuple) or not parts:
        return False
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, str | int):
            return False
        if isinstance(part, int) and part < 0:
            return False
    return ".".join(str(part) for part in parts) == path


def _checked(
    disambiguated: Mapping[str, Any], conflicts: list[str]
) -> tuple[Mapping[str, Sequence[Part]], frozenset[str]]:
    """The entries that are component lists, and the paths whose entry is not: those are
    not applied (a conflict says so) rather than walked some other way."""
    bad = [p for p, parts in disambiguated.items() if not is_component_list(p, parts)]
    if not bad:
        return disambiguated, frozenset()
    conflicts.extend(
        f"disambiguatedPaths {p!r}: not the components of the path; not applied" for p in bad
    )
    kept = {p: parts for p, parts in disambiguated.items() if p not in bad}
    return kept, frozenset(bad)


def _parts(path: str, disambiguated: Mapping[str, Sequence[Part]]) -> tuple[Sequence[Part], bool]:
    """The components of `path` and whether they are exact (from `disambiguatedPaths`)."""
    given = disambiguated.get(path)
    if given is not None:
        return given, True
    return path.split("."), False


# A path component as `set` walks it: (the component as given, the field name it names in a
# sub-document or None, the array index it names in an array or None).
Step = tuple[Part, str | None, int | None]
# Plans of paths split on ".", by path: the same few paths recur in every event of a stream.
_PLANS: dict[str, tuple[Step, ...]] = {}
_MAX_PLANS: Final = 4096


def _plan(path: str, disambiguated: Mapping[str, Sequence[Part]]) -> tuple[Step, ...]:
    """How `set` walks `path`: `disambiguatedPaths` components exactly, else split on "."."""
    given = disambiguated.get(path)
    if given is not None:
        # exact: a string only names a field, an int only indexes an array
        return tuple(
            (p, p, None) if isinstance(p, str) else (p, None, p if p >= 0 else None) for p in given
        )
    plan = _PLANS.get(path)
    if plan is None:
        # a numeric component indexes an array, and names a field of a sub-document
        plan = tuple(
            (p, p, int(p) if p.isascii() and p.isdigit() else None) for p in path.split(".")
        )
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[path] = plan
    return plan


class _Writer:
    """Copy-on-write edits of one document (`doc`: a copy this apply owns)."""

    __slots__ = ("conflicts", "doc", "owned")

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        # Containers created by this apply, edited in place from then on. Keyed by
        # id and kept alive here, so an id cannot be reused during the apply.
        self.owned: dict[int, Any] = {id(doc): doc}
        self.conflicts: list[str] = []

    def _own(self, parent: Any, key: str | int) -> Any:
        """`parent[key]` (a container), copied into `parent` unless this apply made it."""
        child = parent[key]
        if id(child) in self.owned:
            return child
        copy: Any = dict(child) if isinstance(child, dict) else list(child)
        self.owned[id(copy)] = copy
        parent[key] = copy
        return copy

    def _find(self, parts: Sequence[Part], exact: bool) -> tuple[list[str | int], Any] | None:
        """The keys of an existing path and its value, read-only; None when it does not exist."""
        node: Any = self.doc
        keys: list[str | int] = []
        for part in parts:
            key = _resolve(node, part, exact)
            if key is None:
                return None
            node = _get(node, key)
            if node is _MISSING:
                return None
            keys.append(key)
        return (keys, node) if keys else None

    def _parent(self, keys: list[str | int]) -> Any:
        """The owned container holding the last key, copying along the path."""
        node: Any = self.doc
        for key in keys[:-1]:
            node = self._own(node, key)
        return node

    def truncate(self, path: str, parts: Sequence[Part], exact: bool, new_size: int) -> None:
        found = self._find(parts, exact)
        if found is None:
            self.conflicts.append(f"truncatedArrays {path!r}: no such array")
            return
        keys, target = found
        if not isinstance(target, list):
            self.conflicts.append(f"truncatedArrays {path!r}: {_kind(target)}, not an array")
            return
        if len(target) > new_size:
            cut = target[:new_size]
            self.owned[id(cut)] = cut
            self._parent(keys)[keys[-1]] = cut

    def set(self, path: str, plan: tuple[Step, ...], value: Any) -> None:
        if not plan:
            self.conflicts.append(f"updatedFields {path!r}: empty path")
            return
        node: Any = self.doc
        owned = self.owned
        key: str | int
        last = len(plan) - 1
        for i in range(last):
            part, name, index = plan[i]
            # `node` is this apply's copy: a dict or a list
            if isinstance(node, dict):
                if name is None:
                    self.conflicts.append(f"updatedFields {path!r}: no {part!r} in {_kind(node)}")
                    return
                key = name
                child = node.get(name, _MISSING)
            else:
                if index is None:
                    self.conflicts.append(f"updatedFields {path!r}: no {part!r} in {_kind(node)}")
                    return
                key = index
                child = node[index] if index < len(node) else _MISSING
            if child is _MISSING:
                # MongoDB creates the missing sub-documents, whatever the components look like
                rest = plan[i + 1 :]
                if any(isinstance(p, int) for p, _, _ in rest):
                    self.conflicts.append(f"updatedFields {path!r}: array index into nothing")
                    return
                new = _clone(value)
                for p, _, _ in reversed(rest):
                    new = {p: new}
                if not _put(node, key, new):
                    self.conflicts.append(f"updatedFields {path!r}: index {key} too far")
                return
            if not isinstance(child, _CONTAINERS):
                self.conflicts.append(f"updatedFields {path!r}: {_kind(child)} at {part!r}")
                return
            if id(child) not in owned:  # copy-on-write: the first edit below it copies it
                child = dict(child) if isinstance(child, dict) else list(child)
                owned[id(child)] = child
                node[key] = child
            node = child
        part, name, index = plan[last]
        if isinstance(value, _CONTAINERS):
            value = _clone(value)
        if isinstance(node, dict):
            if name is None:
                self.conflicts.append(f"updatedFields {path!r}: no {part!r} in {_kind(node)}")
            else:
                node[name] = value
        elif index is None:
            self.conflicts.append(f"updatedFields {path!r}: no {part!r} in {_kind(node)}")
        elif not _put(node, index, value):
            self.conflicts.append(f"updatedFields {path!r}: index {index} too far")

    def remove(self, parts: Sequence[Part], exact: bool) -> None:
        # $unset never fails: a path that is not there (or runs through a scalar) is a no-op
        found = self._find(parts, exact)
        if found is None:
            return
        keys = found[0]
        parent = self._parent(keys)
        if isinstance(parent, dict):
            del parent[keys[-1]]
        else:
            parent[keys[-1]] = None


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a sub-document"
    if isinstance(value, list):
        return "an array"
    return "null" if value is None else f"a scalar ({type(value).__name__})"


def apply_update(
    doc: Mapping[str, Any], changes: Mapping[str, Any], *, conflicts: list[str] | None = None
) -> dict[str, Any]:
    """A copy of `doc` with an `updated` event's `changes` applied (see the module notes).

    Paths that cannot be applied are skipped and, when `conflicts` is given,
    described there.
    """
    new = dict(doc)
    writer = _Writer(new)
    disambiguated: Mapping[str, Sequence[Part]] = changes.get("disambiguatedPaths") or _NO_PATHS
    skipped: frozenset[str] = frozenset()
    if disambiguated:
        disambiguated, skipped = _checked(disambiguated, writer.conflicts)
    for t in changes.get("truncatedArrays") or ():
        path = t["field"]
        if path in skipped:
            continue
        parts, exact = _parts(path, disambiguated)
        writer.truncate(path, parts, exact, max(int(t["newSize"]), 0))
    for path, value in (changes.get("updatedFields") or _NO_PATHS).items():
        if path in skipped:
            continue
        if "." in path or path in disambiguated:
            writer.set(path, _plan(path, disambiguated), value)
        else:  # a top-level field (the usual case): what `set` does with one component
            new[path] = _clone(value) if isinstance(value, _CONTAINERS) else value
    for path in changes.get("removedFields") or ():
        if path in skipped:
            continue
        parts, exact = _parts(path, disambiguated)
        writer.remove(parts, exact)
    if conflicts is not None:
        conflicts.extend(writer.conflicts)
    return new


def apply_event(
    state: dict[str, Any] | None, event: Event, *, findings: list[Finding] | None = None
) -> dict[str, Any] | None:
    """The entity's document after `event`, from the one just before it (None: no document).

    When `findings` is given, what the fold notices is appended there.
    """
    kind = event.type
    if findings is not None and event.before is not None:
        _check_pre_image(state, event, findings)
    if kind == UPDATED:  # the usual event first
        # The update description is the truth; an update's full document never is.
        if state is None:
            state = {}
            if findings is not None:
                detail = "an update of an entity without a document, applied onto {}"
                findings.append(
                    Finding(version=event.version, kind=UPDATE_WITHOUT_STATE, detail=detail)
                )
        if findings is None:
            return apply_update(state, event.changes or {})
        conflicts: list[str] = []
        new = apply_update(state, event.changes or {}, conflicts=conflicts)
        if conflicts:
            detail = "; ".join(conflicts)
            findings.append(Finding(version=event.version, kind=PATH_CONFLICT, detail=detail))
        return new
    if kind in (CREATED, REPLACED, SNAPSHOT):
        document: dict[str, Any] = _clone(event.document or {})
        return document
    if kind == DELETED:
        return None
    if kind not in STREAM_TYPES and findings is not None:
        detail = f"unknown event type {kind!r}: state left unchanged"
        findings.append(Finding(version=event.version, kind=UNKNOWN_TYPE, detail=detail))
    return state


def _check_pre_image(state: dict[str, Any] | None, event: Event, findings: list[Finding]) -> None:
    if state is None:
        if event.type != UPDATED:  # an update without state has its own finding
            detail = "the event carries a pre-image but the folded state has no document"
            findings.append(Finding(version=event.version, kind=PRE_IMAGE_MISMATCH, detail=detail))
        return
    if same_value(state, event.before):
        return
    paths = [c.path for c in diff(state, event.before)]
    named = ", ".join(paths[:_MAX_PATHS])
    if len(paths) > _MAX_PATHS:
        named += f" (+{len(paths) - _MAX_PATHS} more)"
    detail = f"the pre-image differs from the folded state at: {named}"
    findings.append(Finding(version=event.version, kind=PRE_IMAGE_MISMATCH, detail=detail))


class Fold:
    """Folds one entity's events in version order, keeping state, version and findings."""

    __slots__ = ("findings", "state", "version")

    def __init__(self, state: dict[str, Any] | None = None, *, version: int = 0) -> None:
        # `version` is the version `state` is at (0: before the first event, or unknown)
        self.state = state
        self.version = version
        self.findings: list[Finding] = []

    def apply(self, event: Event) -> dict[str, Any] | None:
        """Fold one event; returns the new state."""
        if event.type in STREAM_TYPES:
            return self.state  # stream events have the $stream entity's versions
        if self.version and event.version != self.version + 1:
            detail = f"expected version {self.version + 1}, got {event.version}"
            self.findings.append(
                Finding(version=event.version, kind=UNEXPECTED_VERSION, detail=detail)
            )
        self.state = apply_event(self.state, event, findings=self.findings)
        self.version = event.version
        return self.state

    def result(self) -> FoldResult:
        """The state, version and findings so far."""
        return FoldResult(state=self.state, version=self.version, findings=list(self.findings))


def fold(
    events: Iterable[Event], state: dict[str, Any] | None = None, *, version: int = 0
) -> FoldResult:
    """Fold `events` (one entity's, in version order) onto `state`, which is at `version`."""
    folder = Fold(state, version=version)
    for event in events:
        folder.apply(event)
    return folder.result()


__all__ = [
    "PATH_CONFLICT",
    "PRE_IMAGE_MISMATCH",
    "UNEXPECTED_VERSION",
    "UNKNOWN_TYPE",
    "UPDATE_WITHOUT_STATE",
    "Finding",
    "Fold",
    "FoldResult",
    "apply_event",
    "apply_update",
    "fold",
]
