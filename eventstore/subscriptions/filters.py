"""Which events a subscription delivers (pure).

AND across criteria, OR within one; an empty criterion admits everything, except
that `snapshot` events and stream-level events (gap, dropped, renamed, rejected,
...) are admitted only when `types` names them. `fields` matches an `updated`
event when one of its changed fields equals, lies under or lies above one of the
paths (`customer.email` matches a change of `customer` and of
`customer.email.verified`); other admitted types pass `fields` as they are.
"""

from __future__ import annotations

from collections.abc import Iterable

from eventstore.model import SNAPSHOT, STREAM_KEY, UPDATED, Event
from eventstore.subscriptions.config import Filter


def related(changed: str, path: str) -> bool:
    """True when `changed` equals `path`, lies under it, or lies above it (whole segments)."""
    return changed == path or changed.startswith(path + ".") or path.startswith(changed + ".")


def fields_match(changed_fields: Iterable[str], paths: Iterable[str]) -> bool:
    """True when any changed field is related to any of the paths."""
    wanted = tuple(paths)
    return any(related(c, p) for c in changed_fields for p in wanted)


def _actor_names(actor: object) -> set[str]:
    if actor is None:
        return set()
    if isinstance(actor, str | int | float):
        return {str(actor)}
    if isinstance(actor, dict):  # an actor document: its id or name counts
        return {str(v) for k, v in actor.items() if k in ("_id", "id", "name", "email")}
    return {str(actor)}


def admits(f: Filter, event: Event) -> bool:
    """True when the filter admits the event."""
    if f.streams and event.stream not in f.streams:
        return False
    special = event.type == SNAPSHOT or event.entity_key == STREAM_KEY
    if (special or f.types) and event.type not in f.types:
        return False
    if f.actors and not (_actor_names(event.actor) & set(f.actors)):
        return False
    if f.fields and event.type == UPDATED:
        return fields_match(event.changed_fields, f.fields)
    return True
