"""The projector: follows the log in `seq` order from each projection's checkpoint.

Per batch: read a page of events, fold each entity's state before and after
(from a bounded cache, backed by the history service), apply the projection
(pure), then one bulk write of the rows and the checkpoint (in one transaction
where the server has them). Rows keep the last `seq` applied, so a crash
between the two writes never double-counts.

A rebuild replays the whole log into a fresh collection and swaps it in with
one rename; readers see the old model or the new, never a mix. Nobody else
writes that collection, so a rebuild keeps the rows it wrote in memory (bounded)
instead of reading them back, and folds and applies each event in turn.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, NoReturn

import msgspec

from eventstore.failures import TRANSIENT, classify
from eventstore.history import History
from eventstore.keys import candidates, typed_key
from eventstore.leasing import LeaseKeeper, LeaseLost, default_owner
from eventstore.model import ERASED, Checkpoint, Event, Head, Job
from eventstore.ports import Clock, Store
from eventstore.row_filters import matches
from eventstore.row_problems import held_problems
from eventstore.worker_state import FAILED, RUNNING, STOPPED
from projections.api import Change, Projection
from projections.claims import BUILDING_SUFFIX as BUILDING_SUFFIX
from projections.claims import Coordination, coordinate, drop_staging
from projections.idempotent import (
    check_named,
    check_rewritten,
    checked_keys,
    exited,
    guarded,
    plugin_exit,
)
from projections.partitioned import FoldFailed, NoMerge
from projections.replay import Replay, view_of
from projections.states import SharedStateCache, SharedStates, forget_erased, state_before
from projections.states import StateCache as StateCache  # re-exported: tests import it here

# How long a batch's folding and applying runs before the loop gets a turn: a projection
# whose apply is slow (a plugin's that calls out, or computes) lags on its own, and the
# API, health probes, capture and the other projections go on meanwhile.
TURN_SECONDS: Final = 0.02
log = logging.getLogger(__name__)

# The workers' vocabulary (eventstore.worker_state), plus `rebuilding`.
REBUILDING: Final = "rebuilding"
# Where runners record their status (a ReadModels collection of one row per projection).
STATE_COLLECTION: Final = "projection_states"
# The entity states a one-worker rebuild keeps by default (ProjectionRunner.rebuild_states).
REBUILD_STATES: Final = 500_000
# Seconds between two records of a changed `state_reads` while following (other changes
# of the status are recorded at once).
READS_RECORDED_EVERY: Final = 5.0


class RunnerStatus(msgspec.Struct, kw_only=True):
    """What the API and CLI show of a projection."""

    name: str
    position: int = 0
    state: str = STOPPED
    rebuilt_at: datetime | None = None
    failed_seq: int | None = None
    error: str | None = None
    # The projection's `config` its rows were built with (None: not known).
    built_with: str | None = None
    # The problems its rows hold now (values they could not use: projections.money, orders):
    # each row's records and the older ones it dropped (`projections.replay.held_problems`).
    problems: int = 0
    # True once `problems` counts what the rows hold (a status recorded before counted the
    # records ever written, some of them since replaced: `_recall` counts those again).
    problems_held: bool = True
    # Entity states following read from history because the state cache (STATE_CACHE)
    # did not hold them, since this runner started.
    state_reads: int = 0


class RebuildProgress(msgspec.Struct, kw_only=True):
    """A rebuild's progress: events processed of the log's total, rows written so far."""

    processed: int = 0
    total: int = 0
    seconds: float = 0.0
    written: int = 0


class ProjectionRunner:
    """Runs one projection from its checkpoint, holding `projection:<name>`."""

    # Seconds, for pacing a job's progress writes (a test sets a fake on its runner).
    monotonic: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(
        self,
        store: Store,
        projection: Projection,
        *,
        clock: Clock,
        history: History | None = None,
        batch_size: int = 1000,
        lease_seconds: float = 10.0,
        owner: str | None = None,
        poll_seconds: float = 0.05,
        max_poll_seconds: float = 1.0,
        rebuild_rows: int = 50_000,
        state_cache: int = 20_000,
        rebuild_states: int | None = None,
        states: SharedStates | None = None,
    ) -> None:
        self.store = store
        self.projection = projection
        self.clock = clock
        self.history = history or History(store)
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.max_poll_seconds = max_poll_seconds
        # How many rows a rebuild keeps in memory between batches (see `rebuild`).
        self.rebuild_rows = rebuild_rows
        # How many entity states following keeps (STATE_CACHE; or `states`, shared by the
        # runners of a process), and a one-worker rebuild
        # (by default 500,000, or STATE_CACHE when larger). A state not kept is folded again
        # from history, which costs its versions since the last snapshot: over a log with
        # more entities than the cache, in random order, that was most of a rebuild's time
        # (56 us/event against 15) and of following's (77 against 17).
        self.state_cache = state_cache
        self.rebuild_states = (
            rebuild_states if rebuild_states is not None else max(REBUILD_STATES, state_cache)
        )
        self.role = f"projection:{projection.name}"
        self.lease = LeaseKeeper(
            store.leases, self.role, owner or default_owner(), ttl=lease_seconds, clock=clock
        )
        # Following's cache: the process's shared states when given (each event folded once
        # for every projection), else one of this runner's own.
        self.following: StateCache | SharedStateCache = (
            states.view(self.history)
            if states is not None
            else StateCache(self.history, size=self.state_cache)
        )
        self.cache: StateCache | SharedStateCache = self.following
        # What the runner calls: the projection's keys and apply, each change applied to a
        # row once, and a plugin's output checked (projections.idempotent).
        self.keys = checked_keys(projection)
        self.apply = guarded(projection)
        self.status = RunnerStatus(name=projection.name)
        # Partitioned rebuilds fork worker processes (False: the partitions run in-process).
        self.processes = True
        # How many partitions this instance folds at once (None: all of the job's).
        self.local_slots: int | None = None
        # Called after each page applied, or found none (the log answered): supervision.
        self.on_step: Callable[[], None] | None = None
        # Whether the live collection's indexes were made (by this runner's first step).
        self.indexed = False

    # -- following -----------------------------------------------------------------------------
    async def position(self) -> int:
        """The last seq applied (the checkpoint)."""
        cp = await self.store.checkpoints.get(self.role)
        return cp.head.seq if cp is not None else 0

    async def step(self) -> int:
        """Apply the next page of events; returns how many events it covered (0 = caught up)."""
        target = self.projection.collection
        if not self.indexed:  # once: the rows' look-ups by field are served by indexes
            await self.store.read_models.ensure_indexes(target, self.projection.indexes)
            self.indexed = True
        events = await self.store.events.read(
            after_seq=await self.position(), limit=self.batch_size
        )
        if not events:
            return 0
        if self.projection.per_entity:
            forget_erased(self.cache, events)
        changes = await self.cache.changes(events)
        keys = await self._keys(changes)
        needed = sorted({k for ks in keys for k in ks})
        rows: dict[str, dict[str, Any] | None] = dict(
            await self.store.read_models.get_many(target, needed)
        )
        per_entity = self.projection.per_entity
        erasures = [
            e
            for e in events
            if e.type == ERASED and (self.projection.forget or e.stream == per_entity)
        ]
        if erasures:  # the changes before each erasure, the erasure, then those after it
            pending: dict[str, dict[str, Any] | None] = {}
            at = 0
            for erased in erasures:
                upto = bisect_left(changes, erased.seq, key=_change_seq)
                pending.update(await self._apply(changes[at:upto], rows, keys[at:upto]))
                pending.update(await self._forget(erased, rows))
                if erased.stream == per_entity:
                    pending.update(await self._erased_row(erased, rows))
                at = upto
            pending.update(await self._apply(changes[at:], rows, keys[at:]))
        else:
            pending = await self._apply(changes, rows, keys)
        self.status.state_reads = self.following.state_reads
        last = events[-1]
        cp = Checkpoint(
            name=self.role,
            head=Head(seq=last.seq, log_hash=last.log_hash),
            updated_at=self.clock.now(),
        )
        async with self.store.transaction() as session:
            if pending:
                await self.store.read_models.write(target, list(pending.items()), session=session)
            await self.store.checkpoints.put(cp, session=session)
        self.status.position = last.seq
        return len(events)

    async def _apply(
        self,
        changes: Sequence[Change],
        rows: dict[str, dict[str, Any] | None],
        keys: list[list[str]],
    ) -> dict[str, dict[str, Any] | None]:
        """Apply changes in order onto `rows` (updated in place); the rows written, by key.

        `keys` are the changes' keys. `rows` holds every row they touch (None or no
        entry: no row). Each apply sees only the rows of its own keys. A failing
        apply stops the projection (FAILED).
        """
        apply = self.apply
        pending: dict[str, dict[str, Any] | None] = {}
        get = rows.get
        named = self.projection.skippable is not None
        clock = time.perf_counter
        turn = clock() + TURN_SECONDS
        for change, touched in zip(changes, keys, strict=True):
            if clock() >= turn:  # a slow apply (a plugin's) must not hold the whole process
                await asyncio.sleep(0)
                turn = clock() + TURN_SECONDS
            try:
                writes = apply(view_of(get, touched), change)
                if named:  # as a rebuild requires of it (projections.replay)
                    for w in writes:
                        check_named(w.key, touched)
            except Exception as exc:
                await self._fail(change.event.seq, exc)
            for w in writes:
                key, row = w.key, w.row
                self.status.problems += held_problems(row) - held_problems(get(key))
                rows[key] = pending[key] = row
        return pending

    async def _forget(
        self, erased: Event, rows: dict[str, dict[str, Any] | None]
    ) -> dict[str, dict[str, Any] | None]:
        """Rewrite the rows holding data of the entity `erased` records (`Projection.forget`).

        The rows are those the filter finds in the store, as this batch left them
        (`rows`, updated in place); the rows written, by key. A `forget_typed` projection is
        given the typed key; an `erased` record written before it named its entity by entity
        key alone, so each typed key that entity key may be is given then.
        """
        if self.projection.forget is None:
            return {}
        document = erased.document or {}
        entity_key, typed = document.get("entity_key"), document.get("typed_key")
        if not isinstance(entity_key, str):
            return {}
        keys = [entity_key]
        if self.projection.forget_typed:
            keys = (
                [typed]
                if isinstance(typed, str)
                else [typed_key(v) for v in candidates(entity_key)]
            )
        out: dict[str, dict[str, Any] | None] = {}
        for key in keys:
            out.update(await self._forget_one(erased, key, rows))
        return out

    async def _forget_one(
        self, erased: Event, key: str, rows: dict[str, dict[str, Any] | None]
    ) -> dict[str, dict[str, Any] | None]:
        """`_forget` for one key `forget` is given."""
        forget = self.projection.forget
        assert forget is not None
        try:  # a plugin's: a failure stops the projection at the erasure, as apply's does
            spec = forget(erased.stream, key)
            if spec is None:
                return {}
            filters, rewrite = spec
            alternatives = _filter_list(filters)
        except BaseException as exc:
            await self._fail(erased.seq, _contained("forget", exc))
        for filters in alternatives:
            after: str | None = None
            while page := await self.store.read_models.query(
                self.projection.collection, filters=filters, limit=1000, after=after
            ):
                for found in page:
                    rows.setdefault(str(found["_id"]), found)  # this batch's own is the newer
                after = str(page[-1]["_id"])
        out: dict[str, dict[str, Any] | None] = {}
        for row_key, row in sorted(rows.items()):
            if row is not None and any(matches(row, f) for f in alternatives):
                kept = {k: v for k, v in row.items() if k != "_id"}
                try:
                    rewritten = rewrite(kept)
                    check_rewritten(row_key, rewritten)
                except BaseException as exc:
                    await self._fail(erased.seq, _contained("forget's rewrite", exc))
                rows[row_key] = out[row_key] = rewritten
                self.status.problems += held_problems(rewritten) - held_problems(row)
        return out

    async def _erased_row(
        self, erased: Event, rows: dict[str, dict[str, Any] | None]
    ) -> dict[str, dict[str, Any] | None]:
        """A per-entity model at an `erased` record of its stream: the erased entity's row goes,
        and the problems it held leave the count; the rows written, by key.

        The erasure deleted the row already and noted the problems it held
        (`ErasureRequest.row_problems`), which are taken off the count here. A row found
        here was written back since, by a batch read before the erasure (with the erased
        data): it is deleted again, and the problems it holds counted off instead.
        """
        document = erased.document or {}
        request_id = document.get("request")
        request = await self.store.erasures.get(request_id) if isinstance(request_id, str) else None
        key = typed_key(request.entity_id) if request is not None else document.get("typed_key")
        if not isinstance(key, str):
            return {}
        collection = self.projection.collection
        if key in rows:
            row = rows[key]
        else:
            row = (await self.store.read_models.get_many(collection, [key])).get(key)
        if row is not None:
            rows[key] = None
            self.status.problems -= held_problems(row)
            return {key: None}
        noted = (request.row_problems or {}).get(collection, 0) if request is not None else 0
        self.status.problems = max(self.status.problems - noted, 0)
        return {}

    async def _replay(
        self, replay: Replay, events: Sequence[Event] = (), *, release: bool = False
    ) -> None:
        """Fold and apply a batch in `replay` (states read from history where not kept), then
        with `release` apply what it holds; a failing keys, skippable or apply stops the
        projection (FAILED) at its change. The problems its rows recorded are counted.
        """
        at = 0
        try:
            turn = time.perf_counter() + TURN_SECONDS
            while (at := replay.run(events, at, until=turn)) < len(events):
                if replay.paused:  # a turn for the loop: requests, health, other workers
                    await asyncio.sleep(0)
                    turn = time.perf_counter() + TURN_SECONDS
                    continue
                event = events[at]
                replay.seed(event, await state_before(self.history, event))
            if release:
                replay.release()
        except Exception as exc:
            if replay.failed_seq is None:
                raise
            await self._fail(replay.failed_seq, exc)
        finally:
            self.status.problems += replay.problems
            replay.problems = 0

    async def _keys(self, changes: Sequence[Change]) -> list[list[str]]:
        """The keys of each change; a failing `keys` stops the projection (FAILED)."""
        keys_of = self.keys
        out: list[list[str]] = []
        for change in changes:
            try:
                out.append(keys_of(change))
            except Exception as exc:
                await self._fail(change.event.seq, exc)
        return out

    async def _fail(self, seq: int, exc: Exception) -> NoReturn:
        """Stop the projection at `seq`: its keys or apply raised `exc` (recorded in its status)."""
        self.status.state = FAILED
        self.status.failed_seq = seq
        self.status.error = described(exc)
        await self.publish()
        raise ProjectionFailed(self.projection.name, seq, exc) from exc

    async def catch_up(self) -> int:
        """Take the lease, apply pages until the log's end, give the lease back; events covered."""
        if not await self.lease.try_acquire():
            raise LeaseLost(f"{self.role} is held by another instance")
        try:
            total = 0
            while n := await self.step():
                total += n
                await self.lease.keep()
            return total
        finally:
            await self.lease.release()

    async def rebuild_now(
        self, on_progress: Callable[[RebuildProgress], object] | None = None
    ) -> RebuildProgress:
        """Take the lease, rebuild, give the lease back (when no instance runs the projection)."""
        if not await self.lease.try_acquire():
            raise LeaseLost(f"{self.role} is held by another instance")
        try:
            return await self.rebuild(on_progress)
        finally:
            await self.hand_back()

    async def hand_back(self) -> None:
        """Give the lease back after a rebuild run here: nobody follows the projection now."""
        if self.lease.held and self.status.state != FAILED:
            self.status.state = STOPPED
            try:
                await self.publish()
            except Exception:  # the store may be what failed; the lease still goes back
                log.warning("projection %s: could not record its state", self.projection.name)
        await self.lease.release()

    async def run(
        self, *, stop: asyncio.Event | None = None, until_caught_up: bool = False
    ) -> None:
        """Follow the log while holding the lease (a standby waits); a failing apply stops this one."""
        try:
            while not (stop and stop.is_set()):
                if not await self.lease.acquire(stop):
                    return
                self.status.state = RUNNING
                self.status.position = await self.position()
                self.status.failed_seq = self.status.error = None
                await self._recall()
                await self._recover()
                published_problems = published_reads = 0
                reads_at = 0.0

                async def record() -> None:
                    nonlocal published_problems, published_reads, reads_at
                    published_problems = self.status.problems
                    published_reads, reads_at = self.status.state_reads, self.monotonic()
                    await self.publish()

                await record()
                idle = self.poll_seconds
                try:
                    while not (stop and stop.is_set()):
                        await self.lease.keep()
                        job = await self.store.jobs.active(self.projection.name)
                        if job is not None and job.state == "queued":
                            await self._run_job_following(job)
                            continue
                        applied = await self.step()
                        if self.on_step is not None:
                            self.on_step()
                        if applied == 0:
                            if self.status.state_reads != published_reads:  # caught up
                                await record()
                            if until_caught_up:
                                return
                            # Idle: wait for an append (the log wakes us: a change stream on
                            # `events`, or the in-process condition), at most `idle` seconds, so
                            # the lease is renewed and a job queued elsewhere is seen; the bound
                            # backs off to max_poll_seconds and new events reset it.
                            head = self.status.position
                            if not await self.store.events.wait_for_append(head, idle):
                                await self.clock.sleep(0)
                            idle = min(idle * 2, self.max_poll_seconds)
                        else:
                            idle = self.poll_seconds
                            reads_due = (
                                self.status.state_reads != published_reads
                                and self.monotonic() - reads_at >= READS_RECORDED_EVERY
                            )
                            if self.status.problems != published_problems or reads_due:
                                await record()
                except LeaseLost:
                    log.warning("projection %s: lease lost, standing by", self.projection.name)
        finally:
            if self.status.state != FAILED:
                self.status.state = STOPPED
                if self.lease.held:
                    try:
                        await self.publish()
                    except Exception:  # the store may be what failed; the lease still goes back
                        log.warning(
                            "projection %s: could not record its state", self.projection.name
                        )
            await self.lease.release()

    async def _run_job_following(self, job: Job) -> None:
        """Run a queued rebuild job between batches; the projection follows on if it fails.

        A failed rebuild leaves the live model as it was (valid up to the checkpoint) and
        the job says why, so following goes on from the checkpoint. Two failures stop the
        runner instead: the projection's own code raising (keys, apply, skippable, on any
        partition: `ProjectionFailed`), which leaves the projection `failed` at that seq
        with the error, as a failing apply does while following and a one-worker rebuild
        run elsewhere does; and a store that is away (transient), for its supervisor to
        retry.
        """
        live_problems = self.status.problems  # the live rows' count, which a rebuild resets
        try:
            await self.run_job(job)
        except LeaseLost:
            raise
        except Exception as exc:
            if classify(exc) == TRANSIENT:
                raise
            failed = exc.seq if isinstance(exc, ProjectionFailed) else None
            log.warning(
                "projection %s: rebuild job %s failed (%s: %s); %s",
                self.projection.name,
                job.job,
                type(exc).__name__,
                exc,
                "following the live model on"
                if failed is None
                else f"the projection is failed at seq {failed}, its live model as it was",
            )
            await self.store.read_models.drop(self.projection.collection + BUILDING_SUFFIX)
            self.cache = self.following
            self.status.position = await self.position()
            await self._recall()
            self.status.problems = live_problems
            if failed is not None:
                # `_fail` recorded the seq and the error; the live model is untouched
                self.status.state = FAILED
                await self.publish()
                raise
            self.status.state = RUNNING
            self.status.failed_seq = self.status.error = None
            await self.publish()

    async def publish(self) -> None:
        """Record this projection's status where every instance's API and CLI can read it."""
        row = msgspec.to_builtins(self.status, builtin_types=(datetime,))
        await self.store.read_models.write(STATE_COLLECTION, [(self.projection.name, row)])

    async def _recall(self) -> None:
        """Take over what the last runner recorded: the rows' config, the problems counted.

        An empty model (position 0) is about to be built with this projection's config.
        """
        recorded = (
            await self.store.read_models.get_many(STATE_COLLECTION, [self.projection.name])
        ).get(self.projection.name, {})
        built_with = recorded.get("built_with")
        self.status.built_with = built_with if isinstance(built_with, str) else None
        problems = recorded.get("problems")
        self.status.problems = problems if isinstance(problems, int) else 0
        if self.status.position == 0:
            self.status.built_with = self.projection.config
            self.status.problems = 0
        elif recorded and recorded.get("problems_held") is not True:
            self.status.problems = await self._problems_held()

    async def _problems_held(self) -> int:
        """The problems the live rows hold, counted from them (one pass, a page at a time)."""
        total, after = 0, None
        while page := await self.store.read_models.query(
            self.projection.collection, filters={}, limit=1000, after=after
        ):
            total += sum(held_problems(row) for row in page)
            after = str(page[-1]["_id"])
            await self.lease.keep()
        return total

    async def _recover(self) -> None:
        """On taking the lease: drop a crashed rebuild's leftovers, re-queue its job.

        The live model was never touched by it (rebuilds write a fresh collection).
        """
        await self.store.read_models.drop(self.projection.collection + BUILDING_SUFFIX)
        job = await self.store.jobs.active(self.projection.name)
        if job is not None and job.state == "running":
            log.warning(
                "projection %s: re-queuing job %s of a stopped instance",
                self.projection.name,
                job.job,
            )
            await drop_staging(self.store, self.projection.collection, job)
            await self.store.jobs.update(msgspec.structs.replace(job, state="queued", processed=0))

    # -- rebuilding ----------------------------------------------------------------------------
    async def rebuild(
        self,
        on_progress: Callable[[RebuildProgress], object] | None = None,
        *,
        workers: int = 1,
        job: Job | None = None,
    ) -> RebuildProgress:
        """Replay the whole log into a fresh collection, swap it in, move the checkpoint.

        Call while holding the lease (`run` and the job runner do). A crash leaves
        the live model untouched; the fresh collection is dropped on the next start.

        Nobody else writes the fresh collection, so the rows are kept in memory (up
        to `rebuild_rows`) and never read back; the changed ones are written in one
        bulk write when `rebuild_rows` of them have changed, or the log has ended.
        Past the bound, rows are written after each batch, forgotten and read back
        as batches need them.

        With `workers` > 1 (and a projection with `merge`), the entities are split
        into that many partitions, tracked in `job` (one is recorded when not given)
        and folded by this instance's processes and any other instance's
        (`projections.claims`).
        """
        building = self.projection.collection + BUILDING_SUFFIX
        await self.store.read_models.drop(building)
        # Made on the fresh collection, the indexes come with it when it is swapped in.
        await self.store.read_models.ensure_indexes(building, self.projection.indexes)
        self.status.position = await self.position()
        await self._recall()  # what the live rows were built with, while they are served
        self.status.state = REBUILDING
        await self.publish()
        if workers > 1:
            return await rebuild_partitioned(self, workers, job=job, on_progress=on_progress)
        # One worker keeps many more states than following does: in `replay`, then (once rows
        # are read back from `building`) in this cache, where they move.
        self.cache = StateCache(self.history, size=self.rebuild_states)
        progress = RebuildProgress(total=(await self.store.events.head()).seq)
        # The live rows' count stays shown until the swap; the rebuild counts its own.
        live_problems, self.status.problems = self.status.problems, 0
        started = time.perf_counter()
        # While every row of `building` is in memory (it started empty), events are folded
        # and applied in `replay`, which keeps the rows as written (None: deleted, or known
        # absent) and the entity states, and holds the changes the projection's next change
        # of the same entity rewrites (`projections.replay`).
        replay = Replay(self.projection, states=self.rebuild_states)
        rows = replay.rows
        complete = True
        position, log_hash = 0, Head().log_hash
        # Keys of the rows changed since the last write to `building` (their values are in
        # `rows`): written together, each once, when they reach `rebuild_rows` or the log
        # ends. A row changed by many batches is copied into the store once, not once per
        # batch; and only keys are kept here, not a second reference to each row, which made
        # every row outlive its batch and the garbage collector walk them again and again.
        unwritten = replay.changed

        async def flush() -> None:
            if unwritten:
                await self.store.read_models.write(building, [(k, rows.get(k)) for k in unwritten])
                progress.written += len(unwritten)
                unwritten.clear()

        async def report() -> None:
            progress.seconds = time.perf_counter() - started
            if on_progress is not None:
                reported = on_progress(progress)
                if inspect.isawaitable(reported):
                    await reported

        while events := await self.store.events.read(after_seq=position, limit=self.batch_size):
            if complete:  # no row to read: fold and apply each event in turn
                if self.projection.per_entity:
                    forget_erased(replay, events)
                await self._replay(replay, events)
            else:
                if self.projection.per_entity:
                    forget_erased(self.cache, events)
                changes = await self.cache.changes(events)
                keys = await self._keys(changes)
                missing = sorted({k for ks in keys for k in ks if k not in rows})
                if missing:
                    found = await self.store.read_models.get_many(building, missing)
                    for k in missing:
                        rows[k] = found.get(k)
                unwritten.update(await self._apply(changes, rows, keys))
            if not complete or len(unwritten) >= self.rebuild_rows:
                await flush()
            if len(rows) > self.rebuild_rows:
                if complete:  # rows are read back from here on: nothing is held, states move
                    await self._replay(replay, release=True)
                    self.cache.load(replay.states)
                    replay.states.clear()
                await flush()  # rows forgotten from here on are read back from `building`
                rows.clear()
                complete = False
            last = events[-1]
            position, log_hash = last.seq, last.log_hash
            progress.processed = position
            progress.total = max(progress.total, position)
            await self.lease.keep()
            await report()
            # A turn for the loop between batches, whatever the store: on one that never
            # waits (memory) a rebuild in a service's loop would hold every request, its own
            # job's progress and a stop until the swap.
            await asyncio.sleep(0)
        if complete:  # the log has ended: each entity's last change is applied
            await self._replay(replay, release=True)
            replay.states.clear()
        if unwritten:
            await flush()
            await report()
        rows.clear()
        problems, self.status.problems = self.status.problems, live_problems
        await self.store.read_models.swap(building, self.projection.collection)
        await self.store.checkpoints.put(
            Checkpoint(
                name=self.role,
                head=Head(seq=position, log_hash=log_hash),
                updated_at=self.clock.now(),
            )
        )
        # The rebuild's states go; following goes on with its own (each a state at one
        # version of one entity: never stale).
        self.cache = self.following
        self.status.rebuilt_at = self.clock.now()
        self.status.position = position
        self.status.built_with = self.projection.config
        self.status.problems = problems
        self.status.state = RUNNING
        await self.publish()
        progress.seconds = time.perf_counter() - started
        return progress

    async def install(
        self,
        rows: dict[str, dict[str, Any]],
        head: Head,
        progress: RebuildProgress,
        started: float,
    ) -> RebuildProgress:
        """Write rows computed elsewhere (a partitioned rebuild) as the model at `head`, swap it in."""
        building = self.projection.collection + BUILDING_SUFFIX
        items = list(rows.items())
        problems = sum(held_problems(row) for _, row in items)
        for start in range(0, len(items), self.batch_size):
            await self.store.read_models.write(
                building, list(items[start : start + self.batch_size])
            )
            await self.lease.keep()
        await self.store.read_models.swap(building, self.projection.collection)
        await self.store.checkpoints.put(
            Checkpoint(name=self.role, head=head, updated_at=self.clock.now())
        )
        self.status.rebuilt_at = self.clock.now()
        self.status.position = head.seq
        self.status.built_with = self.projection.config
        self.status.problems = problems
        self.status.state = RUNNING
        await self.publish()
        progress.seconds = time.perf_counter() - started
        return progress

    async def run_job(
        self, job: Job, on_progress: Callable[[RebuildProgress], object] | None = None
    ) -> Job:
        """Run a requested rebuild (holding the lease), reporting progress in the job."""
        now = self.clock.now()
        job = msgspec.structs.replace(job, state="running", started_at=now)
        await self.store.jobs.update(job)
        last_report = self.monotonic()

        async def report(p: RebuildProgress) -> None:
            nonlocal job, last_report
            job = msgspec.structs.replace(job, processed=p.processed, total=p.total)
            if on_progress is not None:
                on_progress(p)
            if self.monotonic() - last_report >= 0.5:  # progress costs a write per half second
                last_report = self.monotonic()
                await self.store.jobs.update(job)

        workers = job.workers
        if workers > 1 and self.projection.merge is None:
            log.warning(
                "projection %s has no merge: rebuilding it with one worker", self.projection.name
            )
            note = f"{self.projection.name} has no merge: rebuilt with one worker ({workers} asked)"
            workers = 1
            job = msgspec.structs.replace(job, workers=1, note=note)
        try:
            head = (await self.store.events.head()).seq
            if workers > 1:  # every partition folds up to the head as it is now
                job = msgspec.structs.replace(job, head=head, total=head)
                await self.store.jobs.update(job)
                progress = await self.rebuild(report, workers=workers, job=job)
            else:  # the total is known before the first batch (a failure in it says so too)
                job = msgspec.structs.replace(job, total=head)
                await self.store.jobs.update(job)
                progress = await self.rebuild(report)
        except Exception as exc:
            job = msgspec.structs.replace(
                job,
                state="failed",
                finished_at=self.clock.now(),
                error=f"{type(exc).__name__}: {exc}",
            )
            if workers > 1:  # what its partitions folded, as they show it
                job = await _partitions_processed(self.store, job)
            await self.store.jobs.update(job)
            raise
        job = msgspec.structs.replace(
            job,
            state="succeeded",
            processed=progress.processed,
            total=progress.total,
            finished_at=self.clock.now(),
        )
        await self.store.jobs.update(job)
        return await self.store.jobs.get(job.job) or job


