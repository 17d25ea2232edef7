"""The event model: stored events, MongoDB change events and small value types (pure)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final

import msgspec
from bson import Timestamp

SCHEMA_VERSION: Final = 1

# Entity event types (past tense, stored in the data; never rename).
CREATED: Final = "created"
UPDATED: Final = "updated"
REPLACED: Final = "replaced"
DELETED: Final = "deleted"
SNAPSHOT: Final = "snapshot"
# Stream event types.
GAP: Final = "gap"
DROPPED: Final = "dropped"
RENAMED: Final = "renamed"
# A change from the source that could not be interpreted, recorded in its place
# (EVENTSTORE_BAD_INPUT=record); its document says where it was and why, never what it held.
REJECTED: Final = "rejected"
# An erasure carried out: the payload and salt of an entity's events were removed
# (document: {entity_key, typed_key, events_erased, reason, actor, request}; never the data;
# `typed_key` since 2026-12-07).
ERASED: Final = "erased"

ENTITY_TYPES: Final = frozenset({CREATED, UPDATED, REPLACED, DELETED, SNAPSHOT})
STREAM_TYPES: Final = frozenset({GAP, DROPPED, RENAMED, REJECTED, ERASED})
EVENT_TYPES: Final = ENTITY_TYPES | STREAM_TYPES
# Types after which the entity has a document.
LIVE_TYPES: Final = frozenset({CREATED, UPDATED, REPLACED, SNAPSHOT})
# Events that write a whole document over the one before: every field may have changed, and
# their `changed_fields` (the new document's) cannot name what they removed.
REWRITE_TYPES: Final = frozenset({REPLACED, SNAPSHOT})

# The reserved entity key of the per-stream pseudo-entity (gap, dropped, renamed, rejected).
STREAM_KEY: Final = "$stream"
# The stream of a rejected change whose collection cannot be told (a line that is not JSON).
SOURCE_STREAM: Final = "$source"
# Its entity_id: null. A captured change whose `_id` is null (MongoDB allows one per
# collection) is bad input (`eventstore.badinput`): it would join this chain otherwise.
STREAM_ENTITY_ID: Final = None

# MongoDB's largest document (`maxBsonObjectSize` in `hello`, the same since 1.8): what
# one stored event (`eventstore.mongo.payload_parts`) or read-model row may be.
MAX_DOCUMENT_BYTES: Final = 16 * 1024 * 1024

# The largest seq (or version, or tree size) a request may name: BSON stores 64-bit
# integers, so a larger one could not even be queried.
MAX_SEQ: Final = 2**62

# The hash an entity's first event chains from, and the log's first event too.
GENESIS_HASH: Final = "0" * 64
# What a hash is written as (`hash`, `prev_hash`, `log_hash`): 64 lowercase hex digits.
HASH_PATTERN: Final = re.compile(r"[0-9a-f]{64}")

# How an event's `hash` covers its payload (see `chain.py`). 1: the payload itself
# (logs written before erasure existed; such events cannot be erased). 2: a salted
# commitment of it, so payload and salt can be removed while every hash stays valid.
PAYLOAD_SCHEME: Final = 1
COMMIT_SCHEME: Final = 2


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One stored event: immutable, ordered by `seq`, chained per entity and globally.

    Field order is the canonical order used for hashing (see `chain.py`).
    """

    id: str
    seq: int
    stream: str
    entity_id: Any
    entity_key: str
    version: int
    type: str
    occurred_at: datetime
    cluster_time: Timestamp | None
    recorded_at: datetime
    document: dict[str, Any] | None = None
    changes: dict[str, Any] | None = None
    before: dict[str, Any] | None = None
    changed_fields: list[str] = []
    actor: Any = None
    inferred: bool = False
    txn: dict[str, Any] | None = None
    prev_hash: str = GENESIS_HASH
    hash: str = ""
    log_hash: str = ""
    schema: int = SCHEMA_VERSION
    # COMMIT_SCHEME only: `commit = SHA-256(salt ‖ BSON {document, changes, before})`
    # (hex); the hash covers `commit`, not the payload. An erasure removes payload
    # and `salt` and sets `erased_by` to the seq of its `erased` event (not hashed).
    hash_scheme: int = PAYLOAD_SCHEME
    salt: str | None = None
    commit: str | None = None
    erased_by: int | None = None

    @property
    def erased(self) -> bool:
        """True once an erasure removed this event's payload (the hashes still hold)."""
        return self.erased_by is not None

    @property
    def is_stream_event(self) -> bool:
        """True for gap, dropped, renamed and rejected events of the `$stream` pseudo-entity."""
        return self.entity_key == STREAM_KEY and self.type in STREAM_TYPES


