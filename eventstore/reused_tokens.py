"""A resume token that names two different changes: bad input, never "already recorded".

MongoDB gives every change its own resume token, and the log keys each event by it
(`Event.id`). So a change whose token is an id the log (or the batch) already holds is
the same change delivered again, after a resume, or a file read again, and is skipped.
A file, though, holds whatever was written to it: a line may carry an earlier line's
token with another change. Skipped as "already recorded", that change would be lost
without a word. Two changes with one token are told apart by what the token must
identify: the collection, the document's key, the operation and the cluster time.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from bson import Timestamp

from eventstore.capture import OP_TO_TYPE
from eventstore.codec import timestamp_str
from eventstore.keys import typed_key
from eventstore.model import ChangeEvent, Event


class Identity(NamedTuple):
    """What one resume token stands for (`cluster_time` None: the change carried none)."""

    stream: str
    key: str
    type: str
    cluster_time: Timestamp | None


def recorded_identity(event: Event) -> Identity:
    """What a stored entity event was recorded for."""
    return Identity(event.stream, typed_key(event.entity_id), event.type, event.cluster_time)


def change_identity(change: ChangeEvent, stream: str) -> Identity:
    """What an insert, update, replace or delete of `stream` is (its `documentKey` is set)."""
    assert change.documentKey is not None
    return Identity(
        stream,
        typed_key(change.documentKey["_id"]),
        OP_TO_TYPE[change.operationType],
        change.clusterTime,
    )


def same_change(a: Identity, b: Identity) -> bool:
    """True when both can be the one change their shared token names: nothing tells them
    apart, a cluster time given once and missing once included (a change delivered again
    carries what it carried)."""
    return a == b


def describe(identity: Identity, entity_key: Any) -> str:
    """`updated orders 42 at cluster time 1700000000.1`: the other change, for a reason."""
    at = (
        ""
        if identity.cluster_time is None
        else f" at cluster time {timestamp_str(identity.cluster_time)}"
    )
    return f"{identity.type} {identity.stream} {entity_key}{at}"
