"""Turning MongoDB change events into stored events (pure: no I/O, no clock reads).

`Capture` keeps, per batch, the entity heads the next events chain from, and
assigns dense `seq` and per-entity `version`. It never consumes a `seq` for a
change it does not record (filtered, duplicate, DDL, unknown type).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final

from bson import Timestamp

from eventstore import chain
from eventstore.badinput import Rejection
from eventstore.codec import timestamp_str, utc_ms
from eventstore.keys import entity_key, typed_key
from eventstore.model import (
    CREATED,
    DELETED,
    DROPPED,
    ERASED,
    GAP,
    GENESIS_HASH,
    REJECTED,
    RENAMED,
    REPLACED,
    SNAPSHOT,
    STREAM_ENTITY_ID,
    STREAM_KEY,
    UPDATED,
    ChangeEvent,
    EntityHead,
    Event,
    Head,
)
from eventstore.redact import redact_document, redact_update
from eventstore.settings import Settings

log = logging.getLogger(__name__)

OP_TO_TYPE: Final = {"insert": CREATED, "update": UPDATED, "replace": REPLACED, "delete": DELETED}
# Events showExpandedEvents adds (DDL); ignored on purpose, not "unknown".
DDL_TYPES: Final = frozenset(
    {
        "create",
        "createIndexes",
        "dropIndexes",
        "modify",
        "shardCollection",
        "reshardCollection",
        "refineCollectionShardKey",
    }
)


class _SaltPool:
    """Salts cut from larger reads of the OS's CSPRNG (one system call per 256 events)."""

    def __init__(self, per_read: int = 256) -> None:
        self._size = chain.SALT_BYTES * per_read
        self._buffer = b""
        self._at = 0

    def take(self) -> bytes:
        if self._at >= len(self._buffer):
            self._buffer, self._at = os.urandom(self._size), 0
        salt = self._buffer[self._at : self._at + chain.SALT_BYTES]
        self._at += chain.SALT_BYTES
        return salt


_POOL = _SaltPool()


def os_salt(event_id: str) -> bytes:
    """A fresh random salt from the OS's CSPRNG (the id is not used).

    Each salt is used once: the pool never hands out the same bytes twice.
    """
    return _POOL.take()


# Where `random_salt` takes salts from: the OS, except in the test suite, which
# swaps in a deterministic source so that two runs of one workload match byte
# for byte (tests/conftest.py).
salt_source: Callable[[str], bytes] = os_salt


def random_salt(event_id: str) -> bytes:
    """The salt of a new event (from `salt_source`: the OS's CSPRNG in production)."""
    return salt_source(event_id)


