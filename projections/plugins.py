"""Your own projections, loaded at startup from `EVENTSTORE_PROJECTIONS` and entry points.

`EVENTSTORE_PROJECTIONS=module:attribute,...` names objects to import, and every
installed package may declare some in the entry-point group `eventstore.projections`;
each is a `Projection` or a list of them. Anything wrong is refused before anything
runs, with one `PluginError` naming the plugin: an import that fails, an object that
is not a `Projection`, a bad or duplicate name, a duplicate collection, a collection
that belongs to the store (see `projections.reserved`), or `indexes` that are not field
paths.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final, Protocol

from projections.api import Projection
from projections.idempotent import plugin_exit
from projections.reserved import NAME, collection_problem

GROUP: Final = "eventstore.projections"
# A projection's `indexes`: field paths (MongoDB keeps at most 64 indexes per collection).
MAX_INDEXES: Final = 16
FIELD_PATH: Final = re.compile(r"[^$.\x00][^.\x00]{0,199}(?:\.[^$.\x00][^.\x00]{0,199}){0,15}")


class EntryPointLike(Protocol):
    """What the loader uses of an entry point (`importlib.metadata.EntryPoint`)."""

    @property
    def name(self) -> str: ...

    @property
    def value(self) -> str: ...

    def load(self) -> Any: ...


class PluginError(Exception):
    """A projection plugin cannot be used; the message names it."""


def _source_label(spec: str) -> str:
    return f"projection plugin {spec!r}"


def _import(spec: str) -> Any:
    """The object `module:attribute` names (attribute may be dotted)."""
    label = _source_label(spec)
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name.strip() or not attribute.strip():
        raise PluginError(f"{label}: give it as module:attribute")
    try:
        target: Any = importlib.import_module(module_name.strip())
    except BaseException as exc:  # any failure while importing a user's module is a refusal
        if not isinstance(exc, Exception) and not plugin_exit(exc):
            raise  # the user's Ctrl-C
        raise PluginError(
            f"{label}: cannot import module {module_name.strip()!r}: {type(exc).__name__}: {exc}"
        ) from None
    for part in attribute.strip().split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise PluginError(
                f"{label}: module {module_name.strip()!r} has no attribute {attribute.strip()!r}"
            ) from None
    return target


def _projections_of(label: str, value: Any) -> list[Projection]:
    """A Projection, or a list or tuple of them; anything else is refused."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise PluginError(f"{label}: names an empty list (no projection)")
    for item in items:
        if not isinstance(item, Projection):
            raise PluginError(
                f"{label}: {type(item).__name__} is not a Projection "
                "(from projections import Projection)"
            )
    return items


def _entry_points() -> list[EntryPointLike]:
    return list(importlib.metadata.entry_points(group=GROUP))


def _check(label: str, p: Projection) -> None:
    """One projection on its own: its name, its collection, its functions."""
    if not isinstance(p.name, str) or not NAME.fullmatch(p.name):
        raise PluginError(f"{label}: name {p.name!r} does not match {NAME.pattern}")
    problem = collection_problem(p.collection)
    if problem is not None:
        raise PluginError(f"{label} ({p.name}): {problem}")
    for field in ("keys", "apply"):
        if not callable(getattr(p, field)):
            raise PluginError(f"{label} ({p.name}): {field} is not callable")
    for optional in ("merge", "skippable", "forget"):
        if getattr(p, optional) is not None and not callable(getattr(p, optional)):
            raise PluginError(f"{label} ({p.name}): {optional} is neither callable nor None")
    if not isinstance(p.forget_typed, bool):
        raise PluginError(f"{label} ({p.name}): forget_typed is True or False")
    problem = indexes_problem(p.indexes)
    if problem is not None:
        raise PluginError(f"{label} ({p.name}): {problem}")
    if p.tracks_seq:
        raise PluginError(
            f"{label} ({p.name}): tracks_seq is for the built-in projections; "
            "the runner keeps `_seq` for yours"
        )


def indexes_problem(indexes: Any) -> str | None:
    """What is wrong with a projection's `indexes` (None: nothing): a tuple of distinct
    field paths (`status`, `customer.id`), at most `MAX_INDEXES`, none of them `_id`."""
    if not isinstance(indexes, (tuple, list)):
        return f"indexes must be a tuple of field names, not {type(indexes).__name__}"
    if len(indexes) > MAX_INDEXES:
        return f"indexes names {len(indexes)} fields; at most {MAX_INDEXES}"
    for field in indexes:
        if not isinstance(field, str) or not FIELD_PATH.fullmatch(field):
            return (
                f"indexes: {field!r} is not a field path (names joined by dots, none empty or "
                "starting with $)"
            )
        if field == "_id":
            return "indexes: _id is the rows' key, indexed already"
    if len(set(indexes)) < len(indexes):
        return "indexes names a field twice"
    return None


def load_plugins(
    specs: Sequence[str],
    *,
    builtin: Sequence[Projection] = (),
    entry_points: Iterable[EntryPointLike] | None = None,
) -> list[Projection]:
    """The plugin projections of `specs` then of the entry points, checked against `builtin`.

    Raises `PluginError` (naming the plugin) at the first one that cannot be used.
    """
    found: list[tuple[str, Projection]] = []
    for spec in specs:
        label = _source_label(spec)
        found += [(label, p) for p in _projections_of(label, _import(spec))]
    for ep in _entry_points() if entry_points is None else entry_points:
        label = f"projection plugin {ep.name!r} (entry point {ep.value!r} of group {GROUP})"
        try:
            value = ep.load()
        except BaseException as exc:  # a broken installed package: a refusal, no traceback
            if not isinstance(exc, Exception) and not plugin_exit(exc):
                raise  # the user's Ctrl-C
            raise PluginError(f"{label}: cannot be loaded: {type(exc).__name__}: {exc}") from None
        found += [(label, p) for p in _projections_of(label, value)]
    names = {p.name: "the built-in projection" for p in builtin}
    collections = {p.collection: f"the built-in projection {p.name}" for p in builtin}
    out: list[Projection] = []
    for label, p in found:
        _check(label, p)
        if p.name in names:
            raise PluginError(f"{label}: name {p.name!r} is already taken by {names[p.name]}")
        if p.collection in collections:
            raise PluginError(
                f"{label} ({p.name}): collection {p.collection!r} is already used by "
                f"{collections[p.collection]}"
            )
        names[p.name] = label
        collections[p.collection] = f"{label} ({p.name})"
        out.append(p)
    return out


__all__ = ["GROUP", "PluginError", "load_plugins"]
