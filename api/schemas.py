"""Response bodies: the JSON shapes of DESIGN.md as msgspec Structs (they are the OpenAPI schema).

Values are already JSON-ready where BSON has no JSON form (`eventstore.render`):
`entity_id` relaxed Extended JSON, other ObjectIds hex, times RFC 3339 UTC with
milliseconds, Decimal128 as a string, binary as base64.
"""

from __future__ import annotations

from typing import Any

import msgspec


class FieldChangeOut(msgspec.Struct, kw_only=True):
    path: str
    op: str
    before: Any = None
    after: Any = None
    # MongoDB's $type aliases of both sides, only on a `changed` entry whose BSON types
    # differ (absent otherwise): `Decimal128("1.0")` and `"1.0"` render alike.
    before_type: str | msgspec.UnsetType = msgspec.UNSET
    after_type: str | msgspec.UnsetType = msgspec.UNSET
    # The path's components (field names as strings, array indexes as integers), only when
    # its dotted form is ambiguous: a field name holds a dot or looks like an index.
    parts: list[str | int] | msgspec.UnsetType = msgspec.UNSET


class EventOut(msgspec.Struct, kw_only=True):
    seq: int
    id: str
    stream: str
    entity_key: str
    typed_key: str
    entity_id: Any
    version: int
    type: str
    occurred_at: str
    # {"$timestamp": {"t", "i"}}, or None for an event with no clusterTime (a file's line)
    cluster_time: Any
    recorded_at: str
    actor: Any
    inferred: bool
    document: dict[str, Any] | None
    changes: dict[str, Any] | None
    before: dict[str, Any] | None
    changed_fields: list[str]
    txn: dict[str, Any] | None
    hash: str
    prev_hash: str
    log_hash: str
    # 1: the hash covers the payload; 2: a salted commitment of it (erasable).
    hash_scheme: int = 1
    salt: str | None = None
    commit: str | None = None
    erased: bool = False
    erased_by: int | None = None


class HistoryEventOut(EventOut, kw_only=True):
    diff: list[FieldChangeOut]


class HistoryOut(msgspec.Struct, kw_only=True):
    stream: str
    entity_key: str
    events: list[HistoryEventOut]
    next: str | None


class EventsPage(msgspec.Struct, kw_only=True):
    events: list[EventOut]
    next: str | None


class GapOut(msgspec.Struct, kw_only=True):
    from_: str = msgspec.field(name="from")
    to: str


class FindingOut(msgspec.Struct, kw_only=True):
    version: int
    kind: str
    detail: str


class StateOut(msgspec.Struct, kw_only=True):
    stream: str
    entity_key: str
    version: int
    as_of: str
    exists: bool
    uncertain: bool
    gap: GapOut | None
    document: dict[str, Any] | None
    findings: list[FindingOut] = []
    erased: bool = False


class DiffOut(msgspec.Struct, kw_only=True):
    from_version: int
    to_version: int
    changes: list[FieldChangeOut]
    # True when a version's data was erased: `changes` is empty because it cannot be told.
    erased: bool = False


class StreamOut(msgspec.Struct, kw_only=True):
    stream: str
    entities: int
    events: int
    last_seq: int
    last_event_at: str | None


class EntityOut(msgspec.Struct, kw_only=True):
    entity_key: str
    entity_id: Any
    version: int
    exists: bool
    last_type: str
    last_event_at: str


class EntitiesPage(msgspec.Struct, kw_only=True):
    items: list[EntityOut]
    next: str | None


class ErasedEventOut(msgspec.Struct, kw_only=True):
    seq: int
    version: int
    erased_by: int


class EntityVerdictOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    valid: bool
    events_checked: int
    first_invalid_version: int | None
    reason: str | None
    # null before the first checkpoint (required: always encoded, null included).
    checkpoint: ScopedCheckpointCheckOut | None
    erased: list[ErasedEventOut] = []


