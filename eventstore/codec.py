"""The one place BSON values cross into and out of the event model.

Stored documents and the hashed (canonical) form share one layout, `event_doc`,
so what is stored is exactly what is verified. Datetimes are UTC at millisecond
precision, as MongoDB stores them; a naive datetime read back (mongomock, or a
client without `tz_aware`) is taken as UTC.
"""

from __future__ import annotations

import base64
import logging
import math
import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from bson import Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.codec_options import DatetimeConversion
from bson.datetime_ms import DatetimeMS
from bson.json_util import RELAXED_JSON_OPTIONS, JSONMode, JSONOptions

from eventstore.model import PAYLOAD_SCHEME, SCHEMA_VERSION, Checkpoint, Event, Head

log = logging.getLogger(__name__)

# A BSON date is any signed 64-bit count of milliseconds; Python's datetime holds years
# 1-9999 only. Decoded with DATETIME_AUTO, a date outside them is a `DatetimeMS` (its
# milliseconds, exactly), every other date the aware UTC datetime it always was. The
# change source, the store and ndjson input all read dates so: MongoDB stores and streams
# `new Date(8640000000000000)` (JavaScript's last date, a common "never").
DATETIMES: Final = DatetimeConversion.DATETIME_AUTO

# Extended JSON for ndjson input: canonical and relaxed are both accepted;
# datetimes come back aware (UTC), a date beyond datetime's years as DatetimeMS.
EXTJSON_OPTIONS: JSONOptions = JSONOptions(
    json_mode=JSONMode.RELAXED, tz_aware=True, tzinfo=UTC, datetime_conversion=DATETIMES
)


def unheld_wall_time(change: dict[str, Any], source: str) -> DatetimeMS | None:
    """Take out of a change a `wallTime` outside years 1-9999 (a DatetimeMS), and return it.

    An event's `occurred_at` is a time people query and read in RFC 3339: without a
    wallTime it is the change's clusterTime, as for a server before 6.0 that sends
    none. Said at WARNING (a server clock that far off is worth a look); None when the
    change's wallTime is a datetime, or absent.
    """
    wall = change.get("wallTime")
    if not isinstance(wall, DatetimeMS):
        return None
    del change["wallTime"]
    token = change.get("_id")
    log.warning(
        "%s: the change %s has a wallTime outside years 1-9999 (%d ms since 1970):"
        " its occurred_at is its clusterTime",
        source,
        token.get("_data") if isinstance(token, dict) else None,
        int(wall),
    )
    return wall


def utc_ms(value: datetime) -> datetime:
    """`value` as an aware UTC datetime truncated to milliseconds (MongoDB's precision)."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


# The last millisecond a datetime holds (9999-12-31T23:59:59.999Z): no stored time is later.
LAST_MS: Final = datetime.max.replace(microsecond=999_000, tzinfo=UTC)
# Past it: later than every stored time, and earlier than none.
PAST_LAST_MS: Final = datetime.max.replace(tzinfo=UTC)


def ceil_ms(value: datetime) -> datetime:
    """`value` as an aware UTC datetime rounded up to the millisecond.

    A time bound compared with stored (millisecond) times keeps its meaning this
    way: `t >= x` and `t < x` hold exactly when they hold for `ceil_ms(x)`.

    A time inside the last millisecond a datetime holds (`9999-12-31T23:59:59.9991Z`)
    rounds up past year 9999: it is PAST_LAST_MS (`…59.999999Z`) instead, after every
    stored time and before none, so `t >= x` holds for no stored time and `t < x` for
    all of them, as for `x` itself. (A store that cuts a query's dates to milliseconds,
    as MongoDB does, would read it as LAST_MS: there, a bound past LAST_MS is better
    sent as "none matches" for `since` and as no bound for `until`.)
    """
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    below = value.microsecond % 1000
    if not below:
        return value
    if value > LAST_MS:
        return PAST_LAST_MS
    return value + timedelta(microseconds=1000 - below)


def as_utc(value: Any) -> Any:
    """A datetime made aware UTC; other values unchanged."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def event_doc(event: Event, *, with_hashes: bool = True) -> dict[str, Any]:
    """The stored BSON document of an event, fields in canonical order.

    Without hashes it is the input of the entity hash (see `chain.py`).
    """
    doc: dict[str, Any] = {
        "_id": event.id,
        "seq": Int64(event.seq),
        "stream": event.stream,
        "entity_id": event.entity_id,
        "entity_key": event.entity_key,
        "version": Int64(event.version),
        "type": event.type,
        "occurred_at": event.occurred_at,
        "cluster_time": event.cluster_time,
        "recorded_at": event.recorded_at,
        "document": event.document,
        "changes": event.changes,
        "before": event.before,
        "changed_fields": event.changed_fields,
        "actor": event.actor,
        "inferred": event.inferred,
        "txn": event.txn,
        "prev_hash": event.prev_hash,
        "schema": event.schema,
    }
    if event.hash_scheme != PAYLOAD_SCHEME:
        # Fields a PAYLOAD_SCHEME event never carries, so its stored and hashed
        # documents stay byte for byte what they were before erasure existed.
        doc["hash_scheme"] = event.hash_scheme
        doc["salt"] = event.salt
        doc["commit"] = event.commit
        if with_hashes:
            doc["erased_by"] = None if event.erased_by is None else Int64(event.erased_by)
    if with_hashes:
        doc["hash"] = event.hash
        doc["log_hash"] = event.log_hash
    return doc


