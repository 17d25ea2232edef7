"""The ingester: a change source -> the event log, exactly once, in one dense order.

Invariants:
- The checkpoint (resume token + head) is written only after the batch it covers
  is stored, in the same transaction where the server has transactions.
- A re-delivered change finds its id stored and is skipped without consuming a
  `seq` or a `version`; derived events have deterministic ids for the same reason.
- Only the lease holder writes; the unique `seq` index fences a stalled former
  holder (its append conflicts and it goes back to standby).
- A change that cannot be interpreted is never skipped silently (BAD_INPUT): it
  stops capture after everything before it is stored, or is recorded in its place
  as a `rejected` event whose deterministic id makes a re-read record it once.
- Erasure requests and the idle checkpoint never wait for the source: after each batch,
  and while none comes (a quiet pipe, a finite source that ended), an idle turn runs
  at least every `_turn_wait()` seconds; it never cancels a pending read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Container, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import msgspec
from bson import Timestamp

from eventstore.awaiting import cancel_and_wait, wait_set
from eventstore.badinput import (
    RECORD,
    Rejection,
    problem,
    raw_sha256,
    stream_position,
    token_of,
)
from eventstore.capture import (
    DDL_TYPES,
    OP_TO_TYPE,
    Capture,
    gap_id,
    occurred_at_of,
    random_salt,
    snapshot_id,
    timestamp_time,
)
from eventstore.checkpointing import Checkpointer
from eventstore.keys import typed_key
from eventstore.leasing import LeaseKeeper, LeaseLost, default_owner
from eventstore.model import (
    DROPPED,
    ERASED,
    GAP,
    RENAMED,
    SOURCE_STREAM,
    STREAM_ENTITY_ID,
    ChangeBatch,
    ChangeEvent,
    Checkpoint,
    ErasureRequest,
    Event,
    Origin,
    ResumePoint,
)
from eventstore.ports import (
    ChangeSource,
    ChangeStream,
    Clock,
    HistoryLost,
    LogConflict,
    Store,
)
from eventstore.reused_tokens import (
    Identity,
    change_identity,
    describe,
    recorded_identity,
    same_change,
)
from eventstore.row_problems import held_problems
from eventstore.settings import Settings

log = logging.getLogger(__name__)

# The shortest wait between idle turns (the memory feed's own wait): a short checkpoint
# interval makes them more frequent, never a busy wait.
MIN_IDLE_POLL = 0.05


class Place(NamedTuple):
    """Where a change of a batch stands: its origin in the source (a file's line), else
    after the resume token and cluster time capture stood at before it."""

    origin: Origin | None
    at_token: dict[str, Any] | None
    at_time: Timestamp | None


class _Recorded:
    """The ids a batch finds recorded: stored (looked up), or built earlier in the batch."""

    def __init__(self, stored: Collection[str], capture: Capture) -> None:
        self.stored = stored
        self.capture = capture

    def __contains__(self, event_id: object) -> bool:
        return event_id in self.stored or (
            isinstance(event_id, str) and self.capture.is_pending(event_id)
        )


class IngestStats(msgspec.Struct, kw_only=True):
    """What an ingester run did."""

    recorded: int = 0
    changes_seen: int = 0
    duplicates_skipped: int = 0
    filtered: int = 0
    unknown_skipped: int = 0
    rejected: int = 0
    batches: int = 0
    snapshots: int = 0
    gaps: int = 0
    erasures: int = 0
    seconds: float = 0.0
    caught_up: bool = False

    @property
    def rate(self) -> float:
        """Events recorded per second of the run."""
        return self.recorded / self.seconds if self.seconds > 0 else 0.0


class RenamedInto(msgspec.Struct, frozen=True):
    """A rename moved a collection into a captured one: re-snapshot (why, for the gap)."""

    reason: str


class Ingester:
    """Captures changes of `settings.collections` into the log, holding `ingester:<source db>`."""

    def __init__(
        self,
        *,
        store: Store,
        source: ChangeSource,
        settings: Settings,
        clock: Clock,
        owner: str | None = None,
        on_batch: Callable[[IngestStats], None] | None = None,
        checkpointer: Checkpointer | None = None,
        salts: Callable[[str], bytes] = random_salt,
        entity_rows: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.store = store
        self.source = source
        self.settings = settings
        self.clock = clock
        self.name = settings.ingester_role
        self.lease = LeaseKeeper(
            store.leases,
            self.name,
            owner or default_owner(),
            ttl=settings.lease_seconds,
            clock=clock,
        )
        self.stats = IngestStats()
        self.on_batch = on_batch
        # The Merkle tree and its checkpoints, kept by whoever captures (README "Verifiable log").
        self.checkpointer = checkpointer
        # Each event's salt (random; tests pass a deterministic one).
        self._salts = salts
        # (read-model collection, stream): each row one entity of the stream's, by typed key;
        # erasing one of the stream's entities deletes its row there (`Projection.per_entity`).
        self._entity_rows = tuple(entity_rows)
        self._capture: Capture | None = None
        # True from (re)opening the stream until a batch holds a change not yet stored:
        # appends are ordered, so the log holds a prefix of what follows the
        # checkpoint, and once one change is new every later one is too.
        self._redelivery_possible = True
        # The cluster time of the newest change stored, and whether the last batch was empty
        # (caught up): how far capture is behind in time (`lag_seconds`).
        self.last_cluster_time: Timestamp | None = None
        self.idle = False
        # Whether the last write of the listings' index failed (logged once until it works).
        self._index_failing = False
        # Told when the listings' index starts failing (why) and when it is written again
        # (None): the capture worker shows it as a standing problem.
        self.on_index_problem: Callable[[str | None], None] | None = None
        # Seconds between idle turns (`_idle_turn`: the lease kept, erasure requests carried
        # out, the idle checkpoint made when due) while no batch comes: a source's next batch
        # awaited longer (a pipe whose writer is quiet), or a finite source ended (`linger`).
        # The checkpoint interval shortens it (never below MIN_IDLE_POLL).
        self.idle_poll = 1.0

    def lag_seconds(self, now: datetime) -> float | None:
        """Now minus the cluster time of the last stored resume point; 0 while idle, None before."""
        if self.idle:
            return 0.0
        if self.last_cluster_time is None:
            return None
        return max((now - timestamp_time(self.last_cluster_time)).total_seconds(), 0.0)

    async def run(
        self,
        *,
        until_idle: bool = False,
        stop: asyncio.Event | None = None,
        linger: bool = False,
    ) -> IngestStats:
        """Capture until `stop` is set, the source ends, or (until_idle) nothing is pending.

        With `linger` (and `stop`), a source that ends (a file) does not end the run:
        this instance keeps the lease and carries out erasure requests until stopped.
        """
        started = time.perf_counter()
        try:
            while not (stop and stop.is_set()):
                if not await self.lease.acquire(stop):
                    break
                try:
                    if await self._work(until_idle=until_idle, stop=stop, linger=linger):
                        break
                except LeaseLost as exc:
                    log.warning("stopping capture, another instance took over: %s", exc)
                    self._capture = None
                    self.lease.held = False
                except LogConflict as exc:
                    # A stalled former holder is fenced by the unique indexes: it finds the
                    # lease taken and stands by. While the lease is still ours, nobody else
                    # may have written: the conflict is a bug, and retrying it would loop.
                    if await self.lease.is_ours():
                        raise
                    log.warning("stopping capture, another instance took over: %s", exc)
                    self._capture = None
                    self.lease.held = False
        finally:
            self.stats.seconds += time.perf_counter() - started
            await self.lease.release()
        return self.stats

    # -- the main loop -----------------------------------------------------------------------
    async def _work(
        self, *, until_idle: bool, stop: asyncio.Event | None, linger: bool = False
    ) -> bool:
        """Capture while holding the lease; True when finished (not when the lease was lost)."""
        cp = await self.store.checkpoints.get(self.name)
        if self.checkpointer is not None:
            # Another instance may have extended the tree while this one stood by.
            await self.checkpointer.open(heartbeat=self.lease.keep)
        # The listings' index catches up with what was stored before it, or while it failed.
        await self._index_listings(None)
        self._capture = Capture(self.settings, await self.store.events.head(), salts=self._salts)
        if cp is None:
            cp = Checkpoint(name=self.name, head=self._capture.head, updated_at=self.clock.now())
            if self.source.can_snapshot:
                epoch = await self.source.cluster_time()
                cp = msgspec.structs.replace(cp, phase="snapshot", epoch=epoch)
                await self.store.checkpoints.put(cp)
        while not (stop and stop.is_set()):
            if cp.phase == "snapshot":
                cp = await self._snapshot(cp)
            try:
                outcome, cp = await self._stream(cp, until_idle=until_idle, stop=stop)
            except HistoryLost as exc:
                log.error(
                    "change stream history lost (%s): recording a gap and re-snapshotting", exc
                )
                # The gap starts after the last change recorded: the checkpoint as the
                # stream left it (each batch committed one), not as it was when it opened.
                cp = await self.store.checkpoints.get(self.name) or cp
                cp = await self._record_gap(cp)
                continue
            if isinstance(outcome, RenamedInto):
                log.error(
                    "%s: its documents were never recorded as created; recording a gap and"
                    " re-snapshotting",
                    outcome.reason,
                )
                cp = await self._record_gap(cp, reason=outcome.reason)
                continue
            if outcome == "ended" and linger and stop is not None:
                await self._linger(cp, stop)
            if outcome != "invalidated":
                return True
        return True

    async def _linger(self, cp: Checkpoint, stop: asyncio.Event) -> None:
        """The source ended: idle turns (erasure requests, the idle checkpoint) until stopped,
        then what they stored is checkpointed at once, as at the end of any run."""
        log.info("the source ended: capture carries out erasure requests until stopped")
        while not stop.is_set():
            cp = await self._idle_turn(cp)
            await wait_set(stop, self._turn_wait())
        await self._idle(final=True)

    async def _idle_turn(self, cp: Checkpoint) -> Checkpoint:
        """Nothing to capture now: keep the lease, carry out the erasure requests, and make
        the idle checkpoint when due. What a live source does after each empty batch; with
        no batch coming (a quiet pipe, a source that ended) it is done every `_turn_wait()`,
        so a request is done, and every stored event (an `erased` record too) checkpointed,
        about one interval later however long the source stays quiet."""
        await self.lease.keep()
        cp = await self._erasures(cp)
        await self._idle()
        return cp

    def _turn_wait(self) -> float:
        """Seconds between idle turns while no batch comes: `idle_poll`, or with checkpoints
        CHECKPOINT_INTERVAL when shorter (an idle checkpoint is never later than that after
        it is due), never less than MIN_IDLE_POLL (no busy wait)."""
        wait = self.idle_poll
        if self.checkpointer is not None:
            wait = min(wait, self.settings.checkpoint_interval)
        return max(wait, MIN_IDLE_POLL)

    async def _next_batch(
        self, stream: ChangeStream, cp: Checkpoint, stop: asyncio.Event | None
    ) -> tuple[ChangeBatch | None, Checkpoint]:
        """The stream's next batch (None once `stop` is set first), and the checkpoint as
        the idle turns made while it was awaited left it.

        A source may wait long for its next batch (a pipe, while its writer is quiet): every
        `_turn_wait()` meanwhile is an idle turn, as between a live source's empty batches.
        A turn never cancels the read (no line is lost or read twice); a stop does, as does
        a turn that fails (a lost lease): the stream is closed then.
        """
        read = asyncio.ensure_future(stream.next_batch())
        waits: list[asyncio.Future[Any]] = [read]
        if stop is not None:
            waits.append(asyncio.ensure_future(stop.wait()))
        try:
            while True:
                done, _ = await asyncio.wait(
                    waits, timeout=self._turn_wait(), return_when=asyncio.FIRST_COMPLETED
                )
                if read in done:  # a batch there when the stop is set too is still answered
                    return read.result(), cp
                if done:  # stopped
                    return None, cp
                cp = await self._idle_turn(cp)
        finally:
            await cancel_and_wait(waits)

    async def _stream(
        self, cp: Checkpoint, *, until_idle: bool, stop: asyncio.Event | None
    ) -> tuple[str | RenamedInto, Checkpoint]:
        self._redelivery_possible = True
        async with self.source.watch(_resume_point(cp)) as stream:
            while not (stop and stop.is_set()):
                await self.lease.keep()
                batch, cp = await self._next_batch(stream, cp, stop)
                if stop is not None and stop.is_set():
                    break
                if batch is None:  # a finite source (a file) is read to its end: idle
                    self.stats.caught_up = True
                    self.idle = True
                    await self._idle(final=True)  # the tree is checkpointed before the run ends
                    return "ended", cp
                cp, ended = await self._ingest_checked(batch, cp)
                if ended is not None:
                    return ended, cp
                cp = await self._erasures(cp)
                if not batch.changes:
                    self.stats.caught_up = True
                    await self._idle(final=until_idle)
                    if until_idle:
                        return "idle", cp
        await self._idle(final=True)
        return "stopped", cp

    async def _ingest_checked(
        self, batch: ChangeBatch, cp: Checkpoint
    ) -> tuple[Checkpoint, str | RenamedInto | None]:
        """`_ingest`, and once more with the batch's ids looked up when the store refused it
        while none were: a driver that resumed its stream by itself (a getMore failed with
        a resumable error) may deliver a change again that this stream already handed over
        and the log holds. Only looking it up tells; a conflict found after looking is one.
        """
        looked_up = self._redelivery_possible
        before = msgspec.structs.asdict(self.stats)
        try:
            return await self._ingest(batch, cp)
        except LogConflict as exc:
            if looked_up:
                raise
            log.warning(
                "the log already holds part of a batch (%s): recording it again with the ids"
                " it holds looked up, as after a resume",
                exc,
            )
        for name, value in before.items():  # the batch is counted once
            setattr(self.stats, name, value)
        capture = self._require_capture()
        capture.head = await self.store.events.head()  # its events were not stored
        self._redelivery_possible = True
        return await self._ingest(batch, cp)

    async def _ingest(
        self, batch: ChangeBatch, cp: Checkpoint
    ) -> tuple[Checkpoint, str | RenamedInto | None]:
        """Record one batch and its checkpoint; what ended the stream, if anything did.

        A change that cannot be interpreted becomes a `rejected` event in its place
        (BAD_INPUT=record), or (stop) ends the batch: what came before it is stored
        and checkpointed, then `BadChange` is raised and nothing after it is read.
        `invalidate` ends it ("invalidated"), and so does a rename into a captured
        collection on a source that can be re-snapshotted (`RenamedInto`): the batch is
        stored up to the rename, and the checkpoint stays before it until the gap is.
        """
        capture = self._require_capture()
        now = self.clock.now()
        items, places = self._interpret(batch, cp)
        stored = await self._existing(items)
        items = self._refuse_reused_tokens(batch, items, places, stored)
        refused = [
            r.event_id for r in items if isinstance(r, Rejection) and r.event_id not in stored
        ]
        if refused:
            stored.update(await self.store.events.events_by_id(refused))
        # An id is recorded when it is stored, or built earlier in this batch (a change, or a
        # drop or rename, given twice in one batch is recorded once).
        existing = _Recorded(stored, capture)
        bad: Rejection | None = None
        if self.settings.bad_input != RECORD:
            for i, item in enumerate(items):
                if isinstance(item, Rejection):
                    bad, items = item, items[:i]
                    break
        self.stats.changes_seen += len(items)
        if bad is None:  # what a source left out is counted as the changes filtered here are
            self.stats.changes_seen += batch.filtered
            self.stats.filtered += batch.filtered
        await self._load_heads(capture, items)
        last_ct = cp.last_cluster_time
        token = cp.token
        invalidated = False
        renamed_into: RenamedInto | None = None
        for item in items:
            if isinstance(item, Rejection):
                # In its place in the order; the position advances past it as for a good change.
                last_ct = item.cluster_time or last_ct
                token = item.token or token
                log.warning("rejected a change that cannot be interpreted: %s", item.error())
                if item.event_id in existing:
                    self.stats.duplicates_skipped += 1
                else:
                    capture.rejected(item, now=now)
                    self.stats.rejected += 1
                continue
            change = item
            before_ct, before_token = last_ct, token
            last_ct = change.clusterTime or last_ct
            token = change.token
            op = change.operationType
            stream = capture.stream_of(change)
            target = capture.stream_into(change)
            if capture.wants(change):
                if change.token_id in existing:
                    self.stats.duplicates_skipped += 1
                else:
                    capture.entity_change(change, now=now)
            elif op == "drop" and stream is not None:
                if "dropped:" + change.token_id in existing:
                    self.stats.duplicates_skipped += 1
                else:
                    await self._record_emptied(
                        capture, change, stream, now, kind=DROPPED, payload={}
                    )
            elif op == "rename" and (stream is not None or target is not None):
                if stream is not None and "renamed:" + change.token_id in existing:
                    self.stats.duplicates_skipped += 1
                elif stream is not None:
                    to = change.to
                    moved = {"to": {"db": to.db, "coll": to.coll} if to else None}
                    await self._record_emptied(
                        capture, change, stream, now, kind=RENAMED, payload=moved
                    )
                if target is not None:
                    # The target's documents (if any) were dropped, and it now holds the
                    # renamed collection's, which no event of this stream created.
                    if "dropped:" + change.token_id not in existing:
                        await self._record_emptied(
                            capture, change, target, now, kind=DROPPED, payload={}, only_live=True
                        )
                    reason = _rename_reason(change)
                    if self.source.can_snapshot:
                        renamed_into = RenamedInto(reason)
                        last_ct, token = before_ct, before_token  # read again until the gap is
                        break
                    self._record_unknown_contents(capture, change, target, reason, existing, now)
            elif op == "invalidate":
                invalidated = True
                break
            elif op in OP_TO_TYPE or op in DDL_TYPES or op in ("dropDatabase", "drop", "rename"):
                self.stats.filtered += 1
            else:
                log.warning("skipping a change of unknown type %r", op)
                self.stats.unknown_skipped += 1
        if invalidated or renamed_into is not None:
            # The stream restarts after the invalidate and reads what follows again; after a
            # rename into a captured collection, the re-snapshot's gap covers what follows.
            bad = None
        elif bad is None and batch.resume_token is not None:
            token = batch.resume_token
        events = capture.take()
        new_cp = msgspec.structs.replace(
            cp,
            token=token,
            last_cluster_time=last_ct,
            invalidated=invalidated,
            head=capture.head,
            updated_at=now,
            phase="streaming",
        )
        if events or new_cp.token != cp.token or invalidated:
            await self._commit(events, new_cp)
        self.last_cluster_time = last_ct
        self.idle = not batch.changes
        self.stats.batches += 1
        if self.on_batch is not None:
            self.on_batch(self.stats)
        if bad is not None:
            raise bad.error()
        return new_cp, "invalidated" if invalidated else renamed_into

    def _interpret(
        self, batch: ChangeBatch, cp: Checkpoint
    ) -> tuple[list[ChangeEvent | Rejection], list[Place]]:
        """Each change of the batch as a `ChangeEvent`, or as a `Rejection` when it cannot be
        one; and where each stands (what a rejection of it would name).

        A change is placed by the source's origin (`line 51`) when it gives one, else
        after the resume token (or cluster time) the capture stood at before it.
        """
        collections = frozenset(self.settings.collections)
        operations = frozenset(self.settings.operations)
        origins = batch.origins
        at_token, at_time = cp.token, cp.last_cluster_time
        out: list[ChangeEvent | Rejection] = []
        places: list[Place] = []
        for i, raw in enumerate(batch.changes):
            origin = origins[i] if origins is not None else None
            place = Place(origin, at_token, at_time)
            places.append(place)
            found = (
                (SOURCE_STREAM, origin.unreadable)
                if origin is not None and origin.unreadable is not None
                else problem(raw, collections=collections, operations=operations)
            )
            if found is None:
                try:
                    out.append(ChangeEvent.from_bson(raw))
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    # Not judged above (not a change the service records), yet unreadable.
                    kind = type(exc).__name__
                    found = (SOURCE_STREAM, f"cannot be read as a change event ({kind})")
            if found is not None:
                out.append(self._rejection(raw, place, stream=found[0], reason=found[1]))
            cluster_time = raw.get("clusterTime")
            at_token = token_of(raw) or at_token
            at_time = cluster_time if isinstance(cluster_time, Timestamp) else at_time
        return out, places

    def _rejection(self, raw: Any, place: Place, *, stream: str, reason: str) -> Rejection:
        """The change `raw`, standing at `place`, as bad input of `stream` for `reason`."""
        origin = place.origin
        cluster_time = raw.get("clusterTime")
        wall_time = raw.get("wallTime")
        return Rejection(
            source=self.source.name,
            position=origin.position
            if origin is not None
            else stream_position(place.at_token, place.at_time),
            reason=reason,
            sha256=origin.sha256 if origin is not None else raw_sha256(raw),
            stream=stream,
            token=token_of(raw),
            cluster_time=cluster_time if isinstance(cluster_time, Timestamp) else None,
            wall_time=wall_time if isinstance(wall_time, datetime) else None,
        )

    def _refuse_reused_tokens(
        self,
        batch: ChangeBatch,
        items: list[ChangeEvent | Rejection],
        places: list[Place],
        existing: dict[str, Event],
    ) -> list[ChangeEvent | Rejection]:
        """The items with each change whose resume token names another change made a
        `Rejection` (see `reused_tokens`): one the log holds, or one earlier in the batch.

        Identities are worked out only for a token found again: the usual batch costs a
        dictionary look-up per change.
        """
        capture = self._require_capture()
        first_at: dict[str, int] = {}
        out = list(items)

        def identity(i: int) -> Identity:
            change = items[i]
            assert isinstance(change, ChangeEvent)
            stream = capture.stream_of(change)
            assert stream is not None
            return change_identity(change, stream)

        for i, item in enumerate(items):
            if not isinstance(item, ChangeEvent) or not capture.wants(item):
                continue
            other = existing.get(item.token_id)
            j = first_at.setdefault(item.token_id, i) if other is None else None
            if j == i:
                continue  # the usual case: a token not seen before
            reason = None
            if other is not None:
                if not same_change(identity(i), recorded_identity(other)):
                    reason = (
                        "its resume token is the id of another change already recorded (seq "
                        f"{other.seq}: {describe(recorded_identity(other), other.entity_key)})"
                    )
            elif j is not None and not same_change(identity(i), identity(j)):
                where = places[j].origin
                at = where.position if where is not None else "in the same batch"
                reason = f"its resume token is that of another change before it ({at})"
            if reason is not None:
                stream = identity(i).stream
                out[i] = self._rejection(batch.changes[i], places[i], stream=stream, reason=reason)
        return out

    async def _record_emptied(
        self,
        capture: Capture,
        change: ChangeEvent,
        stream: str,
        now: datetime,
        *,
        kind: str,
        payload: dict[str, Any],
        only_live: bool = False,
    ) -> None:
        """A collection that no longer holds its documents: dropped (`kind` DROPPED) or
        renamed away (RENAMED, `payload` {to}; the new name is captured only if configured).

        An inferred deletion per live entity, then the stream event, `<kind>:<token>`: last,
        so finding it stored means every deletion is too. With `only_live` (the target of
        a rename: dropped only if it existed), nothing is recorded when no entity is live.
        """
        assert change.clusterTime is not None
        live = await self._live(capture, stream)
        if only_live and not live:
            return
        at = occurred_at_of(change, now)
        for entity_id in live:
            capture.inferred_delete(
                stream,
                entity_id,
                marker=change.clusterTime,
                cluster_time=change.clusterTime,
                occurred_at=at,
                now=now,
            )
        capture.stream_event(
            stream,
            kind,
            event_id=f"{kind}:{change.token_id}",
            payload=payload,
            cluster_time=change.clusterTime,
            occurred_at=at,
            now=now,
        )

    def _record_unknown_contents(
        self,
        capture: Capture,
        change: ChangeEvent,
        stream: str,
        reason: str,
        existing: Container[str],
        now: datetime,
    ) -> None:
        """A file's rename into a captured collection: a `gap` says its documents are unknown.

        A file of changes cannot be re-read as a snapshot: the documents the rename
        brought have no `created` event, and a later update of one folds onto nothing
        (a finding). The gap is at the rename, so the rename's id dedups it.
        """
        assert change.clusterTime is not None
        log.warning(
            "%s: its documents were never recorded as created, and a file cannot be"
            " re-snapshotted; recording a gap",
            reason,
        )
        event_id = gap_id(stream, change.clusterTime)
        if event_id in existing:
            return
        at = occurred_at_of(change, now)
        capture.stream_event(
            stream,
            GAP,
            event_id=event_id,
            payload={
                "from": change.clusterTime,
                "to": change.clusterTime,
                "from_time": at,
                "to_time": at,
                "reason": reason,
            },
            cluster_time=change.clusterTime,
            occurred_at=at,
            now=now,
        )
        self.stats.gaps += 1

    # -- snapshots and gaps ----------------------------------------------------------------
    async def _snapshot(self, cp: Checkpoint) -> Checkpoint:
        """Record every current document as a `snapshot` at `cp.epoch`, then stream from it.

        After a gap (`cp.gap_from` set), entities live before and absent now get an
        inferred deletion. Ids are deterministic, so a crash mid-way re-runs cleanly.
        """
        capture = self._require_capture()
        assert cp.epoch is not None
        epoch = cp.epoch
        at = timestamp_time(epoch)
        for stream in self.settings.collections:
            seen: set[str] = set()
            async for docs in self.source.scan(stream, batch_size=self.settings.batch_size):
                await self.lease.keep()
                now = self.clock.now()
                ids = [snapshot_id(epoch, stream, d["_id"]) for d in docs]
                existing = await self.store.events.existing_ids(ids)
                entity_ids = [d["_id"] for d in docs]
                missing = capture.needs_heads(stream, entity_ids)
                if missing:
                    found = await self.store.events.entity_heads(stream, missing)
                    capture.add_heads(stream, missing, found)
                for doc, event_id in zip(docs, ids, strict=True):
                    seen.add(typed_key(doc["_id"]))
                    if event_id not in existing:
                        capture.snapshot(stream, doc, epoch=epoch, occurred_at=at, now=now)
                        self.stats.snapshots += 1
                cp = msgspec.structs.replace(cp, head=capture.head, updated_at=now)
                await self._commit(capture.take(), cp)
            if cp.gap_from is not None:
                now = self.clock.now()
                live = await self._live(capture, stream)
                gone = [eid for eid in live if typed_key(eid) not in seen]
                for entity_id in gone:
                    capture.inferred_delete(
                        stream, entity_id, marker=epoch, cluster_time=epoch, occurred_at=at, now=now
                    )
                # Entities deleted before a crash are no longer live: nothing is recorded twice.
                events = capture.take()
                cp = msgspec.structs.replace(cp, head=capture.head, updated_at=now)
                await self._commit(events, cp)
        # The scan ran after `epoch` was taken, so it saw every change at or before it:
        # streaming starts at the next tick and records no change twice.
        done = msgspec.structs.replace(
            cp,
            phase="streaming",
            start_at=Timestamp(epoch.time, epoch.inc + 1),
            token=None,
            invalidated=False,
            last_cluster_time=epoch,
            gap_from=None,
            head=capture.head,
            updated_at=self.clock.now(),
        )
        await self.store.checkpoints.put(done)
        return done

    async def _record_gap(self, cp: Checkpoint, *, reason: str | None = None) -> Checkpoint:
        """History lost: a `gap` event per stream, then a re-snapshot at a new epoch.

        `reason` (in the payload) says why, when it is not the change stream's history
        lost (a rename into a captured collection).
        """
        capture = self._require_capture()
        epoch = await self.source.cluster_time()
        gap_from = cp.last_cluster_time or cp.start_at or epoch
        now = self.clock.now()
        ids = [gap_id(stream, gap_from) for stream in self.settings.collections]
        existing = await self.store.events.existing_ids(ids)
        for stream, event_id in zip(self.settings.collections, ids, strict=True):
            missing = capture.needs_heads(stream, [None])
            if missing:
                capture.add_heads(
                    stream, missing, await self.store.events.entity_heads(stream, missing)
                )
            if event_id in existing:
                continue
            capture.stream_event(
                stream,
                GAP,
                event_id=event_id,
                payload={
                    "from": gap_from,
                    "to": epoch,
                    "from_time": timestamp_time(gap_from),
                    "to_time": timestamp_time(epoch),
                    **({} if reason is None else {"reason": reason}),
                },
                cluster_time=epoch,
                occurred_at=timestamp_time(epoch),
                now=now,
            )
        self.stats.gaps += 1
        new_cp = msgspec.structs.replace(
            cp,
            phase="snapshot",
            epoch=epoch,
            gap_from=gap_from,
            token=None,
            invalidated=False,
            head=capture.head,
            updated_at=now,
        )
        await self._commit(capture.take(), new_cp)
        return new_cp

    # -- erasures ---------------------------------------------------------------------------
    async def _erasures(self, cp: Checkpoint) -> Checkpoint:
        """Carry out the queued erasure requests, in request order (between batches)."""
        for request in await self.store.erasures.queued():
            cp = await self._erase(request, cp)
        return cp

    async def _erase(self, request: ErasureRequest, cp: Checkpoint) -> Checkpoint:
        """Remove the entity's payloads and salts, purge its caches, then record `erased`.

        Order matters: the `erased` event is appended last, at the seq the erased
        events were stamped with. A crash in between leaves the request queued;
        the retry stamps them again with the new seq (`restamp`) before appending.
        """
        capture = self._require_capture()
        now = self.clock.now()
        event_id = f"erased:{request.id}"
        if await self.store.events.existing_ids([event_id]):
            return cp  # recorded by an earlier attempt whose request update was lost
        missing = capture.needs_heads(request.stream, [STREAM_ENTITY_ID])
        if missing:
            found = await self.store.events.entity_heads(request.stream, missing)
            capture.add_heads(request.stream, missing, found)
        seq = capture.head.seq + 1
        key = typed_key(request.entity_id)
        rows = [c for c, stream in self._entity_rows if stream == request.stream]
        # The problems the rows to delete hold, for their runners' counts (a retry keeps
        # what the first attempt found: the rows are gone by then).
        held = dict(request.row_problems or {})
        for collection in rows:
            if collection not in held:
                row = (await self.store.read_models.get_many(collection, [key])).get(key)
                held[collection] = held_problems(row)
        # The attempt is noted first, so that a retry can restamp what it erased
        # (the events an earlier attempt stamped are counted again: restamped).
        earlier = request.seq
        request = msgspec.structs.replace(request, seq=seq, row_problems=held or None)
        await self.store.erasures.update(request)
        erased = await self.store.events.erase_payloads(
            request.stream,
            request.entity_id,
            erased_by=seq,
            restamp=earlier,
        )
        await self.store.snapshots.purge_entity(request.stream, request.entity_id)
        for collection in rows:  # never another stream's entity of the same key
            await self.store.read_models.write(collection, [(key, None)])
        capture.stream_event(
            request.stream,
            ERASED,
            event_id=event_id,
            payload={
                "entity_key": request.entity_key,
                # The entity named alone (`int:42` where the string "42" is also `42`);
                # erased events recorded before it carry `entity_key` only.
                "typed_key": typed_key(request.entity_id),
                "events_erased": erased,
                "reason": request.reason,
                "actor": request.actor,
                "request": request.id,
            },
            cluster_time=None,
            occurred_at=now,
            now=now,
            # Who asked: the audit query's `actor` finds the erasures a person requested.
            actor=request.actor,
        )
        cp = msgspec.structs.replace(cp, head=capture.head, updated_at=now)
        await self._commit(capture.take(), cp)
        await self.store.erasures.update(
            msgspec.structs.replace(
                request,
                state="done",
                events_erased=erased,
                finished_at=now,
            )
        )
        self.stats.erasures += 1
        return cp

    # -- helpers ---------------------------------------------------------------------------
    def _require_capture(self) -> Capture:
        assert self._capture is not None, "capture state is set up by _work"
        return self._capture

    async def _existing(self, changes: Sequence[ChangeEvent | Rejection]) -> dict[str, Event]:
        """The stored events of the ids these changes would record, by id (one query, while
        needed: always for a file, whose tokens may repeat; see `reused_tokens`)."""
        if not self._redelivery_possible:
            return {}
        capture = self._require_capture()
        # `ids`: what recording each change always stores (all found: read again);
        # `maybe`: what it stores only sometimes (a rename's drop of an empty target).
        ids: list[str] = []
        maybe: list[str] = []
        for c in changes:
            if isinstance(c, Rejection):
                ids.append(c.event_id)
            elif c.operationType in OP_TO_TYPE:
                ids.append(c.token_id)
            elif c.operationType == "drop":
                ids.append("dropped:" + c.token_id)
            elif c.operationType == "rename":
                if capture.stream_of(c) is not None:
                    ids.append("renamed:" + c.token_id)
                target = capture.stream_into(c)
                if target is not None:
                    maybe.append("dropped:" + c.token_id)
                    if not self.source.can_snapshot and c.clusterTime is not None:
                        ids.append(gap_id(target, c.clusterTime))
        if not ids and not maybe:
            return {}
        found = await self.store.events.events_by_id([*ids, *maybe])
        if not set(ids) <= found.keys() and not self.source.finite:
            self._redelivery_possible = False
        return found

    async def _load_heads(
        self, capture: Capture, changes: Sequence[ChangeEvent | Rejection]
    ) -> None:
        """Load the heads of entities not cached yet: one query per stream in the batch."""
        by_stream: dict[str, list[Any]] = {}
        for c in changes:
            if isinstance(c, Rejection):
                by_stream.setdefault(c.stream, []).append(STREAM_ENTITY_ID)
            elif capture.wants(c):
                assert c.ns is not None and c.ns.coll is not None and c.documentKey is not None
                by_stream.setdefault(c.ns.coll, []).append(c.documentKey["_id"])
            elif c.operationType in ("drop", "rename"):
                for stream in (capture.stream_of(c), capture.stream_into(c)):
                    if stream is not None:
                        by_stream.setdefault(stream, []).append(None)
        for stream, entity_ids in by_stream.items():
            missing = capture.needs_heads(stream, entity_ids)
            if missing:
                found = await self.store.events.entity_heads(stream, missing)
                capture.add_heads(stream, missing, found)

    async def _live(self, capture: Capture, stream: str) -> list[Any]:
        """Entities of a stream that have a document: the store's view updated by this batch."""
        stored = await self.store.events.live_entities(stream)
        capture.add_known_heads(stored)
        live = {typed_key(h.entity_id): h.entity_id for h in stored}
        for tk, head in capture.cached_heads(stream).items():
            if head is None or head.entity_id is STREAM_ENTITY_ID:  # the stream's own record
                continue
            if head.exists:
                live[tk] = head.entity_id
            else:
                live.pop(tk, None)
        return list(live.values())

    async def _commit(self, events: list[Event], cp: Checkpoint) -> None:
        """Store a batch, then its checkpoint (one transaction where the server has them)."""
        capture = self._require_capture()
        try:
            async with self.store.transaction() as session:
                if events:
                    added = await self.store.events.append(events, session=session)
                    if added != len(events):
                        # The log already held some: the checkpoint's head would run ahead
                        # of it (and verify call the log truncated). Never committed so.
                        raise LogConflict(
                            f"the log already held {len(events) - added} of the"
                            f" {len(events)} events built for a batch"
                        )
                await self.store.checkpoints.put(cp, session=session)
        except BaseException:
            # What was built is unknown to be stored: reload heads before going on.
            capture.forget()
            raise
        self.stats.recorded += len(events)
        if events:
            await self._index_listings(events)
        if events and self.checkpointer is not None:
            await self.checkpointer.after_batch(events)

    async def _index_listings(self, events: Sequence[Event] | None) -> None:
        """Index a stored batch (None: all the index lacks) for the stream and entity listings.

        Never fails capture: the batch is stored, and the listings read what the index
        lacks from the log itself; the next batch (or start) catches it up. A lost lease
        still ends the work.
        """
        try:
            added = await self.store.events.index_listings(events, heartbeat=self.lease.keep)
        except LeaseLost:
            raise
        except Exception as exc:
            if not self._index_failing:
                log.warning(
                    "the listings' index could not be written (%s: %s); the stream and entity"
                    " listings read the log meanwhile, and the next batch tries again",
                    type(exc).__name__,
                    exc,
                )
                self._index_failing = True
                if self.on_index_problem is not None:
                    self.on_index_problem(
                        f"the listings' index could not be written ({type(exc).__name__}: {exc});"
                        " the stream and entity listings read the log meanwhile"
                    )
            return
        if self._index_failing:
            log.info("the listings' index is written again")
            self._index_failing = False
            if self.on_index_problem is not None:
                self.on_index_problem(None)
        if added:
            log.info("the listings' index: %d events indexed from the log", added)

    async def _idle(self, *, final: bool = False) -> None:
        """Nothing pending: the checkpointer's turn (`final`: this run ends here)."""
        if self.checkpointer is not None:
            await self.checkpointer.idle(final=final)


def _resume_point(cp: Checkpoint) -> ResumePoint | None:
    """Where to reopen the stream: after the token (startAfter past an invalidate), or at a time."""
    if cp.token is not None:
        if cp.invalidated:
            return ResumePoint(start_after=cp.token)
        return ResumePoint(resume_after=cp.token)
    if cp.start_at is not None:
        return ResumePoint(start_at_operation_time=cp.start_at)
    return None


def _rename_reason(change: ChangeEvent) -> str:
    """What a rename into a captured collection did, for logs and the gap's payload."""
    ns, to = change.ns, change.to
    assert ns is not None and to is not None
    return f"{ns.db}.{ns.coll} was renamed to {to.db}.{to.coll}"