class InvalidEntityOut(msgspec.Struct, kw_only=True):
    entity_key: str
    first_invalid_version: int | None
    reason: str | None


class StreamVerdictOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    valid: bool
    entities_checked: int
    events_checked: int
    invalid: list[InvalidEntityOut]
    # null before the first checkpoint (required: always encoded, null included).
    checkpoint: ScopedCheckpointCheckOut | None
    events_erased: int = 0


class HeadOut(msgspec.Struct, kw_only=True):
    seq: int
    log_hash: str


class CheckpointCheckOut(msgspec.Struct, kw_only=True):
    """The latest stored checkpoint held to the events (its signature named, not checked)."""

    size: int
    root: str
    signed: bool
    signed_by: str | None
    matches: bool
    reason: str


class ScopedCheckpointCheckOut(CheckpointCheckOut, kw_only=True):
    """The latest stored checkpoint held to a stream's or entity's newest event inside it."""

    seq: int | None  # that event; null while none of its events is inside (`pending`)
    pending: bool


class LogVerdictOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    valid: bool
    events_checked: int
    first_invalid_seq: int | None
    reason: str | None
    head: HeadOut
    head_matches: bool | None
    # null before the first checkpoint (required: always encoded, null included).
    checkpoint: CheckpointCheckOut | None
    events_erased: int = 0


class ProjectionOut(msgspec.Struct, kw_only=True):
    name: str
    position: int
    lag: int
    state: str
    rebuilt_at: str | None
    failed_seq: int | None
    error: str | None
    # The instance holding its lease (`projection:<name>`), if one does.
    held_by: str | None = None
    rebuild_needed: bool = False
    problems: int = 0
    orders_without_customer: int | None = None
    # Entity states its runner read from history (STATE_CACHE did not hold them).
    state_reads: int = 0


class RowsPage(msgspec.Struct, kw_only=True):
    items: list[dict[str, Any]]
    next: str | None


class JobCreated(msgspec.Struct, kw_only=True):
    job: str


class JobOut(msgspec.Struct, kw_only=True):
    job: str
    projection: str
    state: str
    processed: int
    total: int
    requested_at: str | None
    started_at: str | None
    finished_at: str | None
    error: str | None
    workers: int = 1
    partitions: list[PartitionOut] = []
    # What the job did otherwise than asked, and why (no merge: one worker).
    note: str | None = None


class PartitionOut(msgspec.Struct, kw_only=True):
    index: int
    state: str
    processed: int
    total: int
    # The instance that claimed it last, its claim's expiry, how many claims it has had.
    owner: str | None = None
    expires_at: str | None = None
    attempts: int = 0
    error: str | None = None
    # The seq the projection's code failed at, when it did (`error` then says `at seq N: ...`).
    failed_seq: int | None = None


class HealthOut(msgspec.Struct, kw_only=True):
    status: str
    detail: str


class WorkerOut(msgspec.Struct, kw_only=True):
    """A background worker of one instance (`GET /v1/workers`, `eventstore status --json`)."""

    name: str
    kind: str
    instance: str
    state: str
    since: str
    restarts: int
    last_error: str | None
    position: int | None
    lag: int | None
    lag_seconds: float | None


class WorkerStateOut(msgspec.Struct, kw_only=True):
    name: str
    state: str
    last_error: str | None


class NotReady(msgspec.Struct, kw_only=True):
    """`/health/ready`'s 503: a problem document with this process's workers."""

    type: str
    title: str
    status: int
    detail: str
    workers: list[WorkerStateOut]


class CheckpointSummaryOut(msgspec.Struct, kw_only=True):
    """A checkpoint as listed: the size a proof can name, and what was made there."""

    size: int
    root: str
    signed: bool
    created_at: str
    cosignatures: int


class CheckpointPageOut(msgspec.Struct, kw_only=True):
    items: list[CheckpointSummaryOut]
    next: str | None
