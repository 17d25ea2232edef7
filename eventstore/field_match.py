"""Which events changed a field path, as the audit query's `field` reads it (pure).

An event changed the path `P` when one of its `changed_fields` equals `P`, lies
beneath it (`customer.email` for `customer`) or lies above it (`customer` set
whole changed `customer.name`): the subscription filter's `related`, on whole
segments. An event that writes or removes the whole document changed every field
whatever its `changed_fields` say (`WHOLE_DOCUMENT_TYPES`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from eventstore.model import DELETED, REWRITE_TYPES

# A replace or snapshot writes a whole document over the one before (its `changed_fields`,
# the new document's, cannot name a field it removed); a deletion, recorded or inferred
# (after a gap or a drop), removes every field (its `changed_fields` are empty).
WHOLE_DOCUMENT_TYPES: Final = REWRITE_TYPES | frozenset({DELETED})


def path_and_ancestors(path: str) -> list[str]:
    """`a.b.c` gives `a`, `a.b`, `a.b.c`: the paths whose change changes `path` whole."""
    found: list[str] = []
    end = path.find(".")
    while end != -1:
        found.append(path[:end])
        end = path.find(".", end + 1)
    found.append(path)
    return found


def changed_path(changed: str, path: str) -> bool:
    """True when `changed` equals `path`, lies beneath it or lies above it (whole segments)."""
    return changed == path or changed.startswith(path + ".") or path.startswith(changed + ".")


def changed_field(event_type: str, changed_fields: Iterable[str], path: str) -> bool:
    """True when an event of this type and these changed fields changed `path`."""
    return event_type in WHOLE_DOCUMENT_TYPES or any(
        changed_path(changed, path) for changed in changed_fields
    )
