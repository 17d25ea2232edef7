"""Partitioned rebuilds across instances: the partitions of a job are claimed by any instance.

The instance running the job (its coordinator, holding the projection's lease)
fixes the head every partition folds up to, records the partitions `queued` and
claims them itself, up to as many at once as it has local processes. Any other
instance running the service claims queued partitions too (`PartitionClaimer`
in `projections.worker`). A claim is a lease on one partition (`Jobs.claim_partition`):
its holder renews it while it folds; a claim that expires (its claimer died) is
claimed again by whoever looks next, and the dead claimer can no longer finish it.

Where the rows go: the coordinator keeps the rows of the partitions it folded in
memory; another instance writes its partition's rows to a staging collection of
its own (`staging_name`: one per job, partition and attempt, so a dead claimer's
partial rows are never read) and marks the partition succeeded. Once every
partition has succeeded, the coordinator reads the staged rows, merges the
partitions (`merge_partitions`, in partition order: the same rows whoever folded
what) and installs them with one rename, as a one-worker rebuild does. A failed
partition fails the job; a crash anywhere leaves the live model untouched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import msgspec

from eventstore.model import STREAM_TYPES, Event, Job, Partition
from eventstore.ports import Clock, Store
from projections.api import Projection
from projections.partitioned import (
    FoldFailed,
    LocalFolds,
    Rows,
    merge_partitions,
    partition_of,
)
from projections.states import EntityKey, state_key

log = logging.getLogger(__name__)

BUILDING_SUFFIX: Final = "__rebuild"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
# How many staged rows are written, or read back, per command.
STAGE_BATCH: Final = 1000
# How many entities' partitions `read_partitions` remembers (then it starts again).
_MAX_REMEMBERED: Final = 1 << 20


def _error_of(exc: BaseException) -> str:
    """A failed partition's error as its job records it (`at seq 40: ValueError: ...`)."""
    return str(exc) if isinstance(exc, FoldFailed) else f"{type(exc).__name__}: {exc}"


class PartitionFailed(RuntimeError):
    """A partition of the job failed (here or on another instance): the job fails."""


class ClaimLost(RuntimeError):
    """This instance's claim on a partition expired and another instance took it over."""


def staging_name(collection: str, job: Job, partition: Partition) -> str:
    """The staging collection of one attempt at one partition of a job."""
    return f"{collection}{BUILDING_SUFFIX}_{job.job[:16]}_p{partition.index}_{partition.attempts}"


async def drop_staging(store: Store, collection: str, job: Job) -> None:
    """Drop the staging collections of every attempt at every partition of the job."""
    for p in job.partitions:
        for attempt in range(1, p.attempts + 1):
            await store.read_models.drop(
                staging_name(collection, job, msgspec.structs.replace(p, attempts=attempt))
            )


async def read_partitions(
    store: Store,
    head: int,
    count: int,
    *,
    batch_size: int,
    only: int | None = None,
    keep: Callable[[], Awaitable[object]] | None = None,
) -> list[list[Event]]:
    """The entity events up to `head` of each of `count` partitions (of partition `only`)."""
    out: list[list[Event]] = [[] for _ in range(count)]
    # Each entity's partition, worked out (crc32) once per entity rather than once per event.
    index_of: dict[EntityKey, int] = {}
    position = 0
    while position < head and (
        batch := await store.events.read(after_seq=position, limit=batch_size)
    ):
        for e in batch:
            if e.seq > head:
                break
            if e.type in STREAM_TYPES:
                continue
            who = state_key(e)  # as exact as entity_identity, and cheaper to build
            index = index_of.get(who)
            if index is None:
                index = partition_of(e, count)
                if len(index_of) >= _MAX_REMEMBERED:
                    index_of.clear()
                index_of[who] = index
            if only is None or index == only:
                out[index].append(e)
        position = batch[-1].seq
        if keep is not None:
            await keep()
    return out


async def read_staged(store: Store, collection: str) -> Rows:
    """A staging collection's rows, by key."""
    rows: Rows = {}
    after: str | None = None
    while page := await store.read_models.query(
        collection, filters={}, limit=STAGE_BATCH, after=after
    ):
        for row in page:
            after = row.pop("_id")
            rows[after] = row
        if len(page) < STAGE_BATCH:
            break
    return rows


