"""Builders of sealed events for tests: real hashes, dense seq and versions when you want them."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from bson import Decimal128, Timestamp

from eventstore.chain import seal
from eventstore.keys import entity_key, typed_key
from eventstore.model import (
    CREATED,
    GENESIS_HASH,
    REPLACED,
    SNAPSHOT,
    STREAM_KEY,
    STREAM_TYPES,
    UPDATED,
    Event,
    Head,
)
from eventstore.subscription_records import ParkedEvent

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_DOCUMENT_TYPES = {CREATED, REPLACED, SNAPSHOT}


def make_event(
    *,
    seq: int,
    entity_id: Any,
    version: int,
    type: str | None = None,
    stream: str = "orders",
    id: str | None = None,
    prev_hash: str = GENESIS_HASH,
    prev_log_hash: str = GENESIS_HASH,
    **fields: Any,
) -> Event:
    """One sealed event; `type` defaults to created (version 1) or updated.

    Times follow `seq` at millisecond precision (what MongoDB keeps), so an
    event reads back equal from every adapter. Stream types (gap, ...) belong
    to the `$stream` pseudo-entity. `fields` override any other Event field.
    """
    kind = type or (CREATED if version == 1 else UPDATED)
    stream_event = kind in STREAM_TYPES
    key = STREAM_KEY if stream_event else entity_key(entity_id)
    at = T0 + timedelta(seconds=seq)
    values: dict[str, Any] = {
        "id": id or f"ev:{stream}:{typed_key(entity_id)}:{version}",
        "seq": seq,
        "stream": stream,
        "entity_id": None if stream_event else entity_id,
        "entity_key": key,
        "version": version,
        "type": kind,
        "occurred_at": at,
        "cluster_time": Timestamp(int(at.timestamp()), 1),
        "recorded_at": at + timedelta(milliseconds=1),
        "actor": "alice",
    }
    if kind in _DOCUMENT_TYPES:
        values["document"] = {"_id": entity_id, "status": "pending", "total": Decimal128("9.90")}
    elif kind == UPDATED:
        values["changes"] = {
            "updatedFields": {"status": f"v{version}"},
            "removedFields": [],
            "truncatedArrays": [],
        }
        values["changed_fields"] = ["status"]
    values.update(fields)
    return seal(Event(**values), prev_hash=prev_hash, prev_log_hash=prev_log_hash)


class LogBuilder:
    """Builds a valid log one event at a time: dense seq, dense versions, both chains linked."""

    def __init__(self) -> None:
        self.head = Head()
        self._entities: dict[tuple[str, str], tuple[int, str]] = {}

    def next(self, entity_id: Any, type: str | None = None, **kw: Any) -> Event:
        """The next event of `entity_id` (None with a stream type: the `$stream` pseudo-entity)."""
        stream = kw.get("stream", "orders")
        key = (stream, typed_key(entity_id))
        version, prev_hash = self._entities.get(key, (0, GENESIS_HASH))
        event = make_event(
            seq=self.head.seq + 1,
            entity_id=entity_id,
            version=version + 1,
            type=type,
            prev_hash=prev_hash,
            prev_log_hash=self.head.log_hash,
            **kw,
        )
        self._entities[key] = (event.version, event.hash)
        self.head = Head(seq=event.seq, log_hash=event.log_hash)
        return event

    def many(self, *entity_ids: Any) -> list[Event]:
        """The next event of each entity, in order."""
        return [self.next(entity_id) for entity_id in entity_ids]


# The event JSON shape of DESIGN.md, in order (+ diff in histories).
EVENT_KEYS = [
    "seq",
    "id",
    "stream",
    "entity_key",
    "typed_key",
    "entity_id",
    "version",
    "type",
    "occurred_at",
    "cluster_time",
    "recorded_at",
    "actor",
    "inferred",
    "document",
    "changes",
    "before",
    "changed_fields",
    "txn",
    "hash",
    "prev_hash",
    "log_hash",
    "hash_scheme",
    "salt",
    "commit",
    "erased",
    "erased_by",
    "diff",
]

# Every read method of the two ports a reconstruction may use (counted in tests and benchmarks).
READS = {
    "events": (
        "read_entity",
        "read",
        "existing_entity_ids",
        "existing_ids",
        "entity_heads",
        "live_entities",
        "head",
    ),
    "snapshots": ("latest",),
}


def fixed_salt(event_id: str) -> bytes:
    """A deterministic salt per event id (tests only: production salts are random)."""
    return hashlib.sha256(b"test salt " + event_id.encode()).digest()


def resealed(events: list[Event]) -> list[Event]:
    """The events renumbered and every hash recomputed: what a writer with full access to the database can do."""
    out: list[Event] = []
    entity: dict[tuple[str, str], str] = {}
    for n, e in enumerate(events, start=1):
        key = (e.stream, typed_key(e.entity_id))
        prev_log = out[-1].log_hash if out else GENESIS_HASH
        sealed = seal(
            msgspec.structs.replace(e, seq=n),
            prev_hash=entity.get(key, GENESIS_HASH),
            prev_log_hash=prev_log,
        )
        entity[key] = sealed.hash
        out.append(sealed)
    return out


def parked_event(name: str, seq: int, **fields: Any) -> ParkedEvent:
    """A parked event of subscription `name` at `seq` (an update of entity `seq`), fields overridable."""
    base: dict[str, Any] = {
        "stream": "orders",
        "entity_key": str(seq),
        "type": "updated",
        "attempts": 7,
        "last_error": "the receiver answered 400",
        "parked_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    return ParkedEvent(name=name, seq=seq, **{**base, **fields})