class Capture:
    """Builds sealed events in `seq` order from changes, derived events and snapshots.

    Holds the log head and a cache of entity heads; `pending` are the events
    built since the last `take()`. Callers load missing entity heads (one query
    per batch) with `needs_heads` / `add_heads` before building.
    """

    def __init__(
        self,
        settings: Settings,
        head: Head,
        *,
        salts: Callable[[str], bytes] | None = random_salt,
    ) -> None:
        # `salts(event_id)` gives each new event its SALT_BYTES random salt
        # (COMMIT_SCHEME): injected so tests can be deterministic. None seals under
        # PAYLOAD_SCHEME, as before erasure existed (for tests and benchmarks only).
        self._salts = salts
        self._settings = settings
        self._collections = frozenset(settings.collections)
        self._operations = frozenset(settings.operations)
        self.head = head
        self._heads: dict[tuple[str, str], EntityHead | None] = {}
        self.pending: list[Event] = []
        self._pending_ids: set[str] = set()

    # -- cache of entity heads ---------------------------------------------------------
    def needs_heads(self, stream: str, entity_ids: Iterable[Any]) -> list[Any]:
        """Which of these entities' heads are not cached yet."""
        out = []
        seen = set()
        for eid in entity_ids:
            tk = typed_key(eid)
            if (stream, tk) not in self._heads and tk not in seen:
                seen.add(tk)
                out.append(eid)
        return out

    def add_heads(
        self, stream: str, entity_ids: Iterable[Any], found: dict[str, EntityHead]
    ) -> None:
        """Cache loaded heads; entities without one are cached as new."""
        for eid in entity_ids:
            tk = typed_key(eid)
            self._heads[(stream, tk)] = found.get(tk)

    def add_known_heads(self, heads: Iterable[EntityHead]) -> None:
        """Cache heads read elsewhere, never overriding a newer cached one."""
        for h in heads:
            self._heads.setdefault((h.stream, typed_key(h.entity_id)), h)

    def cached_heads(self, stream: str) -> dict[str, EntityHead | None]:
        """Cached heads of one stream by typed key (None = no events yet)."""
        return {tk: h for (s, tk), h in self._heads.items() if s == stream}

    def forget(self) -> None:
        """Drop the cache and pending events (after a failed write)."""
        self._heads.clear()
        self.pending.clear()
        self._pending_ids.clear()

    def take(self) -> list[Event]:
        """The events built since the last call, in `seq` order."""
        out, self.pending = self.pending, []
        self._pending_ids.clear()
        return out

    def is_pending(self, event_id: str) -> bool:
        """True when an event with this id was built in the current batch."""
        return event_id in self._pending_ids

    # -- what a change needs ------------------------------------------------------------
    def stream_of(self, change: ChangeEvent) -> str | None:
        """The captured stream a change belongs to, or None when it is not captured."""
        if change.ns is None or change.ns.coll not in self._collections:
            return None
        return change.ns.coll

    def stream_into(self, change: ChangeEvent) -> str | None:
        """The captured stream a `rename` moves a collection into (same database), or None."""
        to, ns = change.to, change.ns
        if change.operationType != "rename" or to is None or ns is None or to.db != ns.db:
            return None
        return to.coll if to.coll in self._collections else None

    def wants(self, change: ChangeEvent) -> bool:
        """True for a data change of a captured collection and operation type."""
        return (
            change.operationType in OP_TO_TYPE
            and change.operationType in self._operations
            and self.stream_of(change) is not None
            and change.documentKey is not None
            and "_id" in change.documentKey
        )

    # -- building -----------------------------------------------------------------------
    def _append(
        self,
        *,
        event_id: str,
        stream: str,
        entity_id: Any,
        type_: str,
        occurred_at: datetime,
        cluster_time: Timestamp | None,
        recorded_at: datetime,
        **fields: Any,
    ) -> Event:
        tk = typed_key(entity_id)
        prev = self._heads.get((stream, tk))
        version = prev.version + 1 if prev else 1
        draft = Event(
            id=event_id,
            seq=self.head.seq + 1,
            stream=stream,
            entity_id=entity_id,
            entity_key=STREAM_KEY if entity_id is STREAM_ENTITY_ID else entity_key(entity_id),
            version=version,
            type=type_,
            occurred_at=utc_ms(occurred_at),
            cluster_time=cluster_time,
            recorded_at=utc_ms(recorded_at),
            **fields,
        )
        event = chain.seal(
            draft,
            prev_hash=prev.hash if prev else GENESIS_HASH,
            prev_log_hash=self.head.log_hash,
            salt=None if self._salts is None else self._salts(event_id),
        )
        self.head = Head(seq=event.seq, log_hash=event.log_hash)
        self._heads[(stream, tk)] = EntityHead(
            stream=stream,
            entity_id=entity_id,
            entity_key=event.entity_key,
            version=event.version,
            hash=event.hash,
            type=event.type,
            actor=event.actor,
        )
        self.pending.append(event)
        self._pending_ids.add(event.id)
        return event

    def entity_change(self, change: ChangeEvent, *, now: datetime) -> Event:
        """The event of a captured insert / update / replace / delete (call `wants` first)."""
        stream = self.stream_of(change)
        assert stream is not None and change.documentKey is not None
        entity_id = change.documentKey["_id"]
        type_ = OP_TO_TYPE[change.operationType]
        redactions = self._settings.redact
        actor_field = self._settings.actor_field
        document = None
        changes: dict[str, Any] | None = None
        changed: list[str] = []
        actor: Any = None
        before = change.fullDocumentBeforeChange
        if before is not None:
            before = redact_document(before, redactions)
        prev = self._heads.get((stream, typed_key(entity_id)))
        if type_ in (CREATED, REPLACED):
            document = redact_document(change.fullDocument or {}, redactions)
            actor = _field(document, actor_field)
            changed = list(document)
        elif type_ == UPDATED:
            ud = change.updateDescription
            removed = list(ud.removedFields) if ud else []
            # Redaction reads each path's components from `disambiguatedPaths` when it has
            # an entry, and keeps the entries those of the paths stored (redact_update).
            changes = redact_update(
                dict(ud.updatedFields) if ud else {},
                removed,
                [
                    {"field": t.field, "newSize": t.newSize}
                    for t in (ud.truncatedArrays if ud else [])
                ],
                ud.disambiguatedPaths if ud else None,
                redactions,
            )
            updated_r: dict[str, Any] = changes["updatedFields"]
            truncated: list[dict[str, Any]] = changes["truncatedArrays"]
            changed = [*updated_r, *removed, *(t["field"] for t in truncated)]
            actor = _updated_actor(updated_r, removed, actor_field, prev.actor if prev else None)
        elif before is not None:  # deleted: the removed document, as the pre-image shows it
            actor = _field(before, actor_field)
        elif prev is not None:  # deleted: the removed document, as the log last saw it
            actor = prev.actor
        txn = None
        if change.lsid is not None:
            txn = {"lsid": change.lsid, "txnNumber": change.txnNumber}
        return self._append(
            event_id=change.token_id,
            stream=stream,
            entity_id=entity_id,
            type_=type_,
            occurred_at=occurred_at_of(change, now),
            cluster_time=change.clusterTime,
            recorded_at=now,
            document=document,
            changes=changes,
            before=before,
            changed_fields=changed,
            actor=actor,
            txn=txn,
        )

    def snapshot(
        self,
        stream: str,
        doc: dict[str, Any],
        *,
        epoch: Timestamp,
        occurred_at: datetime,
        now: datetime,
    ) -> Event:
        """A `snapshot` event recording a document as found at `epoch`."""
        entity_id = doc["_id"]
        document = redact_document(doc, self._settings.redact)
        return self._append(
            event_id=snapshot_id(epoch, stream, entity_id),
            stream=stream,
            entity_id=entity_id,
            type_=SNAPSHOT,
            occurred_at=occurred_at,
            cluster_time=epoch,
            recorded_at=now,
            document=document,
            changed_fields=list(document),
            actor=_field(document, self._settings.actor_field),
        )

    def inferred_delete(
        self,
        stream: str,
        entity_id: Any,
        *,
        marker: Timestamp,
        cluster_time: Timestamp | None,
        occurred_at: datetime,
        now: datetime,
    ) -> Event:
        """A `deleted` event the service derived (after a gap or a drop), marked inferred."""
        return self._append(
            event_id=f"inferred:{timestamp_str(marker)}:{stream}:{typed_key(entity_id)}",
            stream=stream,
            entity_id=entity_id,
            type_=DELETED,
            occurred_at=occurred_at,
            cluster_time=cluster_time,
            recorded_at=now,
            inferred=True,
        )

    def stream_event(
        self,
        stream: str,
        type_: str,
        *,
        event_id: str,
        payload: dict[str, Any],
        cluster_time: Timestamp | None,
        occurred_at: datetime,
        now: datetime,
        inferred: bool = False,
        actor: Any = None,
    ) -> Event:
        """A stream event (`gap`, `dropped`, `renamed`, `rejected`, `erased`) of its `$stream`
        pseudo-entity; `actor`: who asked for it, where someone did (an erasure's requester)."""
        assert type_ in (GAP, DROPPED, RENAMED, REJECTED, ERASED)
        return self._append(
            event_id=event_id,
            stream=stream,
            entity_id=STREAM_ENTITY_ID,
            type_=type_,
            occurred_at=occurred_at,
            cluster_time=cluster_time,
            recorded_at=now,
            document=payload,
            inferred=inferred,
            actor=actor,
        )

    def rejected(self, rejection: Rejection, *, now: datetime) -> Event:
        """A `rejected` event in the place of a change that cannot be interpreted."""
        occurred = rejection.wall_time
        if occurred is None and rejection.cluster_time is not None:
            occurred = timestamp_time(rejection.cluster_time)
        return self.stream_event(
            rejection.stream,
            REJECTED,
            event_id=rejection.event_id,
            payload=rejection.document,
            cluster_time=rejection.cluster_time,
            occurred_at=occurred or now,
            now=now,
        )


