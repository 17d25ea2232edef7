"""How MongoDB describes an update in a change event, computed from the document before and after.

Pure: no I/O. The memory change feed performs a write with mongomock, reads the
document before and after, and asks this module for the `updateDescription`
MongoDB would report. Two reporting styles, as the server has them:

Operator updates (`{"$set": ...}`, `$inc`, `$push`, ...) report at the
granularity of the paths the update names:
- a named path that changed is reported whole with its resulting value
  (`$inc` from 1 to 3 is `3`; `$set` of a sub-document is the whole sub-document;
  `$set items.2.qty` is `items.2.qty`);
- a path created under a missing parent is reported at the topmost created field;
- `$unset` (and the source of `$rename`) is a `removedFields` entry;
- `$push` (without `$position`, `$slice`, `$sort`) onto a non-empty array reports
  each appended element by index (`items.3`, index = old length); a push into an
  empty or missing array, and every other array operator (`$pull`, `$pullAll`,
  `$pop`, `$addToSet`, `$push` with modifiers), report the whole new array;
- below a positional path (`items.$.qty`) the arrays are compared element by
  element; an array that shrank there is reported whole.
Operator updates never produce `truncatedArrays`.

Pipeline updates (`[{"$set": ...}]`) report a structural diff, as the server's
delta computation does: sub-documents and arrays are compared recursively,
element by element; an array that shrank gets a `truncatedArrays` entry plus
element paths for the kept elements that changed; appended elements are
reported by index. A sub-document or array whose diff would be at least as
large (BSON bytes) as its new value is reported whole; an empty array before
therefore always comes out whole. Paths cannot move a field, so a sub-document
whose fields changed order (beyond removals and fields added at the end) is
reported whole, and such a document is a replacement. When the whole diff is
larger than the new document, MongoDB logs a replacement: `describe_update`
returns None and the feed emits a `replace` event.

Every description carries `disambiguatedPaths` (as streams opened with
`showExpandedEvents` do), `{}` when no path is ambiguous: a reported path is
ambiguous when one of its field names looks like a number or contains a dot;
its entry lists the real components, ints for array indices, strings for names.
"""

from __future__ import annotations

import copy
import struct
from collections.abc import Mapping, Sequence
from typing import Any, Final

import bson

# A path as real components: str = field name, int = array index.
Path = tuple[str | int, ...]


class _Missing:
    """The absence of a field (None is a value)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

_SET: Final = "set"
_PUSH: Final = "push"
_GENERIC: Final = "generic"
_PUSH_MODIFIERS: Final = ("$position", "$slice", "$sort")


# -- equality ---------------------------------------------------------------------------------


def same_value(a: Any, b: Any) -> bool:
    """BSON-like equality: types must match (1 != 1.0 != True) and sub-document field order counts.

    Doubles compare by their bits, as MongoDB compares a stored value with its update
    (a write of -0.0 over 0.0 is not a no-op; NaN equals the same NaN).
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return bool(a == b)