async def _partitions_processed(store: Store, job: Job) -> Job:
    """A failed partitioned job with `processed` the sum of its partitions' as recorded (a
    succeeded partition's events count; the job never reached the merge)."""
    try:
        recorded = await store.jobs.get(job.job)
    except Exception:  # the store may be what failed: the job says what it last knew
        return job
    partitions = recorded.partitions if recorded is not None else job.partitions
    if not partitions:
        return job
    return msgspec.structs.replace(job, processed=sum(p.processed for p in partitions))


async def _head_at(store: Store, seq: int) -> Head:
    """The log's head as it was at `seq` (its event's log hash)."""
    found = await store.events.read(after_seq=seq - 1, limit=1) if seq > 0 else []
    return Head(seq=seq, log_hash=found[0].log_hash) if found else await store.events.head()


async def rebuild_partitioned(
    runner: ProjectionRunner,
    workers: int,
    *,
    job: Job | None = None,
    on_progress: Callable[[RebuildProgress], object] | None = None,
) -> RebuildProgress:
    """The runner's projection rebuilt by `workers` partitions; the same rows as one worker.

    The partitions are tracked in `job` (or in a job recorded here) and claimed by
    this instance's processes and by any other instance's (`projections.claims`);
    the merged rows are installed as a one-worker rebuild installs them, with one
    rename. Call while holding the projection's lease.
    """
    projection = runner.projection
    if projection.merge is None:
        raise NoMerge(f"{projection.name} has no merge: rebuild it with one worker")
    store, clock = runner.store, runner.clock
    started = time.perf_counter()
    own = job is None
    if job is None:
        now = clock.now()
        job = Job(
            job=uuid.uuid4().hex,
            projection=projection.name,
            requested_at=now,
            started_at=now,
            state="running",
            workers=workers,
        )
        await store.jobs.create(job)
    head = await _head_at(store, job.head) if job.head else await store.events.head()
    job = msgspec.structs.replace(
        job, state="running", workers=workers, head=head.seq, total=head.seq
    )
    await store.jobs.update(job)
    progress = RebuildProgress(total=head.seq)

    async def advanced(processed: int) -> None:
        progress.processed = processed
        progress.seconds = time.perf_counter() - started
        if on_progress is not None:
            reported = on_progress(progress)
            if inspect.isawaitable(reported):
                await reported

    coordination = Coordination(
        store=store,
        projection=projection,
        clock=clock,
        owner=runner.lease.owner,
        lease_seconds=runner.lease.ttl,
        batch_size=runner.batch_size,
        processes=runner.processes,
        slots=runner.local_slots,
        keep_lease=runner.lease.keep,
    )
    try:
        try:
            rows, job = await coordinate(coordination, job, on_progress=advanced)
        except FoldFailed as exc:  # a partition folded here: failed at its seq, as one worker
            await runner._fail(exc.seq, exc)
        progress.written = len(rows)
        progress.processed = head.seq
        done = await runner.install(rows, head, progress, started)
    except BaseException as exc:
        try:
            recorded = await store.jobs.get(job.job) or job
            await drop_staging(store, projection.collection, recorded)
            # What was still queued or folding elsewhere is abandoned with the job.
            if any(p.state not in ("succeeded", "failed") for p in recorded.partitions):
                await store.jobs.set_partitions(
                    job.job,
                    [
                        p
                        if p.state in ("succeeded", "failed")
                        else msgspec.structs.replace(
                            p, state="failed", error="abandoned: the job failed", expires_at=None
                        )
                        for p in recorded.partitions
                    ],
                )
            if own:
                await store.jobs.update(
                    await _partitions_processed(
                        store,
                        msgspec.structs.replace(
                            recorded,
                            state="failed",
                            finished_at=clock.now(),
                            error=f"{type(exc).__name__}: {exc}",
                        ),
                    )
                )
        except Exception:  # the store may be what failed; the leftovers go on the next start
            log.warning("projection %s: could not clear a failed rebuild", projection.name)
        raise
    await drop_staging(store, projection.collection, job)
    if own:
        await store.jobs.update(
            msgspec.structs.replace(
                job, state="succeeded", processed=head.seq, finished_at=clock.now()
            )
        )
    return done


