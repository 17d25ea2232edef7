"""Partitioned rebuilds: N processes each fold a share of the entities, their rows merged.

The entities are split by a stable hash of their identity (stream, type and key of
the `_id`: `partition_of`), so every event of an entity lands in one partition and
is folded there in seq order. Each partition applies the projection to its own
entities' changes only (`fold_partition`, pure) and returns its partial rows; rows of
the same key from several partitions are combined with the projection's `merge`, in
partition order (`merge_partitions`). The result is written to the fresh collection
and swapped in with one rename, as a one-worker rebuild is.

Processes: `LocalFolds` runs partitions in forked worker processes that inherit
their events (nothing is pickled but the rows coming back). Where fork is
unavailable, or with `processes=False`, they run in-process (the same rows; tests
use it). Which partitions an instance folds, and how several instances share a
job's partitions, is `projections.claims`.

A partition's entity states are all kept in memory while it folds.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Final

from bson import ObjectId

from eventstore.keys import typed_key
from eventstore.model import STREAM_TYPES, Event
from projections.api import Projection
from projections.idempotent import checked_merge
from projections.replay import Replay
from projections.states import state_key

log = logging.getLogger(__name__)

MAX_WORKERS: Final = 16
Rows = dict[str, dict[str, Any] | None]


class NoMerge(ValueError):
    """Several workers asked for a projection without `merge`."""


class FoldFailed(Exception):
    """The projection's keys, skippable or apply raised on a partition's change at `seq`.

    `error` is the projection's own error (`ValueError: ...`). It crosses the process
    boundary whole (pickled with its fields), so the rebuild fails at the seq, as a
    one-worker rebuild does.
    """

    def __init__(self, seq: int, error: str) -> None:
        super().__init__(f"at seq {seq}: {error}")
        self.seq = seq
        self.error = error

    def __reduce__(self) -> tuple[Any, ...]:
        return (FoldFailed, (self.seq, self.error))


def entity_identity(event: Event) -> str:
    """The stable text naming an event's entity: stream, and the typed key of its `_id`."""
    cls = event.entity_id.__class__
    if cls is ObjectId:
        return f"{event.stream}\x00oid:{event.entity_key}"
    if cls is str:
        return f"{event.stream}\x00str:{event.entity_key}"
    return f"{event.stream}\x00{typed_key(event.entity_id)}"


def partition_of(event: Event, partitions: int) -> int:
    """The partition of an event's entity: the same in every process and on every run (crc32)."""
    if partitions == 1:
        return 0
    return zlib.crc32(entity_identity(event).encode("utf-8", "surrogatepass")) % partitions


def split(events: Sequence[Event], partitions: int) -> list[list[Event]]:
    """The entity events of each partition, in seq order (stream events belong to none)."""
    out: list[list[Event]] = [[] for _ in range(partitions)]
    for e in events:
        if e.type not in STREAM_TYPES:
            out[partition_of(e, partitions)].append(e)
    return out


def fold_partition(projection: Projection, events: Sequence[Event]) -> Rows:
    """Fold these events (one partition's, in seq order) and apply the projection: its rows.

    Pure. Rows deleted by the projection are None. Every state is kept (a partition's
    entities' states all fit, as the module says); an entity whose first event here is
    not its first version is folded onto what the partition has of it (nothing: None).
    """
    replay = Replay(projection)
    try:
        at = replay.run(events)
        while at < len(events):
            e = events[at]
            entry = replay.states.get(state_key(e))
            replay.seed(e, entry[1] if entry is not None else None)
            at = replay.run(events, at)
        replay.release()
    except Exception as exc:
        if replay.failed_seq is None:  # not the projection's own code: as it is
            raise
        raise FoldFailed(replay.failed_seq, f"{type(exc).__name__}: {exc}") from exc
    return replay.rows


def merge_partitions(projection: Projection, parts: Sequence[Rows]) -> dict[str, dict[str, Any]]:
    """The rows of all partitions, those of one key combined with `merge` (in partition order)."""
    # A plugin's merge is checked as its apply is, and given the newest `_seq` of the two
    # (projections.idempotent): a merge that raises or returns what cannot be stored fails
    # the rebuild naming merge and the key.
    merge = checked_merge(projection)
    out: dict[str, dict[str, Any]] = {}
    for part in parts:
        for key, row in part.items():
            if row is None:
                continue
            have = out.get(key)
            if have is None:
                out[key] = row
                continue
            if merge is None:
                raise NoMerge(f"{projection.name} has no merge: rebuild it with one worker")
            out[key] = merge(key, have, row)
    return out