class ClaimKeeper:
    """Renews one claim every third of its lease (a claim not renewed expires)."""

    def __init__(self, store: Store, job: Job, claimed: Partition, *, clock: Clock, ttl: float):
        self.store, self.job, self.claimed, self.clock, self.ttl = store, job, claimed, clock, ttl
        self.renewed = clock.now()

    def until(self) -> Any:
        """When the claim expires if renewed now."""
        return self.clock.now() + timedelta(seconds=self.ttl)

    async def keep(self, processed: int = 0, total: int = 0) -> None:
        """Renew when due; raise `ClaimLost` when another instance holds the partition now."""
        if (self.clock.now() - self.renewed).total_seconds() < self.ttl / 3:
            return
        if not await self.store.jobs.renew_partition(
            self.job.job, self.claimed, until=self.until(), processed=processed, total=total
        ):
            raise ClaimLost(f"partition {self.claimed.index} of job {self.job.job} was taken over")
        self.renewed = self.clock.now()

    async def finish(
        self, state: str, processed: int, total: int, failure: BaseException | None = None
    ) -> bool:
        """Record the partition's end (and why it failed); False when the claim was lost meanwhile."""
        return await self.store.jobs.finish_partition(
            self.job.job,
            self.claimed,
            state=state,
            processed=processed,
            total=total,
            error=None if failure is None else _error_of(failure),
            failed_seq=failure.seq if isinstance(failure, FoldFailed) else None,
        )


async def _folded(
    future: asyncio.Future[Rows], keeper: ClaimKeeper, total: int, poll: float
) -> Rows:
    """The fold's rows, renewing the claim while a process computes them."""
    while not future.done():
        await asyncio.wait([future], timeout=poll)
        if not future.done():
            await keeper.keep(0, total)
    return future.result()


async def run_claimed(
    store: Store,
    projection: Projection,
    job: Job,
    claimed: Partition,
    *,
    clock: Clock,
    lease_seconds: float,
    batch_size: int = 1000,
    processes: bool = True,
) -> bool:
    """Fold a partition this instance claimed of another instance's job, stage its rows, finish.

    Returns True when the partition succeeded here. A failing fold marks it failed
    (the coordinator then fails the job); a lost claim leaves it to the instance that
    took it over. A store error is raised (the worker retries; the claim expires).
    """
    keeper = ClaimKeeper(store, job, claimed, clock=clock, ttl=lease_seconds)

    async def keep() -> None:
        await keeper.keep()

    try:
        parts = await read_partitions(
            store, job.head, job.workers, batch_size=batch_size, only=claimed.index, keep=keep
        )
    except ClaimLost:  # reading a long log outlasted the claim: the new holder folds it
        return _taken_over(projection, claimed)
    events = parts[claimed.index]
    total = len(events)
    folds = LocalFolds(projection, parts, 1, processes=processes)
    try:
        rows = await _folded(folds.submit(claimed.index), keeper, total, lease_seconds / 3)
    except ClaimLost:
        return _taken_over(projection, claimed)
    except Exception as exc:  # the projection failed on this partition: the job fails
        error = _error_of(exc)
        log.warning("rebuild of %s: partition %d failed: %s", projection.name, claimed.index, error)
        await keeper.finish(FAILED, 0, total, exc)
        return False
    finally:
        folds.close()
    target = staging_name(projection.collection, job, claimed)
    items = [(k, r) for k, r in rows.items() if r is not None]
    try:
        for start in range(0, len(items), STAGE_BATCH):
            await store.read_models.write(target, items[start : start + STAGE_BATCH])
            await keeper.keep(total, total)
    except ClaimLost:
        await store.read_models.drop(target)
        return _taken_over(projection, claimed)
    if not await keeper.finish(SUCCEEDED, total, total):
        await store.read_models.drop(target)
        return _taken_over(projection, claimed)
    return True


def _taken_over(projection: Projection, claimed: Partition) -> bool:
    """Say that another instance holds the partition now; False (it did not succeed here)."""
    log.warning("rebuild of %s: partition %d taken over", projection.name, claimed.index)
    return False


@dataclass(frozen=True, kw_only=True)
class Coordination:
    """What the coordinator needs of the runner: its store, lease, clock and settings."""

    store: Store
    projection: Projection
    clock: Clock
    owner: str
    lease_seconds: float
    batch_size: int
    processes: bool
    # Local processes at once (None: as many as the job has partitions).
    slots: int | None
    keep_lease: Callable[[], Awaitable[object]]
    poll_seconds: float = 0.25


