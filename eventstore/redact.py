"""Redaction before storage (pure): what is stored is what is hashed and verified.

A redaction names a field path without array indices (`customer.email`,
`items.unit_price`); it applies inside arrays to every element, as MongoDB's
dotted paths do. Without a mask the field is removed; with one it is kept with
the fixed mask as its value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventstore.settings import Redaction


def _logical_parts(path: str) -> list[str]:
    """A reported path's components without array indices (ASCII-digit components).

    MongoDB reports an array position in ASCII digits only: `²` and `١` are field
    names (`str.isdigit()` admits them, so it is not the test here).
    """
    return [p for p in path.split(".") if not (p.isascii() and p.isdigit())]


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


def _cut(path: str, fields: int) -> str:
    """A reported path up to its `fields`-th component that is not an array index
    (`card.num` cut to 1 is `card`; `items.0.price.cents` cut to 2 is `items.0.price`)."""
    out: list[str] = []
    seen = 0
    for part in path.split("."):
        out.append(part)
        if not (part.isascii() and part.isdigit()):
            seen += 1
            if seen == fields:
                break
    return ".".join(out)


def redact_updated_fields(
    updated: dict[str, Any], redactions: Sequence[Redaction]
) -> dict[str, Any]:
    """`updatedFields` with redacted paths removed or masked, keeping MongoDB's key order.

    A path beneath a masked field (`card.num` where `card` is masked) sets the masked
    field itself to the mask (`card`): the mask stands for the whole value, and a field
    set beneath it could not be applied to the mask the log holds (a scalar).
    """
    if not redactions:
        return updated
    out: dict[str, Any] = {}
    for key, value in updated.items():
        parts = _logical_parts(key)
        keep = True
        for r in redactions:
            rparts = r.path.split(".")
            if parts[: len(rparts)] == rparts:
                # the reported path is the redacted field or beneath it
                if r.mask is None:
                    keep = False
                    break
                key, value = _cut(key, len(rparts)), r.mask
                parts = _logical_parts(key)
            elif rparts[: len(parts)] == parts:
                # the redacted field is inside the reported value
                value = _redact_at(value, rparts[len(parts) :], r.mask)
        if keep:
            out[key] = value
    return out


def redact_truncated(
    truncated: list[dict[str, Any]], redactions: Sequence[Redaction]
) -> list[dict[str, Any]]:
    """`truncatedArrays` without the arrays at or beneath a redacted field: removed, it holds
    no array to cut; masked, it holds the mask (which stands for whatever it hides)."""
    if not redactions:
        return truncated
    out = []
    for t in truncated:
        parts = _logical_parts(str(t["field"]))
        if not any(parts[: len(r.path.split("."))] == r.path.split(".") for r in redactions):
            out.append(t)
    return out