def committed_doc(event: Event) -> dict[str, Any]:
    """The input of a COMMIT_SCHEME event's hash: `event_doc` without hashes, with the
    payload (document, changes, before) and the salt left out; `commit` stands for them.

    Built directly (same order as `event_doc`): it is computed for every event captured.
    """
    return {
        "_id": event.id,
        "seq": Int64(event.seq),
        "stream": event.stream,
        "entity_id": event.entity_id,
        "entity_key": event.entity_key,
        "version": Int64(event.version),
        "type": event.type,
        "occurred_at": event.occurred_at,
        "cluster_time": event.cluster_time,
        "recorded_at": event.recorded_at,
        "changed_fields": event.changed_fields,
        "actor": event.actor,
        "inferred": event.inferred,
        "txn": event.txn,
        "prev_hash": event.prev_hash,
        "schema": event.schema,
        "hash_scheme": event.hash_scheme,
        "commit": event.commit,
    }


def payload_doc(event: Event) -> dict[str, Any]:
    """What a COMMIT_SCHEME event's `commit` covers (after the salt)."""
    return {"document": event.document, "changes": event.changes, "before": event.before}


def event_from_doc(doc: dict[str, Any]) -> Event:
    """The event a stored document holds (tolerant of fields added later)."""
    return Event(
        id=doc["_id"],
        seq=int(doc["seq"]),
        stream=doc["stream"],
        entity_id=doc.get("entity_id"),
        entity_key=doc["entity_key"],
        version=int(doc["version"]),
        type=doc["type"],
        occurred_at=as_utc(doc["occurred_at"]),
        cluster_time=doc.get("cluster_time"),
        recorded_at=as_utc(doc["recorded_at"]),
        document=doc.get("document"),
        changes=doc.get("changes"),
        before=doc.get("before"),
        changed_fields=list(doc.get("changed_fields") or []),
        actor=doc.get("actor"),
        inferred=bool(doc.get("inferred", False)),
        txn=doc.get("txn"),
        prev_hash=doc.get("prev_hash", ""),
        hash=doc.get("hash", ""),
        log_hash=doc.get("log_hash", ""),
        schema=int(doc.get("schema", SCHEMA_VERSION)),
        hash_scheme=int(doc.get("hash_scheme", PAYLOAD_SCHEME)),
        salt=doc.get("salt"),
        commit=doc.get("commit"),
        erased_by=None if doc.get("erased_by") is None else int(doc["erased_by"]),
    )


def head_doc(head: Head) -> dict[str, Any]:
    """A head as a BSON sub-document."""
    return {"seq": Int64(head.seq), "log_hash": head.log_hash}


def head_from_doc(doc: dict[str, Any] | None) -> Head:
    """A head from its sub-document (empty log when absent)."""
    if not doc:
        return Head()
    return Head(seq=int(doc["seq"]), log_hash=str(doc["log_hash"]))


def checkpoint_doc(cp: Checkpoint) -> dict[str, Any]:
    """A checkpoint as stored (the resume token is kept whole)."""
    return {
        "_id": cp.name,
        "token": cp.token,
        "start_at": cp.start_at,
        "last_cluster_time": cp.last_cluster_time,
        "phase": cp.phase,
        "epoch": cp.epoch,
        "gap_from": cp.gap_from,
        "invalidated": cp.invalidated,
        "head": head_doc(cp.head),
        "updated_at": cp.updated_at,
    }


def checkpoint_from_doc(doc: dict[str, Any]) -> Checkpoint:
    """A checkpoint from its stored document."""
    return Checkpoint(
        name=doc["_id"],
        token=doc.get("token"),
        start_at=doc.get("start_at"),
        last_cluster_time=doc.get("last_cluster_time"),
        phase=doc.get("phase", "streaming"),
        epoch=doc.get("epoch"),
        gap_from=doc.get("gap_from"),
        invalidated=bool(doc.get("invalidated", False)),
        head=head_from_doc(doc.get("head")),
        updated_at=as_utc(doc.get("updated_at")),
    )