def equivalent(a: Any, b: Any) -> bool:
    """Like `same_value`, but sub-document field order does not count."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(equivalent(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(equivalent(x, y) for x, y in zip(a, b, strict=True))
    return same_value(a, b)


# -- the description --------------------------------------------------------------------------


class _Out:
    """Reported changes, in the order found."""

    def __init__(self) -> None:
        self.updated: list[tuple[Path, Any]] = []
        self.removed: list[Path] = []
        self.truncated: list[tuple[Path, int]] = []

    def extend(self, entries: Sequence[_Entry]) -> None:
        for entry in entries:
            if entry.kind == "u":
                self.updated.append((entry.path, entry.value))
            elif entry.kind == "r":
                self.removed.append(entry.path)
            else:
                self.truncated.append((entry.path, int(entry.value)))

    def description(self) -> dict[str, Any]:
        paths: list[Path] = [p for p, _ in self.updated] + self.removed
        paths += [p for p, _ in self.truncated]
        return {
            "updatedFields": {dotted(p): v for p, v in self.updated},
            "removedFields": [dotted(p) for p in self.removed],
            "truncatedArrays": [{"field": dotted(p), "newSize": n} for p, n in self.truncated],
            "disambiguatedPaths": {dotted(p): list(p) for p in paths if is_ambiguous(p)},
        }


def dotted(path: Path) -> str:
    """The path as MongoDB prints it: components joined with dots."""
    return ".".join(str(c) for c in path)


def is_ambiguous(path: Path) -> bool:
    """True when a field name in the path looks like an array index or contains a dot."""
    return any(isinstance(c, str) and (_numeric(c) or "." in c) for c in path)


def _numeric(name: str) -> bool:
    return name.isascii() and name.isdigit()


def describe_update(
    before: Mapping[str, Any], after: Mapping[str, Any], update: Any
) -> dict[str, Any] | None:
    """The `updateDescription` of `update` turning `before` into `after`.

    Returns None when MongoDB would report the change as a `replace` (a pipeline
    diff larger than the new document). Call only when the documents differ.
    """
    if isinstance(update, Mapping):
        out = _Out()
        _walk(_target_tree(update), (), dict(before), dict(after), out)
        described = out.description()
        if equivalent(apply_update_description(before, described), dict(after)):
            return described
        # The update did something its paths do not explain (a test double's quirk):
        # fall back to the structural diff; failing that, MongoDB's other answer, a replace.
        fallback = _structural(before, after, truncate=False)
        if fallback is not None and equivalent(
            apply_update_description(before, fallback), dict(after)
        ):
            return fallback
        return None
    return _structural(before, after, truncate=True)


def _structural(
    before: Mapping[str, Any], after: Mapping[str, Any], *, truncate: bool
) -> dict[str, Any] | None:
    if not _keeps_order(before, after):
        return None  # paths cannot move a top-level field: a replace
    entries, size = _diff_doc((), dict(before), dict(after), truncate)
    if size > _size(dict(after)):
        return None
    out = _Out()
    out.extend(entries)
    return out.description()


# -- operator updates: report at the named paths ----------------------------------------------


class _Node:
    __slots__ = ("children", "kind")

    def __init__(self) -> None:
        self.kind: str | None = None
        self.children: dict[str, _Node] = {}


def _target_tree(update: Mapping[str, Any]) -> _Node:
    root = _Node()

    def add(path: str, kind: str) -> None:
        comps = path.split(".")
        positional = next((i for i, c in enumerate(comps) if c.startswith("$")), None)
        if positional is not None:
            comps, kind = comps[:positional], _GENERIC
        node = root
        for comp in comps:
            node = node.children.setdefault(comp, _Node())
        # Paths conflict in MongoDB; should two still overlap, the shorter one is reported whole.
        node.kind = kind if node.kind is None else _SET

    for op, args in update.items():
        if not isinstance(args, Mapping):
            continue
        for key, arg in args.items():
            if op == "$rename":
                add(str(key), _SET)
                add(str(arg), _SET)
            elif op == "$push" and not (
                isinstance(arg, Mapping) and any(m in arg for m in _PUSH_MODIFIERS)
            ):
                add(str(key), _PUSH)
            else:
                add(str(key), _SET)
    return root


def _walk(node: _Node, path: Path, b: Any, a: Any, out: _Out) -> None:
    if node.kind is not None and path:
        _leaf(node.kind, path, b, a, out)
        return
    if isinstance(b, dict) and isinstance(a, dict):
        for comp, child in node.children.items():
            _walk(child, (*path, comp), b.get(comp, MISSING), a.get(comp, MISSING), out)
        return
    if isinstance(b, list) and isinstance(a, list) and len(a) == len(b):
        for comp in node.children:
            if not (_numeric(comp) and int(comp) < len(a)):
                _leaf(_SET, path, b, a, out)  # not addressable by index: the whole array
                return
        for comp, child in node.children.items():
            i = int(comp)
            _walk(child, (*path, i), b[i], a[i], out)
        return
    # The parent was created, removed, resized or changed type: report it.
    _leaf(_SET, path, b, a, out)


def _leaf(kind: str, path: Path, b: Any, a: Any, out: _Out) -> None:
    if a is MISSING:
        if b is not MISSING:
            out.removed.append(path)
        return
    if b is not MISSING and same_value(b, a):
        return
    if kind == _GENERIC and b is not MISSING:
        out.extend(_diff_value(path, b, a, truncate=False)[0])
        return
    if (
        kind == _PUSH
        and isinstance(b, list)
        and isinstance(a, list)
        and b
        and len(a) > len(b)
        and all(same_value(x, y) for x, y in zip(b, a, strict=False))
    ):
        for i in range(len(b), len(a)):
            out.updated.append(((*path, i), a[i]))
        return
    out.updated.append((path, a))


# -- structural diff (pipeline updates, and below positional paths) ---------------------------


class _Entry:
    """One reported change: u(pdated) path = value, r(emoved) path, t(runcated) path to value."""

    __slots__ = ("kind", "path", "value")

    def __init__(self, kind: str, path: Path, value: Any = None) -> None:
        self.kind = kind
        self.path = path
        self.value = value


def _size(value: Any) -> int:
    """The BSON size of a value (without a field name)."""
    try:
        return len(bson.encode({"": value})) - 7
    except Exception:  # not BSON-encodable: a rough stand-in keeps the comparison meaningful
        return len(repr(value))


def _diff_value(path: Path, b: Any, a: Any, truncate: bool) -> tuple[list[_Entry], int]:
    """Entries turning b into a at path, and their approximate size in the server's diff format."""
    if same_value(b, a):
        return [], 0
    name = len(str(path[-1])) if path else 0
    new_size = _size(a)
    whole = [_Entry("u", path, a)], 2 + name + new_size
    if isinstance(b, dict) and isinstance(a, dict):
        if not _keeps_order(b, a):
            return whole  # paths cannot move a field: a reordered sub-document is reported whole
        entries, size = _diff_doc(path, b, a, truncate)
    elif isinstance(b, list) and isinstance(a, list):
        if len(a) < len(b) and not truncate:
            return whole  # operator style: a shrunk array is reported whole
        entries, size = _diff_array(path, b, a, truncate)
    else:
        return whole
    # A diff at least as large as the new value is reported as the value (so is a pure reorder).
    if not entries or size >= new_size:
        return whole
    return entries, 3 + name + size