async def request_rebuild(
    runner: ProjectionRunner,
    *,
    job_id: str | None = None,
    on_progress: Callable[[RebuildProgress], object] | None = None,
    workers: int = 1,
) -> Job:
    """Record a rebuild request; run it here when no instance holds the projection's lease.

    Raises `JobConflict` while a rebuild of the projection is queued or running.
    Returns the job as recorded (queued when another instance will run it).
    """
    job = Job(
        job=job_id or uuid.uuid4().hex,
        projection=runner.projection.name,
        requested_at=runner.clock.now(),
        workers=workers,
    )
    await runner.store.jobs.create(job)
    if not await runner.lease.try_acquire():
        return job  # the holder picks it up between batches
    try:
        return await runner.run_job(job, on_progress)
    finally:
        await runner.hand_back()


def _change_seq(change: Change) -> int:
    return change.event.seq


def _filter_list(filters: Any) -> list[Mapping[str, Any]]:
    """`forget`'s filters as a list of equality filters (one, or a list: a row matching any)."""
    if isinstance(filters, Mapping):
        return [filters]
    if isinstance(filters, (list, tuple)):
        for i, f in enumerate(filters):
            if not isinstance(f, Mapping):
                raise TypeError(f"forget's filters: item {i} is {type(f).__name__}, not a mapping")
        return list(filters)
    raise TypeError(
        f"forget's filters: expected a mapping or a list of mappings, not {type(filters).__name__}"
    )


def described(exc: BaseException) -> str:
    """A projection's error as its status shows it: `ValueError: ...` (from any process)."""
    if isinstance(exc, FoldFailed):
        return exc.error
    return f"{type(exc).__name__}: {exc}"


class ProjectionFailed(Exception):
    """A projection's apply raised: only that projection stops."""

    def __init__(self, name: str, seq: int, cause: BaseException) -> None:
        super().__init__(f"projection {name} failed at seq {seq}: {described(cause)}")
        self.name = name
        self.seq = seq


def _contained(source: str, exc: BaseException) -> Exception:
    """A plugin's failure as an Exception (`PluginExited` for one that is none), or `exc`
    raised again when it is not the plugin's to contain (a command's Ctrl-C)."""
    if isinstance(exc, Exception):
        return exc
    if plugin_exit(exc):
        return exited(source, exc)
    raise exc
