"""Redaction before storage (pure): what is stored is what is hashed and verified.

A redaction names a field path without array indices (`customer.email`,
`items.unit_price`); it applies inside arrays to every element, as MongoDB's
dotted paths do. Without a mask the field is removed; with one it is kept with
the fixed mask as its value.

A reported path (an `updatedFields` key, a `truncatedArrays` field) is matched against
a redaction by its field names: from its `disambiguatedPaths` entry when it has one
(`"card.num"` with the entry `["card.num"]` is the top-level field named "card.num", not
`num` inside `card`), otherwise from its dotted text. `removedFields` carry no values and
are kept as reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from eventstore.diff import Part, is_ambiguous
from eventstore.fold import is_component_list
from eventstore.settings import Redaction

_NO_PATHS: Final[Mapping[str, Sequence[Part]]] = {}


def _components(path: str, disambiguated: Mapping[str, Sequence[Part]]) -> tuple[list[Part], bool]:
    """A reported path's components, and whether they are exact.

    Exact when `disambiguatedPaths` has the path (a component list: strings are field names,
    even "card.num" or "0"; ints are array indices); otherwise the dotted text split, where
    an ASCII-digit component is an array index (`_is_index`). An entry that is not the
    path's component list is not trusted (the fold does not apply it either): the text is
    split, so a redacted value is never kept for want of a valid entry.
    """
    given = disambiguated.get(path)
    if given is not None and is_component_list(path, given):
        return list(given), True
    return list(path.split(".")), False


def _is_index(part: Part, exact: bool) -> bool:
    """True when a component is an array position, not a field name.

    Exact components say so by their type. In split text MongoDB reports an array
    position in ASCII digits only: `²` and `١` are field names (`str.isdigit()` admits
    them, so it is not the test here).
    """
    if isinstance(part, int):
        return True
    return not exact and part.isascii() and part.isdigit()


def _field_names(parts: Sequence[Part], exact: bool) -> list[str]:
    """The components that are field names, in order (what a redaction path names)."""
    return [p for p in parts if isinstance(p, str) and not _is_index(p, exact)]


def _cut(parts: Sequence[Part], exact: bool, fields: int) -> list[Part]:
    """The components up to the `fields`-th field name (`card.num` cut to 1 is `card`;
    `items.0.price.cents` cut to 2 is `items.0.price`)."""
    out: list[Part] = []
    seen = 0
    for part in parts:
        out.append(part)
        if not _is_index(part, exact):
            seen += 1
            if seen == fields:
                break
    return out


def redact_document(doc: dict[str, Any], redactions: Sequence[Redaction]) -> dict[str, Any]:
    """A copy of `doc` with every redacted path removed or masked (the input is not changed)."""
    for r in redactions:
        doc = _redact_at(doc, r.path.split("."), r.mask)
    return doc


def _redact_at(value: Any, parts: list[str], mask: str | None) -> Any:
    if isinstance(value, list):
        return [_redact_at(item, parts, mask) for item in value]
    if not isinstance(value, dict) or parts[0] not in value:
        return value
    head, rest = parts[0], parts[1:]
    copy = dict(value)
    if not rest:
        if mask is None:
            del copy[head]
        else:
            copy[head] = mask
        return copy
    copy[head] = _redact_at(value[head], rest, mask)
    return copy


def redact_update(
    updated: dict[str, Any],
    removed: list[str],
    truncated: list[dict[str, Any]],
    disambiguated: Mapping[str, Sequence[Part]] | None,
    redactions: Sequence[Redaction],
) -> dict[str, Any]:
    """An `updated` event's `changes` (`updatedFields`, `removedFields`, `truncatedArrays`,
    and `disambiguatedPaths` when it has entries) with redacted paths removed or masked.

    Invariant: every `disambiguatedPaths` entry kept is one MongoDB reported or the prefix
    of one (a key cut to a masked field, `_redact_updated`); an entry is dropped only when
    redaction took its path out of `updatedFields` / `truncatedArrays` and the path is not
    still in the change (`removedFields` is never redacted).
    """
    if not redactions:
        changes: dict[str, Any] = {
            "updatedFields": updated,
            "removedFields": removed,
            "truncatedArrays": truncated,
        }
        if disambiguated:
            changes["disambiguatedPaths"] = disambiguated
        return changes
    paths = disambiguated or _NO_PATHS
    updated_r, added = _redact_updated(updated, redactions, paths)
    truncated_r = redact_truncated(truncated, redactions, paths)
    changes = {"updatedFields": updated_r, "removedFields": removed, "truncatedArrays": truncated_r}
    if paths or added:
        still = {*updated_r, *removed, *(t["field"] for t in truncated_r)}
        gone = {*updated, *(t["field"] for t in truncated)} - still
        entries: dict[str, Any] = {p: parts for p, parts in paths.items() if p not in gone}
        for p, parts in added.items():
            entries.setdefault(p, parts)
        if entries:
            changes["disambiguatedPaths"] = entries
    return changes


def _redact_updated(
    updated: dict[str, Any],
    redactions: Sequence[Redaction],
    disambiguated: Mapping[str, Sequence[Part]],
) -> tuple[dict[str, Any], dict[str, list[Part]]]:
    """`updatedFields` with redacted paths removed or masked, keeping MongoDB's key order,
    and the `disambiguatedPaths` entries the keys cut to a masked field need.

    A path beneath a masked field (`card.num` where `card` is masked) sets the masked
    field itself to the mask (`card`): the mask stands for the whole value, and a field
    set beneath it could not be applied to the mask the log holds (a scalar). The cut key's
    components are the prefix of the reported ones; it needs an entry of its own only when
    they are exact and its dotted text could name another field (`is_ambiguous`).
    """
    out: dict[str, Any] = {}
    added: dict[str, list[Part]] = {}
    for key, value in updated.items():
        parts, exact = _components(key, disambiguated)
        names = _field_names(parts, exact)
        keep = True
        cut = False
        for r in redactions:
            rparts = r.path.split(".")
            if names[: len(rparts)] == rparts:
                # the reported path is the redacted field or beneath it
                if r.mask is None:
                    keep = False
                    break
                parts = _cut(parts, exact, len(rparts))
                names = _field_names(parts, exact)
                key, value, cut = ".".join(str(p) for p in parts), r.mask, True
            elif rparts[: len(names)] == names:
                # the redacted field is inside the reported value
                value = _redact_at(value, rparts[len(names) :], r.mask)
        if keep:
            out[key] = value
            if cut and exact and is_ambiguous(parts):
                added[key] = parts
    return out, added


def redact_truncated(
    truncated: list[dict[str, Any]],
    redactions: Sequence[Redaction],
    disambiguated: Mapping[str, Sequence[Part]] = _NO_PATHS,
) -> list[dict[str, Any]]:
    """`truncatedArrays` without the arrays at or beneath a redacted field: removed, it holds
    no array to cut; masked, it holds the mask (which stands for whatever it hides). A
    field's components are read as `updatedFields` keys' are (`_components`)."""
    if not redactions:
        return truncated
    out = []
    for t in truncated:
        parts, exact = _components(str(t["field"]), disambiguated)
        names = _field_names(parts, exact)
        if not any(names[: len(r.path.split("."))] == r.path.split(".") for r in redactions):
            out.append(t)
    return out