async def coordinate(
    c: Coordination,
    job: Job,
    *,
    on_progress: Callable[[int], Awaitable[object]] | None = None,
) -> tuple[dict[str, dict[str, Any]], Job]:
    """Run a partitioned job to its merged rows (not yet installed), with any instance's help.

    `job` is running, `head` set. Returns the merged rows and the job as stored.
    Raises `PartitionFailed` when a partition fails anywhere.
    """
    store, projection, n = c.store, c.projection, job.workers
    stored = await store.jobs.get(job.job)
    earlier = {p.index: p.attempts for p in (stored.partitions if stored else [])}
    # Attempts go on from an earlier run of the job, one skipped (a claim of the earlier
    # partitions may slip in before they are replaced): staging names are never reused.
    await store.jobs.set_partitions(
        job.job,
        [Partition(index=i, attempts=earlier[i] + 1 if i in earlier else 0) for i in range(n)],
    )
    slots = min(c.slots or n, n)
    parts: list[list[Event]] | None = None
    folds: LocalFolds | None = None
    mine: dict[int, tuple[ClaimKeeper, asyncio.Future[Rows]]] = {}
    results: dict[int, Rows] = {}
    try:
        while True:
            await c.keep_lease()
            while len(mine) < slots:
                now = c.clock.now()
                claimed = await store.jobs.claim_partition(
                    job.job, owner=c.owner, now=now, until=now + timedelta(seconds=c.lease_seconds)
                )
                if claimed is None:
                    break
                if parts is None or folds is None:
                    parts = await read_partitions(
                        store, job.head, n, batch_size=c.batch_size, keep=c.keep_lease
                    )
                    folds = LocalFolds(projection, parts, slots, processes=c.processes)
                keeper = ClaimKeeper(store, job, claimed, clock=c.clock, ttl=c.lease_seconds)
                mine[claimed.index] = (keeper, folds.submit(claimed.index))
            for index, (keeper, future) in list(mine.items()):
                assert parts is not None
                total = len(parts[index])
                if not future.done():
                    try:
                        await keeper.keep(0, total)
                    except ClaimLost:  # another instance re-runs it; this fold's rows go unused
                        del mine[index]
                    continue
                del mine[index]
                failure = future.exception()
                if failure is not None:
                    await keeper.finish(FAILED, 0, total, failure)
                    raise failure
                if await keeper.finish(SUCCEEDED, total, total):
                    results[index] = future.result()
            current = await store.jobs.get(job.job)
            if current is None:
                raise PartitionFailed(f"job {job.job} is no longer recorded")
            failed = next((p for p in current.partitions if p.state == FAILED), None)
            if failed is not None and failed.failed_seq is not None and failed.error:
                # The projection's code failed on another instance: the rebuild fails at that
                # seq, as one worker (and a partition folded here) does.
                seq = failed.failed_seq
                raise FoldFailed(seq, failed.error.removeprefix(f"at seq {seq}: "))
            if failed is not None:
                raise PartitionFailed(
                    f"partition {failed.index} failed on {failed.owner}: {failed.error}"
                )
            if on_progress is not None:
                await on_progress(sum(p.total for p in current.partitions if p.state == SUCCEEDED))
            if all(p.state == SUCCEEDED for p in current.partitions):
                break
            if mine:
                await asyncio.wait([f for _, f in mine.values()], timeout=c.poll_seconds)
            else:  # the others' partitions: look again (an expired claim is taken over here)
                await c.clock.sleep(c.poll_seconds)
    finally:
        if folds is not None:
            folds.close()
    by_partition: list[Rows] = []
    for p in current.partitions:
        if p.index in results:
            by_partition.append(results.pop(p.index))
        else:  # folded by another instance
            by_partition.append(
                await read_staged(store, staging_name(projection.collection, job, p))
            )
            await c.keep_lease()
    rows = merge_partitions(projection, by_partition)
    return rows, current


__all__ = [
    "BUILDING_SUFFIX",
    "ClaimKeeper",
    "ClaimLost",
    "Coordination",
    "PartitionFailed",
    "coordinate",
    "drop_staging",
    "read_partitions",
    "read_staged",
    "run_claimed",
    "staging_name",
]
