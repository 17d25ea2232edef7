"""Changes a source delivers that cannot be interpreted, and what capture does with them (pure).

`EVENTSTORE_BAD_INPUT` decides: `stop` fails capture with `BadChange` naming the
source and position, after recording everything before it; `record` records a
stream-level `rejected` event in its place and goes on. Only what the service
would record is judged: an insert, update, replace or delete of a captured
collection (and a drop, whose deletions need its cluster time), plus any change
without a resume token or operation type. Change types the service does not know
are not bad input: they are logged and skipped (DESIGN.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import bson
import msgspec
from bson import Timestamp

from eventstore.codec import timestamp_str
from eventstore.fold import is_component_list
from eventstore.keys import typed_key
from eventstore.model import SOURCE_STREAM
from eventstore.split_events import SPLIT_EVENT, fragment_of

STOP: Final = "stop"
RECORD: Final = "record"
BAD_INPUT_POLICIES: Final = (STOP, RECORD)

DATA_OPS: Final = frozenset({"insert", "update", "replace", "delete"})
# Decoded BSON documents are dicts (SON is one too): plain isinstance checks, no ABCs,
# keep the check a small share of capturing a change.
# A reason names fields and types, never values: the raw input is not stored or logged.
_MAX_REASON: Final = 200


class BadChange(Exception):
    """Capture met a change it cannot interpret under the `stop` policy (fatal, not retried).

    Everything before it is recorded and checkpointed; nothing after it is, so a
    fixed input resumes exactly there.
    """

    def __init__(self, source: str, position: str, reason: str) -> None:
        super().__init__(f"{source}: {position}: {reason}")
        self.source = source
        self.position = position
        self.reason = reason


class Rejection(msgspec.Struct, frozen=True, kw_only=True):
    """One change that cannot be interpreted: where it was, why, and the hash of its raw input.

    `token` and `cluster_time` are the change's own, when it carried readable ones:
    under `record` the resume position advances past it as for a good change.
    """

    source: str
    position: str
    reason: str
    sha256: str
    stream: str = SOURCE_STREAM
    token: dict[str, Any] | None = None
    cluster_time: Timestamp | None = None
    wall_time: datetime | None = None

    @property
    def event_id(self) -> str:
        """`rejected:<sha256>:<position>`: re-reading the same input records it once."""
        return f"rejected:{self.sha256}:{self.position}"

    @property
    def document(self) -> dict[str, Any]:
        """The `rejected` event's document (never the raw input)."""
        return {
            "source": self.source,
            "position": self.position,
            "reason": self.reason,
            "sha256": self.sha256,
        }

    def error(self) -> BadChange:
        """The `stop` policy's error for this change."""
        return BadChange(self.source, self.position, self.reason)


# MongoDB stores documents of at most 100 levels (each document or array is one), so a
# change event nests at most 102 (an updated field's value sits under updateDescription
# and updatedFields). Deeper input cannot come from MongoDB; past a few hundred levels
# the recursive code that reads events back would fail, so it is refused at capture.
MAX_CHANGE_DEPTH: Final = 110
DEEPER_THAN_MONGODB: Final = (
    "nested deeper than MongoDB allows (a document holds at most 100 levels)"
)


def deeper_than(value: Any, limit: int) -> bool:
    """True when `value` nests documents and arrays more than `limit` levels (itself one).

    Iterative, and it stops at the first container past the limit: bounded work
    whatever the input's depth.
    """
    if not isinstance(value, dict | list):
        return False
    stack = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > limit:
            return True
        for item in container.values() if isinstance(container, dict) else container:
            if isinstance(item, dict | list):
                stack.append((item, depth + 1))
    return False


def sha256_hex(data: bytes) -> str:
    """The hex SHA-256 of raw input bytes."""
    return hashlib.sha256(data).hexdigest()


def raw_sha256(raw: Any) -> str:
    """The hash of a decoded change as raw input: its BSON bytes (as the server sent them)."""
    try:
        data = bson.encode(raw) if isinstance(raw, dict) else repr(raw).encode()
    except Exception:  # a value BSON cannot encode: its repr still identifies the input
        data = repr(raw).encode()
    return sha256_hex(data)


def token_of(raw: Any) -> dict[str, Any] | None:
    """The change's resume token when it is a document with a nonempty string `_data`, else None.

    (An empty `_data` is no position: every change would share it.)
    """
    token = raw.get("_id") if isinstance(raw, dict) else None
    if isinstance(token, dict) and isinstance(token.get("_data"), str) and token["_data"]:
        return token
    return None


def stream_position(token: Mapping[str, Any] | None, cluster_time: Timestamp | None) -> str:
    """A change stream position: after the last good change's resume token, or cluster time."""
    data = token.get("_data") if token is not None else None
    if isinstance(data, str):
        return f"after resume token {data}"
    if cluster_time is not None:
        return f"after cluster time {timestamp_str(cluster_time)}"
    return "at the start of the stream"


def collection_of(raw: Mapping[str, Any]) -> str | None:
    """`ns.coll` when it is a string."""
    ns = raw.get("ns")
    coll = ns.get("coll") if isinstance(ns, dict) else None
    return coll if isinstance(coll, str) else None


def rename_target(raw: Mapping[str, Any]) -> str | None:
    """A `rename`'s `to.coll` when it is a string (the collection renamed into)."""
    if raw.get("operationType") != "rename":
        return None
    to = raw.get("to")
    coll = to.get("coll") if isinstance(to, Mapping) else None
    return coll if isinstance(coll, str) else None