# -- running partitions in processes --------------------------------------------------------
# What forked workers inherit, by fold: the projection and each partition's events (set
# before the pool forks; never pickled). Several pools of one process each have their own.
_INHERITED: dict[int, tuple[Projection, list[list[Event]]]] = {}
_NEXT: list[int] = [0]


def _forked() -> None:
    """A forked worker's start: the heap it inherited is left out of its collector's passes.

    The process is ours alone (this is not library code sharing a process), so
    `gc.freeze` is safe here. Without it every full pass in the worker walked the
    parent's heap (the log, other rebuilds' rows), touching each page it lives
    in and so copying it from the parent.
    """
    gc.freeze()


def _run_inherited(token: int, index: int) -> Rows:
    projection, parts = _INHERITED[token]
    return fold_partition(projection, parts[index])


def can_fork() -> bool:
    """True where worker processes can be forked (Linux, BSD): partitions run in parallel."""
    return "fork" in multiprocessing.get_all_start_methods()


class LocalFolds:
    """Folds partitions of `parts` in up to `slots` forked processes of this machine.

    The processes inherit the events (registered before the pool forks, never
    pickled); only the rows come back. A worker process that dies (killed, out of
    memory) breaks its pool: every partition it was folding is folded again in a
    fresh pool, up to `RETRIES` more times, before the fold fails with
    `BrokenProcessPool`. Where fork is unavailable, or with `processes=False`, a
    partition is folded in-process when submitted (the same rows; tests use it).
    """

    RETRIES: Final = 2

    def __init__(
        self,
        projection: Projection,
        parts: list[list[Event]],
        slots: int,
        *,
        processes: bool = True,
    ) -> None:
        self.projection = projection
        self.parts = parts
        self.slots = max(slots, 1)
        self.forked = processes and can_fork()
        self._pool: ProcessPoolExecutor | None = None
        self._token = 0
        self._tasks: set[asyncio.Task[Rows]] = set()
        # How many times a pool broke under this fold (worker processes that died).
        self.broken = 0
        if self.forked:
            _NEXT[0] += 1
            self._token = _NEXT[0]
            _INHERITED[self._token] = (projection, parts)

    def submit(self, index: int) -> asyncio.Future[Rows]:
        """Start folding partition `index`: its rows, when done."""
        loop = asyncio.get_running_loop()
        if not self.forked:
            future: asyncio.Future[Rows] = loop.create_future()
            try:
                future.set_result(fold_partition(self.projection, self.parts[index]))
            except Exception as exc:
                future.set_exception(exc)
                future.exception()  # as in `_done`: a failure after the job failed is nobody's
            return future
        task = loop.create_task(self._fold(index))
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Rows]) -> None:
        # A partition whose fold failed after the job had already failed (a broken pool
        # fails every partition in it) is nobody's to report: its failure is seen here.
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()

    async def _fold(self, index: int) -> Rows:
        loop = asyncio.get_running_loop()
        for attempt in range(self.RETRIES + 1):
            pool = self._live_pool()
            try:
                return await loop.run_in_executor(pool, _run_inherited, self._token, index)
            except BrokenProcessPool as exc:
                if attempt == self.RETRIES:  # said for people, not as the executor words it
                    raise BrokenProcessPool(
                        f"a rebuild worker process died folding partition {index}, "
                        f"{self.RETRIES + 1} times (killed, or out of memory)"
                    ) from exc
                if self._pool is pool:  # the first of its partitions to notice replaces it
                    self.broken += 1
                    self._pool = None
                    pool.shutdown(wait=False, cancel_futures=True)
                log.warning(
                    "projection %s: a rebuild worker process died folding partition %d; "
                    "folding it again (attempt %d of %d)",
                    self.projection.name,
                    index,
                    attempt + 2,
                    self.RETRIES + 1,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _live_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:  # forks now: every partition's events are registered
            self._pool = ProcessPoolExecutor(
                max_workers=self.slots,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_forked,
            )
        return self._pool

    def close(self) -> None:
        """Stop the processes (a fold still running is abandoned) and forget the events.

        Idle processes are waited for (each ends at once on the pool's sentinel). Left to
        end on their own, one of them at times blocked on the call queue's lock at the
        interpreter's exit, and the command never returned (about 1 run in 5, 2 workers).
        A process still folding is terminated: its rows are nobody's now.
        """
        abandoned = [task for task in self._tasks if not task.done()]
        for task in abandoned:
            task.cancel()
        pool, self._pool = self._pool, None
        if pool is not None:
            if abandoned:
                for process in list(getattr(pool, "_processes", {}).values()):
                    process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
        _INHERITED.pop(self._token, None)


__all__ = [
    "MAX_WORKERS",
    "FoldFailed",
    "LocalFolds",
    "NoMerge",
    "entity_identity",
    "fold_partition",
    "merge_partitions",
    "partition_of",
    "split",
]
