"""The ports: what the service needs from storage, change sources and time.

Each storage port has a `mongo` adapter (PyMongo Async; runs unchanged on
mongomock-motor) and a `memory` adapter (plain Python with real indexes); one
contract suite per port runs over both (tests/integration/contract_*).
Every write accepts an optional `session` so a caller can group writes in a
transaction where the server has them; adapters pass it to the driver only when
it is not None (mongomock refuses the keyword).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from bson import Timestamp

from eventstore.merkle import NodeId
from eventstore.model import (
    ChangeBatch,
    Checkpoint,
    EntityHead,
    EntitySnapshot,
    EntitySummary,
    ErasureRequest,
    Event,
    EventQuery,
    Head,
    Job,
    Lease,
    Partition,
    ResumePoint,
    StreamStats,
    TreeCheckpoint,
)
from eventstore.subscription_records import AdminAction, ParkedEvent, SubscriptionRecord
from eventstore.worker_state import WorkerRecord


class LogConflict(Exception):
    """An append collided with a different event at the same `seq` or entity version.

    Only one ingester holds the lease, so this means a second writer or a bug:
    the batch is refused whole rather than leaving a hole or a fork.
    """


class EventLog(Protocol):
    """The immutable, seq-ordered event log.

    Events are never updated, except that an erasure removes payload and salt
    (`erase_payloads`), and is itself recorded (an `erased` event). Nothing deletes one.
    """

    async def ensure_indexes(self) -> None:
        """Create the unique indexes (`_id`, `seq`, (`stream`, `entity_id`, `version`)) and the rest."""

    async def append(self, events: Sequence[Event], *, session: Any = None) -> int:
        """Store a batch in `seq` order; events whose `id` is already stored are skipped.

        Returns how many were inserted. Raises `LogConflict` when a different
        event already holds one of the batch's `seq` or (stream, entity_id, version).
        """
        ...

    async def index_listings(
        self,
        events: Sequence[Event] | None = None,
        *,
        heartbeat: Callable[[], Awaitable[None]] | None = None,
    ) -> int:
        """Bring what `streams` and `entities` read up to the log: a batch just stored, or
        (None) everything it lacks, in pages (`heartbeat` awaited after each); returns the
        events a catch-up indexed. Called by the capturing instance after each batch,
        outside its transaction; the answers are the log's whether or not it was.
        """
        ...

    async def erase_payloads(
        self, stream: str, entity_id: Any, *, erased_by: int, restamp: int | None = None
    ) -> int:
        """Remove document, changes, before and salt of the entity's COMMIT_SCHEME events
        before seq `erased_by` that still have them, and set their `erased_by`.

        `restamp`: events already erased with `erased_by == restamp` (an attempt whose
        `erased` event was never stored) are stamped again with `erased_by`. Returns
        how many events it changed. Hashes, seq and every other field stay as they
        are, so every chain still verifies.
        """
        ...

    async def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of these event ids are already stored (one query)."""
        ...

    async def events_by_id(self, ids: Sequence[str]) -> dict[str, Event]:
        """The stored events of these ids, by id; ids not stored are left out (one query)."""
        ...

    async def entity_heads(self, stream: str, entity_ids: Sequence[Any]) -> dict[str, EntityHead]:
        """The newest event of each of these entities that has one, keyed by typed key (one query)."""
        ...

    async def live_entities(self, stream: str) -> list[EntityHead]:
        """Every entity of the stream whose newest event leaves it with a document."""
        ...

    async def existing_entity_ids(self, stream: str, candidates: Sequence[Any]) -> list[Any]:
        """Which of these `_id` values have events in the stream (for resolving bare keys)."""
        ...

    async def read_entity(
        self,
        stream: str,
        entity_id: Any,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """One entity's events with `from_version <= version <= to_version`, in version order."""
        ...

    async def read(self, *, after_seq: int = 0, limit: int = 1000) -> list[Event]:
        """Events with `seq > after_seq`, in `seq` order, at most `limit`."""
        ...

    async def head(self) -> Head:
        """The newest event's `seq` and `log_hash` (seq 0 when empty)."""
        ...

    async def query(self, q: EventQuery, *, after_seq: int = 0, limit: int = 100) -> list[Event]:
        """Events matching the audit query with `seq > after_seq`, in `seq` order, at most `limit`.

        Served by indexes (stream/entity, type, changed_fields, actor, occurred_at), never a
        scan of the whole log per page; the mongo adapter bounds each query with `maxTimeMS`.
        A field is looked up as its path, each path above it, the paths beneath it and the
        whole-document types; an actor as each value its text names (`EventQuery`).
        """
        ...

    async def streams(self) -> list[StreamStats]:
        """Every stream that has events, by name."""
        ...

    async def entities(
        self, stream: str, *, limit: int, before_seq: int | None = None
    ) -> list[EntitySummary]:
        """The stream's entities (not `$stream`), most recently changed first.

        Ordered by the `seq` of each entity's newest event, descending; `before_seq`
        (the `last_seq` of a previous page's last item) continues after that page.
        """
        ...

    async def wait_for_append(self, after_seq: int, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until the log holds an event with `seq > after_seq`, or `timeout` seconds pass.

        True when it does. Wakes on the append itself where it can (the memory
        adapter's condition; a change stream on `events` where the server has
        one), otherwise polls with a bounded back-off; never busy-waits.
        """
        ...


class Checkpoints(Protocol):
    """Named positions of consumers (the ingester's resume token and head)."""

    async def get(self, name: str) -> Checkpoint | None:
        """The checkpoint, or None before the first one."""
        ...

    async def put(self, checkpoint: Checkpoint, *, session: Any = None) -> None:
        """Store (replace) a checkpoint."""
        ...


class Leases(Protocol):
    """One lease per role, taken and renewed with compare-and-set."""

    async def acquire(self, role: str, owner: str, *, now: datetime, ttl: float) -> Lease | None:
        """Take or renew the role if it is free, expired, or already `owner`'s; else None."""
        ...

    async def release(self, role: str, owner: str) -> bool:
        """Give the role up if `owner` holds it; True when it did."""
        ...

    async def get(self, role: str) -> Lease | None:
        """The current lease of a role (possibly expired), or None."""
        ...


class Snapshots(Protocol):
    """Entity states every SNAPSHOT_EVERY versions: any point in time costs two queries.

    A cache of the log, laid by readers: the fold is deterministic, so writing a
    snapshot again stores the same state (and heals one that stopped matching).
    """

    async def ensure_indexes(self) -> None:
        """Create the unique (stream, entity_id, version) index."""

    async def put_many(self, snapshots: Sequence[EntitySnapshot], *, session: Any = None) -> None:
        """Store (or replace) snapshots, one per entity and version.

        `next_version` only ever moves down: a stored link is kept unless the new
        snapshot names a nearer later snapshot, and a snapshot without one keeps it.
        """
        ...

    async def latest(
        self,
        stream: str,
        entity_id: Any,
        *,
        max_version: int | None = None,
        at: datetime | None = None,
    ) -> EntitySnapshot | None:
        """The newest snapshot with `version <= max_version` and `occurred_at <= at` (one query).

        Its document is read-only, like every folded state (the memory adapter shares it).
        """
        ...

    async def purge_entity(self, stream: str, entity_id: Any) -> int:
        """Delete every snapshot of one entity (an erasure); returns how many."""
        ...


class ReadModels(Protocol):
    """Read-model rows by collection and key; a rebuild fills a fresh collection, then swaps it in."""

    async def get_many(self, collection: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The rows with these keys that exist (one query)."""
        ...

    async def write(
        self,
        collection: str,
        writes: Sequence[tuple[str, dict[str, Any] | None]],
        *,
        session: Any = None,
    ) -> None:
        """Upsert (or, for None, delete) rows by key in one bulk write."""
        ...

    async def query(
        self, collection: str, *, filters: Mapping[str, Any], limit: int, after: str | None = None
    ) -> list[dict[str, Any]]:
        """Rows matching equality filters, in key order, after a key."""
        ...

    async def ensure_indexes(self, collection: str, fields: Sequence[str]) -> None:
        """Serve equality look-ups by each of these row fields from an index, in key order.

        Idempotent. An index made on a rebuild's fresh collection comes with it in `swap`.
        """
        ...

    async def swap(self, building: str, live: str) -> None:
        """Replace `live` by `building` in one rename (readers see the old rows or the new)."""
        ...

    async def drop(self, collection: str) -> None:
        """Remove a collection (a rebuild's leftovers)."""
        ...

    async def collections(self) -> list[str]:
        """The read-model collections that exist."""
        ...


class JobConflict(Exception):
    """A rebuild of this projection is already queued or running."""


class Jobs(Protocol):
    """Rebuild requests: at most one active (queued or running) per projection."""

    async def create(self, job: Job) -> None:
        """Record a queued job; raises `JobConflict` while another is active for the projection."""
        ...

    async def get(self, job_id: str) -> Job | None:
        """A job by id."""
        ...

    async def active(self, projection: str) -> Job | None:
        """The queued or running job of a projection, if any."""
        ...

    async def update(self, job: Job) -> None:
        """Store a job's new state and progress (its partitions as stored stay: see below)."""
        ...

    # Partitions change only through these, atomically, so instances claiming them at once
    # never both get one, and a job update never undoes another instance's claim.
    async def set_partitions(self, job_id: str, partitions: list[Partition]) -> None:
        """Replace a job's partitions (its coordinator, when the rebuild starts)."""
        ...

    async def claim_partition(
        self, job_id: str, *, owner: str, now: datetime, until: datetime
    ) -> Partition | None:
        """Claim the next claimable partition (`model.claimable`) of a running job, until `until`.

        Returns it as claimed (running, `owner`, a new `claim` token, `attempts` + 1),
        or None when no partition is claimable.
        """
        ...

    async def renew_partition(
        self, job_id: str, claimed: Partition, *, until: datetime, processed: int, total: int
    ) -> bool:
        """Extend a claim and record its progress; False when the claim is no longer held."""
        ...

    async def finish_partition(
        self,
        job_id: str,
        claimed: Partition,
        *,
        state: str,
        processed: int,
        total: int,
        error: str | None = None,
        failed_seq: int | None = None,
    ) -> bool:
        """End a claimed partition (`succeeded` or `failed`, with the seq the projection failed
        at when its code failed); False when the claim is no longer held."""
        ...


class Erasures(Protocol):
    """Erasure requests, in the order they were made (the capturing instance carries them out)."""

    async def create(self, request: ErasureRequest) -> None:
        """Store a new (queued) request."""

    async def get(self, request_id: str) -> ErasureRequest | None:
        """A request by id."""
        ...

    async def queued(self) -> list[ErasureRequest]:
        """The queued requests, oldest first."""
        ...

    async def done_for(self, stream: str, entity_key: str) -> ErasureRequest | None:
        """The newest carried-out request for this entity, if any."""
        ...

    async def update(self, request: ErasureRequest) -> None:
        """Replace a request's record."""


class MerkleTree(Protocol):
    """The stored Merkle tree: complete subtree nodes by (level, index), its size, checkpoints.

    Nodes are written before the size that covers them, so every node of the tree
    of `size()` leaves is stored; nodes beyond it (a crash between the two writes)
    are rewritten, with the same hashes, when the tree grows again.
    """

    queries: int  # node reads served: a proof must cost exactly one

    async def ensure_indexes(self) -> None:
        """Create what the adapter needs (idempotent)."""

    async def size(self) -> int:
        """How many leaves the stored tree covers (0 before the first)."""
        ...

    async def put_nodes(self, nodes: Sequence[tuple[int, int, bytes]], *, size: int) -> None:
        """Store complete nodes (level, index, hash), then record the tree size."""

    async def get_nodes(self, ids: Collection[NodeId]) -> dict[NodeId, bytes]:
        """The stored nodes among `ids`, in one query."""
        ...

    async def truncate(self, size: int) -> None:
        """Forget the tree beyond `size` leaves: the nodes past it, then the size, lowered to it.

        For a log that lost events the tree held (restored, or rolled back), and for a
        damaged tree rebuilt from the log (`size` 0). Checkpoints are kept: they are
        what was signed.
        """

    async def add_checkpoint(self, checkpoint: TreeCheckpoint) -> bool:
        """Store a checkpoint; False (and nothing changes) when one of that size exists."""
        ...

    async def checkpoint(self, size: int | None = None) -> TreeCheckpoint | None:
        """The checkpoint made at `size`, or the latest one when `size` is None."""
        ...

    async def checkpoints(self, *, after: int = 0, limit: int = 100) -> list[TreeCheckpoint]:
        """The checkpoints made at sizes above `after`, smallest first, at most `limit`."""
        ...

    async def add_cosignature(self, size: int, line: str) -> None:
        """Add a witness's cosignature line to the checkpoint of `size` (once)."""


class Workers(Protocol):
    """Every instance's worker states (one record per instance and worker), for status views."""

    async def put(self, records: Sequence[WorkerRecord]) -> None:
        """Store (replace) these records, each by its instance and name."""
        ...

    async def all(self) -> list[WorkerRecord]:
        """Every stored record, by name then instance."""
        ...

    async def remove(self, instance: str) -> None:
        """Forget an instance's records (it stopped cleanly: it runs no worker any more)."""
        ...

    async def remove_worker(self, instance: str, name: str) -> None:
        """Forget an instance's record of one worker (its supervisor no longer runs it)."""
        ...


class Subscriptions(Protocol):
    """Subscription records by name: configuration, operator controls, counters."""

    async def get(self, name: str) -> SubscriptionRecord | None:
        """The record, or None."""
        ...

    async def all(self) -> list[SubscriptionRecord]:
        """Every record, by name."""
        ...

    async def create(self, record: SubscriptionRecord) -> bool:
        """Store a new record; False (nothing written) when the name exists."""
        ...

    async def patch(self, name: str, fields: Mapping[str, Any]) -> bool:
        """Set these top-level fields of a record; False when there is none."""
        ...

    async def delete(self, name: str) -> bool:
        """Remove a record; False when there was none."""
        ...

    async def push_command(self, name: str, command: Mapping[str, Any]) -> bool:
        """Queue an operator command (atomically appended); False when there is no record."""
        ...

    async def drop_commands(self, name: str, ids: Sequence[str]) -> None:
        """Remove the commands of these ids (carried out)."""
        ...


class Deliveries(Protocol):
    """Per subscription: settled positions above the checkpoint, and parked events."""

    async def settle(self, name: str, seqs: Sequence[int]) -> None:
        """Record these seqs as settled (idempotent)."""
        ...

    async def settled(self, name: str, *, above: int) -> list[int]:
        """Settled seqs above a position, ascending."""
        ...

    async def forget_settled(self, name: str, *, up_to: int) -> None:
        """Drop settled seqs at or below the checkpoint (they are covered by it)."""
        ...

    async def park(self, events: Sequence[ParkedEvent]) -> None:
        """Store (replace) parked events, each by subscription and seq."""
        ...

    async def parked(
        self, name: str, *, after_seq: int = 0, up_to: int | None = None, limit: int | None = None
    ) -> list[ParkedEvent]:
        """Parked events in seq order, in `(after_seq, up_to]`."""
        ...

    async def count_parked(self, name: str) -> int:
        """How many events are parked."""
        ...

    async def unpark(self, name: str, seqs: Sequence[int]) -> int:
        """Remove these parked events; how many were removed."""
        ...

    async def clear(self, name: str) -> None:
        """Forget every settled position and parked event of a subscription."""
        ...


class AdminActions(Protocol):
    """The append-only trail of operator actions."""

    async def append(self, action: AdminAction) -> None:
        """Add one action (never updated, never removed)."""
        ...

    async def page(self, *, after: str | None = None, limit: int = 100) -> list[AdminAction]:
        """Actions in `id` order after a cursor."""
        ...


class Store(Protocol):
    """The storage ports of one deployment, and its transaction support."""

    events: EventLog
    checkpoints: Checkpoints
    leases: Leases
    snapshots: Snapshots
    read_models: ReadModels
    jobs: Jobs
    merkle: MerkleTree
    erasures: Erasures
    workers: Workers
    subscriptions: Subscriptions
    deliveries: Deliveries
    admin_actions: AdminActions

    @property
    def transactions(self) -> bool:
        """True when `transaction()` gives a real multi-document transaction."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        """A context yielding a session inside a transaction, or None where there is none."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class Clock(Protocol):
    """Time, passed in: domain code never reads the wall clock itself."""

    def now(self) -> datetime:
        """The current UTC time (aware)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait (a fake clock advances instead)."""
        ...


class HistoryLost(Exception):
    """The resume point has left the source's history (MongoDB error 286)."""


class SourceError(Exception):
    """The source cannot be read (unreachable, unsupported, malformed input)."""


class ChangeStream(Protocol):
    """An open stream of changes."""

    async def next_batch(self) -> ChangeBatch | None:
        """The next batch; an empty one while idle (with the advanced token); None at the end.

        Raises `HistoryLost` when the resume point is gone.
        """
        ...


class ChangeSource(Protocol):
    """Where changes come from: a MongoDB change stream, the memory feed, a file."""

    @property
    def name(self) -> str:
        """The source's name in messages and `rejected` events: `mongo`, `memory`, `ndjson`."""
        ...

    @property
    def can_snapshot(self) -> bool:
        """True when the source can list the current documents (initial snapshot, gaps)."""
        ...

    @property
    def finite(self) -> bool:
        """True for sources that end (a file); the ingester stops after the last batch."""
        ...

    async def cluster_time(self) -> Timestamp:
        """The source's current cluster time (a snapshot's epoch)."""
        ...

    def scan(self, collection: str, *, batch_size: int) -> AsyncIterator[list[dict[str, Any]]]:
        """The current documents of a captured collection, in batches."""
        ...

    def watch(self, resume: ResumePoint | None) -> AbstractAsyncContextManager[ChangeStream]:
        """Open the change stream at a resume point (None: from now)."""
        ...