def _field(doc: dict[str, Any] | None, path: str) -> Any:
    """The value at a dotted path of a document, if it is a name or an id (never a structure)."""
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return None if isinstance(value, (dict, list)) else value


def _updated_actor(updated: dict[str, Any], removed: list[str], field: str, previous: Any) -> Any:
    """ACTOR_FIELD after an update: set by it, removed by it, or unchanged (the previous one)."""
    if field in updated:
        value = updated[field]
        return None if isinstance(value, (dict, list)) else value
    parts = field.split(".")
    for n in range(1, len(parts)):
        parent = ".".join(parts[:n])
        if parent in updated:
            return _field(updated[parent], ".".join(parts[n:]))
    if any(field == r or field.startswith(r + ".") for r in removed):
        return None
    return previous


def snapshot_id(epoch: Timestamp, stream: str, entity_id: Any) -> str:
    """The deterministic id of a snapshot event: re-running a snapshot records nothing twice."""
    return f"snapshot:{timestamp_str(epoch)}:{stream}:{typed_key(entity_id)}"


def gap_id(stream: str, gap_from: Timestamp | None) -> str:
    """The deterministic id of a gap event."""
    return f"gap:{stream}:{timestamp_str(gap_from)}"


def occurred_at_of(change: ChangeEvent, now: datetime) -> datetime:
    """`wallTime`, else `clusterTime`'s seconds, else the time it was recorded."""
    if change.wallTime is not None:
        return change.wallTime
    if change.clusterTime is not None:
        return timestamp_time(change.clusterTime)
    return now


def timestamp_time(ts: Timestamp) -> datetime:
    """A cluster time's wall-clock second (UTC)."""
    return ts.as_datetime()