def problem(
    raw: Any, *, collections: frozenset[str], operations: frozenset[str]
) -> tuple[str, str] | None:
    """Why this change cannot be interpreted, with its stream; None when it can (or is not ours).

    The stream is its collection when that is a captured one, else `$source`.
    """
    if not isinstance(raw, dict):
        return SOURCE_STREAM, "not a document"
    coll = collection_of(raw)
    if coll is not None and coll not in collections:
        target = rename_target(raw)
        if target is None or target not in collections:
            return None  # another collection's change: filtered, whatever its shape
        coll = target  # a rename into a captured collection is that stream's
    stream = coll if coll is not None else SOURCE_STREAM
    op = raw.get("operationType")
    if token_of(raw) is None:
        return stream, "no resume token (_id._data)"
    if SPLIT_EVENT in raw:  # the sources put whole split events together: this one is not
        split = fragment_of(raw)
        if split is None:
            return stream, "splitEvent is not {fragment, of} with 1 <= fragment <= of"
        return stream, (
            f"fragment {split[0]} of {split[1]} of a split event that cannot be put together "
            "(fragments missing, out of order or overlapping)"
        )
    if not isinstance(op, str):
        return stream, "no operationType"
    if op in DATA_OPS:
        if coll is None:
            return stream, f"{op} without ns.coll"
        if op not in operations:
            return None
        reason = _data_change_problem(op, raw)
        return (stream, _short(reason)) if reason is not None else None
    if (
        op in ("drop", "rename")
        and coll is not None
        and not isinstance(raw.get("clusterTime"), Timestamp)
    ):
        # its inferred deletions are marked and placed by it
        return stream, f"{op} without a clusterTime timestamp"
    return None


def _data_change_problem(op: str, raw: Mapping[str, Any]) -> str | None:
    key = raw.get("documentKey")
    if not isinstance(key, dict):
        return "no documentKey" if key is None else f"documentKey is {_kind(key)}, not a document"
    if "_id" not in key:
        return "documentKey without _id"
    if isinstance(key["_id"], list):
        return "documentKey._id is an array"
    if key["_id"] is None:
        # MongoDB allows one null _id per collection, but null is the entity id of the
        # stream's own record (gaps, drops, rejections): recorded, it would join that chain
        # and be readable nowhere, so it is refused where it can be seen and fixed.
        return "documentKey._id is null, the key of the stream's own record ($stream)"
    get = raw.get
    for name, types, what in _TYPED_FIELDS:
        value = get(name)
        if value is not None and (value.__class__ is bool or not isinstance(value, types)):
            return f"{name} is {_kind(value)}, not {what}"
    if op in ("insert", "replace"):
        document = raw.get("fullDocument")
        if not isinstance(document, dict):
            return f"{op} without fullDocument"
        # MongoDB's documentKey is the document's own `_id`: one that is not says nothing
        # about which entity the change is (both are recorded: which would be read?).
        if "_id" not in document or typed_key(document["_id"]) != typed_key(key["_id"]):
            return f"{op} whose fullDocument._id is not its documentKey._id"
    if op == "update":
        return _update_problem(raw.get("updateDescription"))
    return None


# Optional top-level fields of a data change: (name, accepted types, what it must be).
_TYPED_FIELDS: Final[tuple[tuple[str, type | tuple[type, ...], str], ...]] = (
    ("clusterTime", Timestamp, "a timestamp"),
    ("wallTime", datetime, "a date"),
    ("fullDocument", dict, "a document"),
    ("fullDocumentBeforeChange", dict, "a document"),
    ("lsid", dict, "a document"),
    ("txnNumber", int, "an integer"),
)


def _update_problem(ud: Any) -> str | None:
    if ud is None:
        return "update without updateDescription"
    if not isinstance(ud, dict):
        return f"updateDescription is {_kind(ud)}, not a document"
    updated = ud.get("updatedFields")
    if updated is not None and not isinstance(updated, dict):
        return f"updateDescription.updatedFields is {_kind(updated)}, not a document"
    removed = ud.get("removedFields")
    if removed is not None and (
        not isinstance(removed, list) or (removed and not all(isinstance(p, str) for p in removed))
    ):
        return "updateDescription.removedFields is not an array of strings"
    truncated = ud.get("truncatedArrays")
    if truncated is not None and not isinstance(truncated, list):
        return "updateDescription.truncatedArrays is not an array of {field, newSize}"
    if truncated and not all(_is_truncation(t) for t in truncated):
        return "updateDescription.truncatedArrays is not an array of {field, newSize}"
    paths = ud.get("disambiguatedPaths")
    if paths is not None and not isinstance(paths, dict):
        return f"updateDescription.disambiguatedPaths is {_kind(paths)}, not a document"
    for path, parts in (paths or {}).items():
        if not is_component_list(path, parts):
            return (
                f"updateDescription.disambiguatedPaths {path!r} is not the components of its"
                " path (field names as strings, array indexes as integers)"
            )
    return None


def _is_truncation(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("field"), str)
        and isinstance(item.get("newSize"), int)
        and not isinstance(item.get("newSize"), bool)
        and item["newSize"] >= 0
    )


def _kind(value: Any) -> str:
    """A value's kind for a reason (its BSON-ish type name, never the value)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a double"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a document"
    return f"a {type(value).__name__}"


def _short(reason: str) -> str:
    return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 1] + "…"
