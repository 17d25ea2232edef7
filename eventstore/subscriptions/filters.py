"""Which events a subscription delivers (pure).

AND across criteria, OR within one; an empty criterion admits everything, except
that `snapshot` events and stream-level events (gap, dropped, renamed, rejected,
...) are admitted only when `types` names them. `fields` matches an `updated`
event when one of its changed fields equals, lies under or lies above one of the
paths (`customer.email` matches a change of `customer` and of
`customer.email.verified`); other admitted types pass `fields` as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from eventstore.actor_text import names_actor
from eventstore.field_match import changed_path
from eventstore.model import SNAPSHOT, UPDATED, Event
from eventstore.subscriptions.config import Filter

# True when `changed` equals `path`, lies under it, or lies above it (whole segments): the
# audit query's `field` reads changed fields by the same rule.
related = changed_path


def fields_match(changed_fields: Iterable[str], paths: Iterable[str]) -> bool:
    """True when any changed field is related to any of the paths."""
    wanted = tuple(paths)
    return any(related(c, p) for c in changed_fields for p in wanted)


def _names_actor(wanted: Sequence[str], actor: object) -> bool:
    """True when one of the `wanted` texts names the actor, as the audit query's `actor`
    reads them (`actor_text`); an actor document (none is recorded since capture keeps
    scalars only) by its `_id`, `id`, `name` or `email`."""
    if actor is None:
        return False
    values = (
        [v for k, v in actor.items() if k in ("_id", "id", "name", "email")]
        if isinstance(actor, dict)
        else [actor]
    )
    return any(names_actor(text, value) for text in wanted for value in values)


def admits(f: Filter, event: Event) -> bool:
    """True when the filter admits the event."""
    if f.streams and event.stream not in f.streams:
        return False
    special = event.type == SNAPSHOT or event.is_stream_event
    if (special or f.types) and event.type not in f.types:
        return False
    if f.actors and not _names_actor(f.actors, event.actor):
        return False
    if f.fields and event.type == UPDATED:
        return fields_match(event.changed_fields, f.fields)
    return True
