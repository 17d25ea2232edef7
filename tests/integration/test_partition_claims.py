"""Several instances rebuild one projection together over one (mongomock) store.

Instance A runs the job (it holds the projection's lease) and folds one partition at
a time; B and C claim partitions with their `PartitionClaimer`. B crashes
mid-partition (after staging part of its rows); once its claim expires (a fake
clock), C re-runs that partition. The rows equal a one-worker rebuild, A swaps them
in with one rename, once, and nothing staged is left behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import pytest
from mongomock_motor import AsyncMongoMockClient

from api.workers import claimer
from eventstore.clock import FakeClock
from eventstore.model import STREAM_TYPES, Job, Partition
from eventstore.mongo.store import MongoStore
from eventstore.ports import JobConflict
from eventstore.settings import Settings
from eventstore.supervisor import Supervisor
from projections import claims
from projections.api import Change, Projection, Write
from projections.orders import CUSTOMER_TOTALS, ORDERS_BY_STATUS
from projections.partitioned import partition_of
from projections.runner import ProjectionFailed, ProjectionRunner, RebuildProgress, request_rebuild
from projections.worker import PartitionClaimer
from tests.integration.test_partitioned_rebuild import rows, simulate

DB = "claims_test"
LEASE = 10.0


class GatedClock(FakeClock):
    """A fake clock whose sleepers wait until the test opens the gate (one wake-up per opening)."""

    def __init__(self) -> None:
        super().__init__(advance_on_sleep=False)
        self.gate = asyncio.Event()
        self.sleeping = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeping.set()
        await self.gate.wait()
        self.gate.clear()

    async def wake(self, task: asyncio.Task[Any]) -> None:
        """Let the sleeper run once; wait until it sleeps again or its task has ended."""
        self.sleeping.clear()
        self.gate.set()
        await _until(lambda: self.sleeping.is_set() or task.done())


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(5000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never met")


class Crash(Exception):
    """The instance dies here."""


class CrashingReadModels:
    """B's read models: B dies in its first staging write, half of that write done (its
    partition's entities fall where the hash of their random ObjectIds puts them, so how
    many rows it stages varies: the crash must not depend on it)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def write(self, collection: str, writes: Sequence[Any], *, session: Any = None) -> None:
        if claims.BUILDING_SUFFIX + "_" in collection:
            await self.inner.write(collection, list(writes)[: len(writes) // 2])
            raise Crash("instance B died mid-partition")
        await self.inner.write(collection, writes)


class CrashingJobs:
    """B's jobs: had its partition no row to stage, B dies before marking it done."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def finish_partition(self, *args: Any, **kw: Any) -> bool:
        raise Crash("instance B died before finishing its partition")


class Dying:
    """A's view of a port: once A is dead, nothing it does reaches the store any more."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.dead = False

    def __getattr__(self, name: str) -> Any:
        if self.dead:
            raise Crash("instance A is dead")
        return getattr(self.inner, name)


class CountingSwaps:
    """Counts an instance's swaps (renames of a fresh collection over the live one)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.swaps: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def swap(self, building: str, live: str) -> None:
        self.swaps.append((building, live))
        await self.inner.swap(building, live)


async def _shop(client: Any, orders: int, steps: int) -> MongoStore:
    store = MongoStore(client, DB)
    await store.detect()
    await store.events.ensure_indexes()
    return await simulate(store, 11, orders, steps)


@pytest.mark.parametrize("projection", [CUSTOMER_TOTALS, ORDERS_BY_STATUS], ids=lambda p: p.name)
async def test_three_instances_rebuild_together_and_a_crashed_partition_is_rerun(
    projection: Projection,
) -> None:
    client: Any = AsyncMongoMockClient()
    a_store = await _shop(client, orders=10, steps=50)
    b_store, c_store = MongoStore(client, DB), MongoStore(client, DB)
    b_store.read_models = CrashingReadModels(b_store.read_models)
    b_store.jobs = CrashingJobs(b_store.jobs)
    counted = [CountingSwaps(s.read_models) for s in (a_store, b_store, c_store)]
    clock = GatedClock()
    coll = projection.collection

    # the one-worker rebuild the partitions must equal
    reference = ProjectionRunner(a_store, projection, clock=clock, lease_seconds=LEASE, owner="a")
    await reference.rebuild_now()
    expected = await rows(a_store, coll)
    expected_cp = await a_store.checkpoints.get(reference.role)
    await a_store.read_models.write(coll, [("marker", {"old": True})])
    live = await rows(a_store, coll)
    for store, swaps in zip((a_store, b_store, c_store), counted, strict=True):
        store.read_models = swaps

    a = ProjectionRunner(a_store, projection, clock=clock, lease_seconds=LEASE, batch_size=7)
    a.lease.owner = "a"
    a.processes, a.local_slots = False, 1  # A folds one partition at a time, in-process
    seen: list[int] = []

    def bar(p: RebuildProgress) -> None:
        seen.append(p.processed)

    task = asyncio.create_task(request_rebuild(a, workers=3, on_progress=bar))
    await _until(clock.sleeping.is_set)  # A folded its first partition and waits for the others
    job = await a_store.jobs.active(projection.name)
    assert job is not None and job.state == "running" and job.workers == 3
    head = (await a_store.events.head()).seq
    assert job.head == head
    assert [(p.state, p.owner) for p in job.partitions] == [
        ("succeeded", "a"),
        ("queued", None),
        ("queued", None),
    ]
    with pytest.raises(JobConflict):  # still one active job per projection
        await request_rebuild(ProjectionRunner(c_store, projection, clock=clock), workers=2)

    def claimer_of(store: MongoStore, owner: str) -> PartitionClaimer:
        worker = PartitionClaimer(
            store, [projection], clock=clock, owner=owner, lease_seconds=LEASE, batch_size=7
        )
        worker.processes = False
        return worker

    b, c = claimer_of(b_store, "b"), claimer_of(c_store, "c")
    with pytest.raises(Crash):
        await b.claim_once()  # B claims partition 1, stages part of its rows, dies
    job = await a_store.jobs.active(projection.name)
    assert job is not None
    crashed = job.partitions[1]
    assert (crashed.state, crashed.owner, crashed.attempts) == ("running", "b", 1)
    assert await rows(a_store, coll) == live  # the live model is untouched

    assert await c.claim_once()  # C takes the queued partition 2
    assert not await c.claim_once()  # partition 1 is still B's: its claim has not expired
    await clock.wake(task)  # A looks: nothing to claim, nothing to merge yet
    job = await a_store.jobs.active(projection.name)
    assert job is not None
    assert [(p.state, p.owner) for p in job.partitions] == [
        ("succeeded", "a"),
        ("running", "b"),
        ("succeeded", "c"),
    ]

    clock.advance(LEASE + 1)  # B never renewed: its claim expires
    assert await c.claim_once()  # C re-runs partition 1
    assert c.folded == 2
    await clock.wake(task)  # A merges the staged partitions and swaps
    done = await task
    assert done.state == "succeeded" and done.workers == 3, done
    assert [(p.state, p.owner, p.attempts) for p in done.partitions] == [
        ("succeeded", "a", 1),
        ("succeeded", "c", 2),
        ("succeeded", "c", 1),
    ]
    assert sum(p.total for p in done.partitions) == head
    assert await rows(a_store, coll) == expected  # equal to one worker's rows
    got_cp = await a_store.checkpoints.get(a.role)
    assert got_cp is not None and expected_cp is not None and got_cp.head == expected_cp.head
    # one rename, by the instance running the job, once
    assert [s.swaps for s in counted] == [[(coll + claims.BUILDING_SUFFIX, coll)], [], []]
    names = await a_store.db.list_collection_names()
    assert [n for n in names if claims.BUILDING_SUFFIX in n] == []  # B's partial rows dropped
    # the progress bar moved forward to the whole log
    assert seen and seen[-1] == head and seen == sorted(seen)


async def test_a_serving_instance_s_claimer_folds_a_partition_under_its_supervisor() -> None:
    """The `rebuild:partitions` worker of `run` and `serve` (mongodb://): its own loop claims."""

    client: Any = AsyncMongoMockClient()
    store = await _shop(client, orders=6, steps=20)
    clock = FakeClock(advance_on_sleep=False)
    head = (await store.events.head()).seq
    job = Job(job="shared", projection=ORDERS_BY_STATUS.name, workers=2, state="running")
    await store.jobs.create(job)
    await store.jobs.update(msgspec.structs.replace(job, head=head))
    await store.jobs.set_partitions("shared", [Partition(index=0), Partition(index=1)])

    settings = Settings(uri="mongodb://localhost", lease_seconds=LEASE)
    worker = claimer(store, [ORDERS_BY_STATUS], settings, clock=clock, owner="serving")
    worker.processes, worker.poll_seconds = False, 0.01
    supervisor = Supervisor(clock=clock, instance="serving", lease_seconds=LEASE)
    supervisor.add(worker)
    await supervisor.start()
    try:
        for _ in range(500):
            stored = await store.jobs.get("shared")
            assert stored is not None
            if all(p.state == "succeeded" for p in stored.partitions):
                break
            await asyncio.sleep(0.01)
    finally:
        await supervisor.stop()
    stored = await store.jobs.get("shared")
    assert stored is not None
    assert [(p.state, p.owner) for p in stored.partitions] == [
        ("succeeded", "serving"),
        ("succeeded", "serving"),
    ]
    assert sum(p.total for p in stored.partitions) == head
    staged = [
        await rows(store, claims.staging_name(ORDERS_BY_STATUS.collection, stored, p))
        for p in stored.partitions
    ]
    counts: dict[str, int] = {}
    for staged_rows in staged:
        for key, row in staged_rows.items():
            counts[key] = counts.get(key, 0) + row["count"]
    reference = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock)
    await reference.rebuild_now()
    assert counts == {
        k: r["count"] for k, r in (await rows(store, ORDERS_BY_STATUS.collection)).items()
    }


async def test_when_the_instance_running_the_job_dies_the_next_lease_holder_runs_it_again() -> None:
    """A dies after B staged a partition: its successor drops the staged rows, re-queues the
    job, runs it again from the start (every partition anew) and swaps once."""
    client: Any = AsyncMongoMockClient()
    a_store = await _shop(client, orders=8, steps=30)
    b_store, d_store = MongoStore(client, DB), MongoStore(client, DB)
    clock = GatedClock()
    projection, coll = CUSTOMER_TOTALS, CUSTOMER_TOTALS.collection
    reference = ProjectionRunner(a_store, projection, clock=clock, lease_seconds=LEASE)
    await reference.rebuild_now()
    expected = await rows(a_store, coll)
    await a_store.read_models.write(coll, [("marker", {"old": True})])
    live = await rows(a_store, coll)

    a_view = MongoStore(client, DB)
    rows_of_a, jobs_of_a = Dying(a_view.read_models), Dying(a_view.jobs)
    a_view.read_models, a_view.jobs = rows_of_a, jobs_of_a
    a = ProjectionRunner(a_view, projection, clock=clock, lease_seconds=LEASE, owner="a")
    a.processes, a.local_slots = False, 1
    task = asyncio.create_task(request_rebuild(a, workers=3))
    await _until(clock.sleeping.is_set)
    b = PartitionClaimer(b_store, [projection], clock=clock, owner="b", lease_seconds=LEASE)
    b.processes = False
    assert await b.claim_once() and b.folded == 1  # partition 1 staged by B
    rows_of_a.dead = jobs_of_a.dead = True  # A dies while it waits for the others:
    task.cancel()  # whatever it still tries to clean up never reaches the store
    with pytest.raises(asyncio.CancelledError):
        await task
    job = await a_store.jobs.active(projection.name)
    assert job is not None and job.state == "running"
    staged = claims.staging_name(coll, job, job.partitions[1])
    assert await rows(a_store, staged)
    assert await rows(a_store, coll) == live

    clock.advance(LEASE + 1)  # A's projection lease expires
    d = ProjectionRunner(d_store, projection, clock=clock, lease_seconds=LEASE, owner="d")
    d.processes = False
    swaps = CountingSwaps(d_store.read_models)
    d_store.read_models = swaps
    await d.run(until_caught_up=True)  # takes the lease, re-queues the job, runs it
    done = await d_store.jobs.get(job.job)
    assert done is not None and done.state == "succeeded", done
    # every partition folded again by D (attempts go on: staging names are never reused)
    assert [(p.state, p.owner) for p in done.partitions] == [("succeeded", "d")] * 3
    assert [p.attempts for p in done.partitions] == [3, 3, 2]
    assert await rows(a_store, coll) == expected
    assert swaps.swaps == [(coll + claims.BUILDING_SUFFIX, coll)]
    names = await a_store.db.list_collection_names()
    assert [n for n in names if claims.BUILDING_SUFFIX in n] == []


async def test_a_partition_failing_on_another_instance_fails_the_rebuild_at_its_seq() -> None:
    """B folds a partition and the projection's code raises there: A's rebuild fails as one
    worker does (ProjectionFailed, status `failed` at that seq), not with the seq lost."""
    client: Any = AsyncMongoMockClient()
    a_store = await _shop(client, orders=8, steps=40)
    b_store = MongoStore(client, DB)
    events = await a_store.events.read(after_seq=0, limit=10_000)
    # the first entity change of partition 1 (of 2) after seq 10: B folds it, not A
    bad = next(
        e.seq
        for e in events
        if e.seq > 10 and e.type not in STREAM_TYPES and partition_of(e, 2) == 1
    )

    def keys(change: Change) -> list[str]:
        return [change.event.entity_key]

    def apply(rows: Any, change: Change) -> list[Write]:
        if change.event.seq == bad:
            raise ValueError(f"boom at {bad}")
        return [Write(key=change.event.entity_key, row={"v": change.event.version})]

    def merge(key: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        return a

    failing = Projection(name="fails", collection="rm_fails", keys=keys, apply=apply, merge=merge)
    clock = GatedClock()
    alone = ProjectionRunner(a_store, failing, clock=clock, owner="x")
    with pytest.raises(ProjectionFailed) as one:
        await alone.rebuild_now()
    a = ProjectionRunner(a_store, failing, clock=clock, lease_seconds=LEASE, owner="a")
    a.processes, a.local_slots = False, 1
    task = asyncio.create_task(request_rebuild(a, workers=2))
    await _until(clock.sleeping.is_set)  # A folded partition 0 and waits for the other
    b = PartitionClaimer(b_store, [failing], clock=clock, owner="b", lease_seconds=LEASE)
    b.processes = False
    assert await b.claim_once()  # B claimed partition 1 (and it failed there)
    job = await a_store.jobs.active("fails")
    assert job is not None
    failed = job.partitions[1]
    assert (failed.state, failed.owner, failed.failed_seq) == ("failed", "b", bad)
    assert failed.error == f"at seq {bad}: ValueError: boom at {bad}"
    clock.gate.set()
    with pytest.raises(ProjectionFailed) as two:
        await task
    assert str(two.value) == str(one.value) and two.value.seq == bad
    assert (a.status.state, a.status.failed_seq, a.status.error) == (
        "failed",
        bad,
        f"ValueError: boom at {bad}",
    )
    done = await a_store.jobs.get(job.job)
    assert done is not None and done.state == "failed"
    assert done.error == f"ProjectionFailed: {one.value}"