class Head(msgspec.Struct, frozen=True, kw_only=True):
    """The newest position of the log: its `seq` and `log_hash` (seq 0 = empty)."""

    seq: int = 0
    log_hash: str = GENESIS_HASH


class EntityHead(msgspec.Struct, frozen=True, kw_only=True):
    """The newest event of one entity: what the next event chains from."""

    stream: str
    entity_id: Any
    entity_key: str
    version: int
    hash: str
    type: str
    # ACTOR_FIELD of the document after this event: an update that leaves the
    # field alone (MongoDB omits unchanged values) keeps the previous actor.
    actor: Any = None

    @property
    def exists(self) -> bool:
        """True when the entity has a document after its newest event."""
        return self.type in LIVE_TYPES


class EventQuery(msgspec.Struct, frozen=True, kw_only=True):
    """An audit query over the log; every given criterion must hold (AND).

    `entity_ids` (an entity's `_id`, resolved from its key by the caller) needs
    `stream`. `types` matches any of them. `field` matches events whose
    `changed_fields` hold that dotted path, a path beneath it or a path above it,
    on whole segments (`customer` matches `customer.email`, never `customerNote`;
    `customer.name` matches `customer` set whole, and the insert that wrote it), as
    a subscription's `fields` does, and every `replaced`, `snapshot` or `deleted`
    event, inferred ones too (`eventstore.field_match.WHOLE_DOCUMENT_TYPES`: they
    write or remove the whole document, which their `changed_fields` cannot say).
    `actor` is text: it matches that string, and the number (by value: `42` is
    NumberLong 42 and 42.0 too), ObjectId (24 hex digits) or boolean (`true`) it
    spells (`eventstore.actor_text`). `since` is inclusive and `until` exclusive,
    both on `occurred_at`.
    """

    stream: str | None = None
    entity_ids: tuple[Any, ...] | None = None
    types: tuple[str, ...] = ()
    field: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class StreamStats(msgspec.Struct, frozen=True, kw_only=True):
    """One stream at a glance: entities (not counting `$stream`), events, newest event."""

    stream: str
    entities: int
    events: int
    last_seq: int
    last_event_at: datetime | None


class EntitySummary(msgspec.Struct, frozen=True, kw_only=True):
    """An entity's newest event, for listing a stream's entities most recently changed first.

    `entity_key` is the key that names this entity when given back (`keys.listed_key`):
    its entity key as it is now, whatever key its events were stored with.
    """

    entity_key: str
    entity_id: Any
    version: int
    exists: bool
    last_type: str
    last_event_at: datetime
    last_seq: int


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """Where a consumer stands.

    For the ingester: the whole resume token (opaque) and the log head it covers.
    `phase` is "snapshot" while an initial snapshot (or a re-snapshot after a gap)
    is being recorded with `epoch` as its start cluster time, "streaming" after.
    """

    name: str
    token: dict[str, Any] | None = None
    start_at: Timestamp | None = None
    last_cluster_time: Timestamp | None = None
    phase: str = "streaming"
    epoch: Timestamp | None = None
    gap_from: Timestamp | None = None
    invalidated: bool = False
    head: Head = Head()
    updated_at: datetime | None = None


class Lease(msgspec.Struct, frozen=True, kw_only=True):
    """Who holds a role, until when."""

    role: str
    owner: str
    expires_at: datetime


class ResumePoint(msgspec.Struct, frozen=True, kw_only=True):
    """Where a change source starts; at most one field is set (MongoDB requires it)."""

    resume_after: dict[str, Any] | None = None
    start_after: dict[str, Any] | None = None
    start_at_operation_time: Timestamp | None = None


class Origin(msgspec.Struct, frozen=True, kw_only=True):
    """Where one change of a batch came from, for a source that can say more than the change.

    `position` names it in the source (`line 51`), `sha256` is the hash of its raw
    input (the line's bytes). `unreadable` says why the input is no change at all
    (not JSON); its slot in `ChangeBatch.changes` then holds an empty document.
    """

    position: str
    sha256: str
    unreadable: str | None = None