def _keeps_order(b: Mapping[str, Any], a: Mapping[str, Any]) -> bool:
    """True when `a`'s fields are `b`'s kept ones in their order, then the new ones.

    That is the only order replaying set and removed paths onto `b` can produce.
    """
    kept = [k for k in b if k in a]
    return list(a) == kept + [k for k in a if k not in b]


def _diff_doc(
    path: Path, b: dict[str, Any], a: dict[str, Any], truncate: bool
) -> tuple[list[_Entry], int]:
    entries: list[_Entry] = []
    size = 5
    for key in b:
        if key not in a:
            entries.append(_Entry("r", (*path, key)))
            size += 3 + len(key)
    for key, value in a.items():
        if key in b:
            sub, sub_size = _diff_value((*path, key), b[key], value, truncate)
            entries += sub
            size += sub_size
        else:
            entries.append(_Entry("u", (*path, key), value))
            size += 2 + len(key) + _size(value)
    return entries, size


def _diff_array(path: Path, b: list[Any], a: list[Any], truncate: bool) -> tuple[list[_Entry], int]:
    entries: list[_Entry] = []
    size = 9  # the array-diff header
    kept = min(len(a), len(b))
    if len(a) < len(b):
        entries.append(_Entry("t", path, len(a)))
        size += 7
    for i in range(kept):
        sub, sub_size = _diff_value((*path, i), b[i], a[i], truncate)
        entries += sub
        size += sub_size + (1 if sub else 0)
    for i in range(kept, len(a)):
        entries.append(_Entry("u", (*path, i), a[i]))
        size += 3 + len(str(i)) + _size(a[i])
    return entries, size


# -- applying a description (to check what the feed reports) ----------------------------------


def apply_update_description(
    doc: Mapping[str, Any], description: Mapping[str, Any]
) -> dict[str, Any]:
    """`doc` with an `updateDescription` applied: truncations, then updated, then removed fields.

    A check of the feed's own output: numeric components index arrays and name
    fields in sub-documents; `disambiguatedPaths` decides where given.
    """
    result: dict[str, Any] = copy.deepcopy(dict(doc))
    exact: Mapping[str, Sequence[str | int]] = description.get("disambiguatedPaths") or {}

    def components(path: str) -> list[str | int]:
        return list(exact[path]) if path in exact else list(path.split("."))

    for item in description.get("truncatedArrays") or []:
        target = _resolve(result, components(str(item["field"])), create=False)
        if isinstance(target, list):
            del target[int(item["newSize"]) :]
    for path, value in (description.get("updatedFields") or {}).items():
        comps = components(path)
        parent = _resolve(result, comps[:-1], create=True)
        _put(parent, comps[-1], copy.deepcopy(value))
    for path in description.get("removedFields") or []:
        comps = components(path)
        parent = _resolve(result, comps[:-1], create=False)
        if isinstance(parent, dict):
            parent.pop(str(comps[-1]), None)
        elif isinstance(parent, list) and _index(comps[-1]) is not None:
            i = _index(comps[-1])
            if i is not None and i < len(parent):
                parent[i] = None
    return result


def _index(comp: str | int) -> int | None:
    if isinstance(comp, int):
        return comp
    return int(comp) if _numeric(comp) else None


def _resolve(doc: Any, comps: Sequence[str | int], *, create: bool) -> Any:
    current = doc
    for comp in comps:
        if isinstance(current, list):
            i = _index(comp)
            if i is None:
                return None
            if i >= len(current):
                if not create:
                    return None
                _put(current, i, {})
            current = current[i]
        elif isinstance(current, dict):
            key = str(comp)
            if not isinstance(current.get(key), (dict, list)):
                if not create:
                    return None
                current[key] = {}
            current = current[key]
        else:
            return None
    return current


def _put(container: Any, comp: str | int, value: Any) -> None:
    if isinstance(container, list):
        i = _index(comp)
        if i is None:
            return
        while len(container) < i:
            container.append(None)  # MongoDB pads with nulls
        if i == len(container):
            container.append(value)
        else:
            container[i] = value
    elif isinstance(container, dict):
        container[str(comp)] = value


__all__ = [
    "MISSING",
    "apply_update_description",
    "describe_update",
    "dotted",
    "equivalent",
    "is_ambiguous",
    "same_value",
]