def timestamp_str(ts: Timestamp | None) -> str:
    """A cluster time as `<seconds>.<increment>` (used in derived event ids)."""
    if ts is None:
        return "0.0"
    return f"{ts.time}.{ts.inc}"


def to_jsonable(value: Any) -> Any:
    """A BSON value as plain JSON data for people and the API.

    ObjectId -> hex, datetime -> RFC 3339 UTC with milliseconds, Decimal128 ->
    string, binary (every subtype, a UUID's 4 included) -> base64. Values JSON
    has no form for take their Extended JSON one, never another value's: a double
    NaN or ±infinity is `{"$numberDouble": "NaN"}` (not null), MinKey is
    `{"$minKey": 1}` (not the string "MinKey()"), a regular expression
    `{"$regex", "$options"}` with its option letters, a Timestamp
    `{"$timestamp": {"t", "i"}}` (not the sub-document `{t, i}`), a date outside
    years 1-9999, which has no RFC 3339 form, `{"$date": {"$numberLong": "<ms>"}}`.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    # Inline below: a plain value, or a finite float (`v - v` is NaN for NaN and ±inf).
    if kind is dict:
        return {
            (k if type(k) is str else str(k)): (
                v
                if type(v) in _PLAIN or v is None or (type(v) is float and v - v == 0)
                else to_jsonable(v)
            )
            for k, v in value.items()
        }
    if kind is list or kind is tuple:
        return [
            v
            if type(v) in _PLAIN or v is None or (type(v) is float and v - v == 0)
            else to_jsonable(v)
            for v in value
        ]
    return _to_jsonable_other(value)


# Values that are their own JSON form (`bool` before `int`: exact types only). Not float:
# NaN and the infinities have none (a JSON encoder writes them as null).
_PLAIN: Final = frozenset({str, bool, int})
_NON_FINITE: Final = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
# Python's `re` flags as MongoDB's regular expression options, in Extended JSON's order.
_REGEX_OPTIONS: Final = (
    (re.IGNORECASE, "i"),
    (re.LOCALE, "l"),
    (re.MULTILINE, "m"),
    (re.DOTALL, "s"),
    (re.UNICODE, "u"),
    (re.VERBOSE, "x"),
)


def _to_jsonable_other(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$numberDouble": _NON_FINITE[repr(value)]}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Code):  # a str subclass: before str
        code: dict[str, Any] = {"$code": str(value)}
        if value.scope is not None:
            code["$scope"] = to_jsonable(value.scope)
        return code
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, DatetimeMS):
        return {"$date": {"$numberLong": str(int(value))}}
    if isinstance(value, Decimal128):
        return str(value.to_decimal())
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Timestamp):
        return {"$timestamp": {"t": value.time, "i": value.inc}}
    if isinstance(value, uuid.UUID):  # stored as binary subtype 4: its 16 bytes
        return base64.b64encode(value.bytes).decode()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Regex):
        return {"$regex": value.pattern, "$options": _regex_options(value.flags)}
    if isinstance(value, MinKey):
        return {"$minKey": 1}
    if isinstance(value, MaxKey):
        return {"$maxKey": 1}
    if isinstance(value, DBRef):
        ref: dict[str, Any] = {"$ref": value.collection, "$id": to_jsonable(value.id)}
        if value.database is not None:
            ref["$db"] = value.database
        return ref
    return str(value)


def _regex_options(flags: int | str) -> str:
    """A regular expression's options as MongoDB's letters (`im`), whatever form bson gave."""
    if isinstance(flags, str):
        return "".join(sorted(flags))
    return "".join(letter for flag, letter in _REGEX_OPTIONS if flags & flag)


def rfc3339(value: datetime) -> str:
    """`2026-11-26T14:03:00.123Z`: UTC, milliseconds."""
    if value.tzinfo is not None and value.utcoffset():
        value = value.astimezone(UTC)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:"
        f"{value.minute:02d}:{value.second:02d}.{value.microsecond // 1000:03d}Z"
    )


__all__ = [
    "DATETIMES",
    "EXTJSON_OPTIONS",
    "LAST_MS",
    "PAST_LAST_MS",
    "RELAXED_JSON_OPTIONS",
    "as_utc",
    "ceil_ms",
    "checkpoint_doc",
    "checkpoint_from_doc",
    "event_doc",
    "event_from_doc",
    "head_doc",
    "head_from_doc",
    "rfc3339",
    "timestamp_str",
    "to_jsonable",
    "unheld_wall_time",
    "utc_ms",
]
