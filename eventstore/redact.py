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


def redact_updated_fields(
    updated: dict[str, Any], redactions: Sequence[Redaction]
) -> dict[str, Any]:
    """`updatedFields` with redacted paths removed or masked, keeping MongoDB's key order."""
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
                value = r.mask
            elif rparts[: len(parts)] == parts:
                # the redacted field is inside the reported value
                value = _redact_at(value, rparts[len(parts) :], r.mask)
        if keep:
            out[key] = value
    return out