class ChangeBatch(msgspec.Struct, frozen=True, kw_only=True):
    """Changes read from a source in one round trip, and the token after them.

    `resume_token` is the postBatchResumeToken (or the last change's token): saving
    it after the batch is stored lets an idle stream advance without changes.
    `origins`, when given, has one entry per change (a file source's line numbers);
    without it a change is placed by the resume tokens around it. `filtered` counts the
    changes the source read and left out, as a change stream's `$match` leaves them
    out (a file's lines of a collection not captured, or of another database).
    """

    changes: list[dict[str, Any]]
    resume_token: dict[str, Any] | None
    cluster_time: Timestamp | None = None
    origins: list[Origin] | None = None
    filtered: int = 0


class TruncatedArray(msgspec.Struct, frozen=True, kw_only=True):
    """`{field, newSize}`: the array at `field` was cut to its first `newSize` elements."""

    field: str
    newSize: int


class UpdateDescription(msgspec.Struct, frozen=True, kw_only=True):
    """What an `update` change did, as MongoDB reports it."""

    updatedFields: dict[str, Any] = {}
    removedFields: list[str] = []
    truncatedArrays: list[TruncatedArray] = []
    disambiguatedPaths: dict[str, list[str | int]] | None = None


class Namespace(msgspec.Struct, frozen=True, kw_only=True):
    """`ns`: database and (absent for dropDatabase) collection."""

    db: str
    coll: str | None = None


class ChangeEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A MongoDB change event. Unknown fields are ignored, unknown types kept as strings."""

    token: dict[str, Any]
    operationType: str
    clusterTime: Timestamp | None = None
    wallTime: datetime | None = None
    ns: Namespace | None = None
    documentKey: dict[str, Any] | None = None
    fullDocument: dict[str, Any] | None = None
    fullDocumentBeforeChange: dict[str, Any] | None = None
    updateDescription: UpdateDescription | None = None
    to: Namespace | None = None
    lsid: dict[str, Any] | None = None
    txnNumber: int | None = None

    @property
    def token_id(self) -> str:
        """The resume token's `_data` string: the change's identity."""
        data = self.token.get("_data")
        if isinstance(data, str):
            return data
        raise ValueError(f"resume token without a string _data: {self.token!r}")

    @classmethod
    def from_bson(cls, doc: dict[str, Any]) -> ChangeEvent:
        """Build from a decoded change document (as the driver or a feed yields it)."""
        token = doc.get("_id")
        if not isinstance(token, dict):
            raise ValueError("change event without a resume token (_id)")
        op = doc.get("operationType")
        if not isinstance(op, str):
            raise ValueError("change event without an operationType")
        ns = doc.get("ns")
        to = doc.get("to")
        ud = doc.get("updateDescription")
        txn_number = doc.get("txnNumber")
        return cls(
            token=token,
            operationType=op,
            clusterTime=doc.get("clusterTime"),
            wallTime=doc.get("wallTime"),
            ns=Namespace(db=ns.get("db", ""), coll=ns.get("coll"))
            if isinstance(ns, dict)
            else None,
            documentKey=doc.get("documentKey"),
            fullDocument=doc.get("fullDocument"),
            fullDocumentBeforeChange=doc.get("fullDocumentBeforeChange"),
            updateDescription=_update_description(ud) if isinstance(ud, dict) else None,
            to=Namespace(db=to.get("db", ""), coll=to.get("coll"))
            if isinstance(to, dict)
            else None,
            lsid=doc.get("lsid"),
            txnNumber=int(txn_number) if txn_number is not None else None,
        )


def _update_description(ud: dict[str, Any]) -> UpdateDescription:
    truncated = [
        TruncatedArray(field=str(t["field"]), newSize=int(t["newSize"]))
        for t in ud.get("truncatedArrays") or []
    ]
    return UpdateDescription(
        updatedFields=dict(ud.get("updatedFields") or {}),
        removedFields=list(ud.get("removedFields") or []),
        truncatedArrays=truncated,
        disambiguatedPaths=ud.get("disambiguatedPaths"),
    )


class EntitySnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """An entity's folded state right after `version` (a cache of the log, never the truth).

    `event_hash` is the hash of the event at `version`: a snapshot that no longer
    matches the log is ignored, never trusted. Version 0 is the state before the
    first event (no document; `event_hash` is GENESIS_HASH), laid only to carry
    `next_version`. `next_version` names a later snapshot of the same entity when
    one is known, so a time older than that snapshot's needs only the events in
    between. `findings` are those of the fold up to `version` (`{version, kind,
    detail}`), so a state folded from a snapshot reports what a fold from the
    first event would.
    """

    stream: str
    entity_id: Any
    entity_key: str
    version: int
    occurred_at: datetime
    exists: bool
    document: dict[str, Any] | None = None
    event_hash: str = ""
    next_version: int | None = None
    findings: list[dict[str, Any]] = []


JOB_STATES: Final = ("queued", "running", "succeeded", "failed")


class Partition(msgspec.Struct, frozen=True, kw_only=True):
    """One partition of a partitioned rebuild: its state, the events it folds, who claimed it.

    Any instance may claim a queued partition, or a running one whose claim has
    expired (its claimer died): `claim` is that claim's token, and only its holder
    may renew (`expires_at`) or finish the partition (`Jobs.claim_partition`).
    """

    index: int
    state: str = "queued"  # queued, running, succeeded, failed
    processed: int = 0
    total: int = 0
    owner: str | None = None
    claim: str | None = None
    expires_at: datetime | None = None
    attempts: int = 0
    error: str | None = None
    # The seq of the change the projection failed at, when its code failed (not the store).
    failed_seq: int | None = None


def claimable(partitions: list[Partition], now: datetime) -> Partition | None:
    """The partition to claim next: the first queued one, else the first whose claim expired."""
    for p in partitions:
        if p.state == "queued":
            return p
    for p in partitions:
        if p.state == "running" and (p.expires_at is None or p.expires_at <= now):
            return p
    return None


def taken_by(found: Partition, *, owner: str, claim: str, until: datetime) -> Partition:
    """`found` as `owner` holds it under the token `claim` until `until`: a fresh attempt."""
    return msgspec.structs.replace(
        found,
        state="running",
        owner=owner,
        claim=claim,
        expires_at=until,
        processed=0,
        attempts=found.attempts + 1,
        error=None,
    )


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """A requested rebuild of one projection, and its progress.

    `workers`: how many partitions (processes) rebuild it; `partitions` their states;
    `head`: the seq every partition folds up to (0 until the rebuild has started).
    """

    job: str
    projection: str
    state: str = "queued"
    processed: int = 0
    total: int = 0
    requested_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    workers: int = 1
    partitions: list[Partition] = []
    head: int = 0
    # What the job did otherwise than asked, and why (a projection without merge
    # rebuilt with one worker where more were asked).
    note: str | None = None

    @property
    def active(self) -> bool:
        """Queued or running: a second request for the projection is refused meanwhile."""
        return self.state in ("queued", "running")


class TreeCheckpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A checkpoint of the Merkle tree as made: the note (signed or not) and its cosignatures.

    `note` is the C2SP checkpoint text, followed by its signature block when a key
    signed it; `cosignatures` are witnesses' signature lines, served after the note's own.
    """

    size: int
    root: str  # standard padded base64 of the 32-byte root
    note: str
    signed: bool
    created_at: datetime
    cosignatures: list[str] = []


ERASURE_STATES: Final = ("queued", "done", "refused")


class ErasureRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A request to erase one entity's payloads, carried out by the capturing instance.

    `seq` is the seq of the `erased` event that recorded it, `events_erased` how
    many events lost payload and salt; `error` says why a request was refused.
    `row_problems`: the problems the entity's per-entity read-model rows held when the
    erasure deleted them, by collection (`eventstore.row_problems`): their runners take
    them off their counts at the `erased` event (noted by the first attempt, whose
    retry finds the rows gone).
    """

    id: str
    stream: str
    entity_id: Any
    entity_key: str
    reason: str
    actor: str
    state: str = "queued"
    requested_at: datetime | None = None
    finished_at: datetime | None = None
    seq: int | None = None
    events_erased: int | None = None
    error: str | None = None
    row_problems: dict[str, int] | None = None
