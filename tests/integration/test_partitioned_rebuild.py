"""Partitioned rebuilds: N partitions merged equal one worker (property, in-process); real
worker processes through the runner, the CLI and the admin API; partitions tracked in the job."""

from __future__ import annotations

import asyncio
import glob
import io
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore.cli import main
from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.model import STREAM_TYPES, Job
from eventstore.ports import Store
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.simulator import Simulator
from projections import Change, Projection, Write
from projections.orders import ORDER_PROJECTIONS
from projections.partitioned import NoMerge, partition_of, split
from projections.runner import (
    ProjectionFailed,
    ProjectionRunner,
    rebuild_partitioned,
    request_rebuild,
)
from tests.integration.ingest_helpers import ingester, start_from_the_beginning
from tests.integration.test_plugin_projections import per_actor_day, readme_example

S = TypeVar("S", bound=Store)


def example_plugin(tmp_path: Path) -> Projection:
    """The README's example, imported from a module of its own."""
    import importlib

    (tmp_path / "partition_shop.py").write_text(readme_example())
    sys.path.insert(0, str(tmp_path))
    try:
        sys.modules.pop("partition_shop", None)
        module = importlib.import_module("partition_shop")
    finally:
        sys.path.remove(str(tmp_path))
    projection: Projection = module.EVENTS_PER_ACTOR
    return projection


class Shop:
    """A simulated shop captured into `store`: `changes` moves it on and captures them."""

    def __init__(self, store: Store, seed: int) -> None:
        self.store, self.clock = store, FakeClock()
        self.feed = MemoryChangeFeed(clock=self.clock)
        self.sim = Simulator(self.feed, seed=seed, clock=self.clock)

    async def open(self, orders: int) -> None:
        await start_from_the_beginning(self.store)
        await self.sim.create_orders(orders)

    async def changes(self, steps: int) -> None:
        for _ in range(steps):
            self.clock.advance(5400)
            await self.sim.step()
        await ingester(self.store, self.feed, self.clock).run(until_idle=True)


async def simulate(store: S, seed: int, orders: int, steps: int) -> S:
    """`store` holding a simulated shop's orders: `orders` created, then `steps` changes."""
    shop = Shop(store, seed)
    await shop.open(orders)
    await shop.changes(steps)
    return store


async def simulated(seed: int, orders: int, steps: int) -> MemoryStore:
    return await simulate(MemoryStore(), seed, orders, steps)


async def numbered_orders(orders: int) -> MemoryStore:
    """Orders 1..`orders` created and paid: integer ids, so the same partitions on every run
    (the simulator's ObjectIds differ from one process to the next)."""
    store = MemoryStore()
    clock = FakeClock()
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    for n in range(1, orders + 1):
        await feed.collection("orders").insert_one({"_id": n, "status": "pending"})
        await feed.collection("orders").update_one({"_id": n}, {"$set": {"status": "paid"}})
    await ingester(store, feed, clock).run(until_idle=True)
    return store


async def rows(store: Store, collection: str) -> dict[str, Any]:
    found = await store.read_models.query(collection, filters={}, limit=1_000_000)
    return {r["_id"]: {k: v for k, v in r.items() if k != "_id"} for r in found}


_PLUGIN: list[Projection] = []


async def _check(seed: int, orders: int, steps: int, workers: int, tmp: Path) -> None:
    store = await simulated(seed, orders, steps)
    if not _PLUGIN:
        _PLUGIN.append(example_plugin(tmp))
    await _equal_to_one_worker(store, (*ORDER_PROJECTIONS, _PLUGIN[0]), workers)


async def _equal_to_one_worker(
    store: Store, projections: Sequence[Projection], workers: int
) -> None:
    """Each projection rebuilt by `workers` partitions has one worker's rows and checkpoint."""
    clock = FakeClock()
    for projection in projections:
        one = ProjectionRunner(store, projection, clock=clock, batch_size=7)
        await one.rebuild_now()
        expected = await rows(store, projection.collection)
        cp = await store.checkpoints.get(one.role)
        many = ProjectionRunner(store, projection, clock=clock, batch_size=7)
        many.processes = False  # in-process: the same partitions, folded one after another
        assert await many.lease.try_acquire()
        await many.rebuild(workers=workers)
        await many.hand_back()
        assert await rows(store, projection.collection) == expected, (projection.name, workers)
        got = await store.checkpoints.get(many.role)
        assert got is not None and cp is not None and got.head == cp.head


@settings(deadline=None, max_examples=25)
@given(
    seed=st.integers(0, 10_000),
    orders=st.integers(1, 10),
    steps=st.integers(0, 80),
    workers=st.integers(1, 4),
)
def test_partitions_merged_equal_one_worker(
    seed: int, orders: int, steps: int, workers: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    asyncio.run(_check(seed, orders, steps, workers, tmp_path_factory.mktemp("plugin")))


def test_partitions_are_stable_and_keep_an_entity_whole() -> None:
    async def go() -> None:
        store = await simulated(3, 12, 60)
        events = await store.events.read(after_seq=0, limit=100_000)
        for n in (1, 2, 3, 4, 16):
            parts = split(events, n)
            assert sum(len(p) for p in parts) == len(events)  # the simulator logs no stream events
            for index, part in enumerate(parts):
                assert [e.seq for e in part] == sorted(e.seq for e in part)
                assert all(partition_of(e, n) == index for e in part)
        # the hash is crc32 of the entity's identity: the same in every process and run
        first = events[0]
        assert partition_of(first, 4) == partition_of(first, 4)
        assert {partition_of(e, 4) for e in events if e.entity_key == first.entity_key} == {
            partition_of(first, 4)
        }

    asyncio.run(go())


def test_an_entity_s_identity_and_partition_are_pinned_across_versions() -> None:
    """Instances of one job must agree on every entity's partition, so the identity and
    its hash are pinned here: a change to either would split a rebuild run by instances
    of two versions (each entity's events folded in two places, or in none)."""
    from bson import ObjectId

    from projections.partitioned import entity_identity
    from tests.helpers import LogBuilder

    log = LogBuilder()
    oid = ObjectId("65a1b2c3d4e5f60718293a4b")
    cases = [
        (log.next("ORD-1"), "orders\x00str:ORD-1", 8),
        (log.next(oid), "orders\x00oid:65a1b2c3d4e5f60718293a4b", 8),
        (log.next(42), "orders\x00int:42", 8),
        (log.next(4.5), 'orders\x00json:{"$numberDouble":"4.5"}', 0),
        (log.next("ORD-1", stream="refunds"), "refunds\x00str:ORD-1", 1),
    ]
    for event, identity, sixteenth in cases:
        assert entity_identity(event) == identity
        assert partition_of(event, 16) == sixteenth, identity
        assert partition_of(event, 1) == 0


# -- real worker processes ----------------------------------------------------------------------
async def test_real_worker_processes_rebuild_every_order_model_and_record_partitions(
    tmp_path: Path,
) -> None:
    store = await simulated(5, 20, 150)
    clock = FakeClock()
    expected: dict[str, Any] = {}
    for projection in ORDER_PROJECTIONS:
        await ProjectionRunner(store, projection, clock=clock).rebuild_now()
        expected[projection.name] = await rows(store, projection.collection)
    head = (await store.events.head()).seq
    for projection in ORDER_PROJECTIONS:
        runner = ProjectionRunner(store, projection, clock=clock, batch_size=50)
        job = await request_rebuild(runner, workers=3)
        assert job.state == "succeeded" and job.workers == 3, job
        assert [p.index for p in job.partitions] == [0, 1, 2]
        assert all(p.state == "succeeded" for p in job.partitions)
        assert sum(p.total for p in job.partitions) == head
        assert all(p.processed == p.total > 0 for p in job.partitions)
        assert await store.jobs.get(job.job) == job
        assert await rows(store, projection.collection) == expected[projection.name]


def test_the_cli_rebuilds_a_plugin_with_two_worker_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cli_shop.py").write_text(readme_example())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "cli_shop", raising=False)
    store = asyncio.run(simulated(9, 10, 80))
    argv = ["--uri", "memory://", "--projections", "cli_shop:EVENTS_PER_ACTOR"]
    out = io.StringIO()
    code = main(
        # the name after the options, as a stranger types it
        ["projections", "rebuild", "--workers", "2", "events_per_actor", *argv],
        out=out,
        store=store,
    )
    assert code == 0, capsys.readouterr().err
    assert "events_per_actor: rebuilt from" in out.getvalue() and "2 workers" in out.getvalue()
    got = asyncio.run(rows(store, "rm_events_per_actor"))
    events = asyncio.run(store.events.read(after_seq=0, limit=100_000))
    assert {k: r["events"] for k, r in got.items()} == per_actor_day(events)
    for bad in ("0", "17"):
        assert main(["projections", "rebuild", "--all", "--workers", bad, *argv]) == 1
        assert "--workers takes 1 to 16" in capsys.readouterr().err


def _no_merge_keys(change: Change) -> list[str]:
    return ["n"]


def _no_merge_apply(rows: Any, change: Change) -> list[Write]:
    return [Write(key="n", row={"n": (rows.get("n") or {}).get("n", 0) + 1})]


NO_MERGE = Projection(
    name="no_merge", collection="rm_no_merge", keys=_no_merge_keys, apply=_no_merge_apply
)


async def test_a_projection_without_merge_rebuilds_with_one_worker_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    store = await simulated(2, 4, 10)
    runner = ProjectionRunner(store, NO_MERGE, clock=FakeClock())
    assert await runner.lease.try_acquire()
    with pytest.raises(NoMerge, match="no_merge has no merge: rebuild it with one worker"):
        await rebuild_partitioned(runner, 2)
    await runner.hand_back()
    head = (await store.events.head()).seq
    warning = "projection no_merge has no merge: rebuilding it with one worker"
    # asked for one worker: nothing to say; asked for more: rebuilt by one, and said
    for workers, said in ((1, []), (2, [warning]), (4, [warning])):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="projections.runner"):
            job = await request_rebuild(runner, workers=workers)
        assert [r.getMessage() for r in caplog.records if r.name == "projections.runner"] == said
        assert job.state == "succeeded" and job.workers == 1 and job.partitions == []
        assert job.note == (
            None
            if workers == 1
            else f"no_merge has no merge: rebuilt with one worker ({workers} asked)"
        )
        assert (await rows(store, "rm_no_merge"))["n"]["n"] == head


async def test_a_failing_partition_fails_the_job_and_leaves_the_live_model(
    tmp_path: Path,
) -> None:
    store = await simulated(4, 6, 30)
    clock = FakeClock()

    def keys(change: Change) -> list[str]:
        return [change.event.entity_key]

    def apply(rows: Any, change: Change) -> list[Write]:
        if change.event.seq == 20:
            raise RuntimeError("bad row")
        return [Write(key=change.event.entity_key, row={"v": change.event.version})]

    def merge(key: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        return a

    failing = Projection(name="fails", collection="rm_fails", keys=keys, apply=apply, merge=merge)
    await store.read_models.write("rm_fails", [("live", {"v": 1})])
    # One worker first: what a partitioned rebuild must say as well.
    alone = ProjectionRunner(store, failing, clock=clock)
    with pytest.raises(ProjectionFailed) as one:
        await request_rebuild(alone, workers=1)
    assert str(one.value) == "projection fails failed at seq 20: RuntimeError: bad row"
    runner = ProjectionRunner(store, failing, clock=clock)
    with pytest.raises(ProjectionFailed) as two:  # folded in another process: the seq came back
        await request_rebuild(runner, workers=2)
    assert str(two.value) == str(one.value) and two.value.seq == 20
    assert (
        (runner.status.state, runner.status.failed_seq, runner.status.error)
        == (
            alone.status.state,
            alone.status.failed_seq,
            alone.status.error,
        )
        == ("failed", 20, "RuntimeError: bad row")
    )
    job = await store.jobs.active("fails")
    assert job is None
    jobs = [j for j in store.jobs._jobs.values() if j.projection == "fails"]  # type: ignore[attr-defined]
    head = (await store.events.head()).seq
    [one_job] = [j for j in jobs if j.workers == 1]  # failed in its first batch: total known
    assert (one_job.state, one_job.processed, one_job.total) == ("failed", 0, head)
    failed = [j for j in jobs if j.workers == 2]
    assert len(failed) == 1 and failed[0].state == "failed"
    assert failed[0].error == f"ProjectionFailed: {one.value}"
    assert ("failed", "at seq 20: RuntimeError: bad row", 20) in {
        (p.state, p.error, p.failed_seq) for p in failed[0].partitions
    }
    assert await rows(store, "rm_fails") == {"live": {"v": 1}}  # the live model untouched


# -- a worker process that dies (killed, out of memory) ------------------------------------------
def _dying(marker: Path, *, always: bool) -> Projection:
    """Counts events per entity; a forked worker kills itself at its first apply (every time,
    or only until `marker` exists). The parent process never dies."""
    parent = os.getpid()

    def keys(change: Change) -> list[str]:
        return [change.event.entity_key]

    def apply(rows: Any, change: Change) -> list[Write]:
        if os.getpid() != parent and (always or not marker.exists()):
            marker.touch()
            (marker.parent / f"{marker.name}-{os.getpid()}").touch()  # one file per death
            os.kill(os.getpid(), signal.SIGKILL)
        key = change.event.entity_key
        n = (rows.get(key) or {}).get("n", 0)
        return [Write(key=key, row={"n": n + 1})]

    def merge(key: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        return {"n": a["n"] + b["n"]}

    return Projection(name="dying", collection="rm_dying", keys=keys, apply=apply, merge=merge)


def _sleeping(seconds: float) -> Projection:
    """Counts events per entity; a forked worker sleeps `seconds` at its first apply."""
    parent = os.getpid()

    def keys(change: Change) -> list[str]:
        return [change.event.entity_key]

    def apply(rows: Any, change: Change) -> list[Write]:
        if os.getpid() != parent:
            time.sleep(seconds)
        return [Write(key=change.event.entity_key, row={"n": 1})]

    def merge(key: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        return {"n": a["n"] + b["n"]}

    return Projection(
        name="sleeping", collection="rm_sleeping", keys=keys, apply=apply, merge=merge
    )


def _per_entity(events: list[Any]) -> dict[str, int]:
    return dict(Counter(e.entity_key for e in events if e.type not in STREAM_TYPES))


async def test_a_worker_process_that_dies_is_replaced_and_its_partition_folded_again(
    tmp_path: Path,
) -> None:
    store = await simulated(5, 8, 20)
    runner = ProjectionRunner(store, _dying(tmp_path / "died", always=False), clock=FakeClock())
    job = await request_rebuild(runner, workers=2)
    assert (tmp_path / "died").exists()  # a worker did die
    assert job.state == "succeeded" and job.workers == 2
    assert [p.state for p in job.partitions] == ["succeeded", "succeeded"]
    expected = _per_entity(await store.events.read(after_seq=0, limit=1_000_000))
    assert {k: r["n"] for k, r in (await rows(store, "rm_dying")).items()} == expected


async def test_a_partition_is_folded_at_most_three_times_in_fresh_processes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`LocalFolds.RETRIES` (2) more attempts after the first, each in a fresh pool, each
    said in a warning; then the fold fails with BrokenProcessPool."""
    from concurrent.futures.process import BrokenProcessPool

    from projections.partitioned import LocalFolds

    store = await simulated(6, 3, 0)
    events = await store.events.read(after_seq=0, limit=1000)
    folds = LocalFolds(_dying(tmp_path / "died", always=True), [list(events)], 1)
    try:
        with pytest.raises(BrokenProcessPool) as raised:
            await folds.submit(0)
    finally:
        folds.close()
    assert str(raised.value) == (  # not the executor's "terminated abruptly while the future…"
        "a rebuild worker process died folding partition 0, 3 times (killed, or out of memory)"
    )
    assert len(glob.glob(f"{tmp_path}/died-*")) == 3  # three processes died, one per attempt
    assert folds.broken == 2  # the pools replaced: the last broken one is not
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "projection dying: a rebuild worker process died folding partition 0; "
        f"folding it again (attempt {n} of 3)"
        for n in (2, 3)
    ]


async def test_forked_workers_inherit_their_partitions_and_fold_what_one_process_folds() -> None:
    """The pool forks (another start method would not inherit the registered events), and
    what a worker runs is the registered partition's fold; `close` forgets them."""
    from projections import partitioned

    store = await simulated(4, 5, 30)
    events = await store.events.read(after_seq=0, limit=10_000)
    parts = split(events, 2)
    folds = partitioned.LocalFolds(ORDER_PROJECTIONS[0], parts, 2)
    try:
        assert folds.forked
        context = folds._live_pool()._mp_context
        assert context is not None and context.get_start_method() == "fork"
        for index in (0, 1):
            here = partitioned._run_inherited(folds._token, index)  # what a worker calls
            assert here == partitioned.fold_partition(ORDER_PROJECTIONS[0], parts[index])
            assert here and here == await folds.submit(index)
    finally:
        folds.close()
    assert folds._token not in partitioned._INHERITED


async def test_closing_the_folds_ends_every_worker_process_done_or_abandoned() -> None:
    """Worker processes left to end on their own after a rebuild at times blocked on the
    pool's call-queue lock at the interpreter's exit: `projections rebuild --workers 2`
    printed its answer and never returned (about 1 run in 5)."""
    from projections import partitioned

    store = await simulated(4, 5, 30)
    events = await store.events.read(after_seq=0, limit=10_000)
    parts = split(events, 2)
    done = partitioned.LocalFolds(ORDER_PROJECTIONS[0], parts, 2)
    for index in (0, 1):
        assert await done.submit(index)
    processes = list(done._live_pool()._processes.values())
    assert len(processes) == 2
    done.close()
    assert [p.is_alive() for p in processes] == [False, False]  # waited for: none left

    slow = partitioned.LocalFolds(_sleeping(30.0), parts, 2)  # a fold still running
    folding = slow.submit(0)
    await asyncio.sleep(0.5)
    processes = list(slow._live_pool()._processes.values())
    slow.close()
    assert [p.is_alive() for p in processes] == [False] * len(processes)
    await asyncio.sleep(0)
    assert folding.cancelled()


async def test_workers_that_keep_dying_fail_the_job_and_following_goes_on(
    tmp_path: Path,
) -> None:
    store = await simulated(6, 6, 10)
    clock = FakeClock()
    projection = _dying(tmp_path / "died", always=True)
    runner = ProjectionRunner(store, projection, clock=clock)
    await runner.run(until_caught_up=True)  # the live model, followed in this process
    live = await rows(store, "rm_dying")
    position = await runner.position()
    queued = Job(
        job="dies", projection="dying", requested_at=clock.now(), state="queued", workers=2
    )
    await store.jobs.create(queued)
    await runner.run(until_caught_up=True)  # runs the job between batches; it fails
    failed = await store.jobs.get("dies")
    assert failed is not None and failed.state == "failed"
    assert "BrokenProcessPool" in (failed.error or "")
    assert failed.partitions and all(p.state == "failed" for p in failed.partitions)
    assert await rows(store, "rm_dying") == live  # the live model untouched
    assert runner.status.state != "failed" and runner.status.error is None
    assert await runner.position() == position
    assert "rm_dying__rebuild" not in await store.read_models.collections()


def test_job_records_keep_their_partitions_on_mongo_shape() -> None:
    from eventstore.model import Partition
    from eventstore.mongo.jobs import _doc, _job

    job = Job(
        job="j",
        projection="p",
        workers=2,
        partitions=[Partition(index=0, state="running", total=5)],
    )
    assert _job(_doc(job)) == job


async def test_a_job_folds_up_to_the_head_it_recorded_not_the_log_head_now() -> None:
    """Events appended after a job fixed its head are left to following: the model is
    installed at that head, with that event's log hash (the checkpoint following trusts)."""
    from eventstore.model import Head

    store = await simulated(10, 5, 25)
    clock = FakeClock()
    projection = ORDER_PROJECTIONS[0]
    events = await store.events.read(after_seq=0, limit=100_000)
    assert len(events) > 3
    for head in (1, 3):  # the first event, and one in the middle of the log
        job = Job(job=f"at-{head}", projection=projection.name, workers=2, head=head)
        await store.jobs.create(job)
        runner = ProjectionRunner(store, projection, clock=clock, batch_size=7)
        runner.processes = False
        assert await runner.lease.try_acquire()
        progress = await rebuild_partitioned(runner, 2, job=job)
        assert progress.processed == progress.total == head
        checkpoint = await store.checkpoints.get(runner.role)
        assert checkpoint is not None
        assert checkpoint.head == Head(seq=head, log_hash=events[head - 1].log_hash)
        recorded = await store.jobs.get(job.job)
        assert recorded is not None and (recorded.head, recorded.total) == (head, head)
        # following goes on from there to the same model as a rebuild of the whole log
        await runner.hand_back()
        await runner.catch_up()
        followed = await rows(store, projection.collection)
        await ProjectionRunner(store, projection, clock=clock).rebuild_now()
        assert await rows(store, projection.collection) == followed
        await store.jobs.update(msgspec.structs.replace(recorded, state="succeeded"))


async def test_a_multi_worker_job_shows_its_head_from_the_start_and_ends_at_it() -> None:
    """The job's record: the head every partition folds up to, fixed as it starts; and
    at the end every event of the log counted processed, the stream events (here a
    dropped collection) too, which no partition holds."""
    from eventstore.memory.store import MemoryStore

    store = MemoryStore()
    clock = FakeClock()
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    sim = Simulator(feed, seed=11, clock=clock)
    await sim.create_orders(6)
    for _ in range(20):
        clock.advance(5400)
        await sim.step()
    assert await feed.drop_collection("orders")
    await ingester(store, feed, clock).run(until_idle=True)
    head = (await store.events.head()).seq
    streams = [
        e for e in await store.events.read(after_seq=0, limit=1000) if e.type in STREAM_TYPES
    ]
    assert [e.type for e in streams] == ["dropped"]

    runner = ProjectionRunner(store, ORDER_PROJECTIONS[0], clock=clock, batch_size=5)
    runner.processes = False
    recorded: list[tuple[Any, ...]] = []
    real_update = store.jobs.update

    async def recording_update(job: Job) -> None:
        recorded.append((job.state, job.workers, job.head, job.processed, job.total))
        await real_update(job)

    store.jobs.update = recording_update  # type: ignore[method-assign]
    try:
        job = await request_rebuild(runner, workers=2)
    finally:
        store.jobs.update = real_update  # type: ignore[method-assign]
    assert recorded[:2] == [("running", 2, 0, 0, 0), ("running", 2, head, 0, head)]
    assert recorded[-1] == ("succeeded", 2, head, head, head)
    assert (job.state, job.head, job.processed, job.total) == ("succeeded", head, head, head)
    assert sum(p.total for p in job.partitions) == head - 1  # all but the stream event


def _failing_from(seq: int) -> Projection:
    """Each entity's last version; the apply of every event from `seq` on raises (0: none)."""

    def keys(change: Change) -> list[str]:
        return [change.event.entity_key]

    def apply(rows: Any, change: Change) -> list[Write]:
        if 0 < seq <= change.event.seq:
            raise RuntimeError("bad row")
        return [Write(key=change.event.entity_key, row={"v": change.event.version})]

    def merge(key: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        return a if a["v"] >= b["v"] else b

    return Projection(name="fails", collection="rm_fails", keys=keys, apply=apply, merge=merge)


class _Created:
    """Records the ids of the jobs created in a store, and each one's state when created."""

    def __init__(self, store: Store) -> None:
        self.ids: list[str] = []
        self.states: list[str] = []
        self.workers: list[int] = []
        self.real = store.jobs.create

        async def create(job: Job) -> None:
            self.ids.append(job.job)
            self.states.append(job.state)
            self.workers.append(job.workers)
            await self.real(job)

        store.jobs.create = create  # type: ignore[method-assign]


async def test_a_partitioned_rebuild_without_a_job_records_one_and_its_outcome(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Called without a job (the CLI's `rebuild --workers`), it records its own: running,
    then succeeded with every event processed; or failed with the error, the partitions
    not yet done abandoned, nothing staged left over."""
    import logging

    store = await numbered_orders(12)
    head = (await store.events.head()).seq
    events = await store.events.read(after_seq=0, limit=head)
    # the premise of "the others are abandoned": no partition is empty (ids are fixed)
    assert all(split(events, 3)) and all(split(events, 2))
    clock = FakeClock()
    created = _Created(store)
    for fails_from, workers in ((0, 2), (1, 3)):
        runner = ProjectionRunner(store, _failing_from(fails_from), clock=clock, batch_size=5)
        runner.processes = False
        assert await runner.lease.try_acquire()
        with caplog.at_level(logging.WARNING, logger="projections.runner"):
            if fails_from:
                with pytest.raises(ProjectionFailed, match="RuntimeError: bad row"):
                    await runner.rebuild(workers=workers)
            else:
                await runner.rebuild(workers=workers)
        await runner.hand_back()
        job = await store.jobs.get(created.ids[-1])
        assert job is not None
        now = clock.now()
        assert (job.projection, job.workers, job.head, job.total) == ("fails", workers, head, head)
        assert job.requested_at == job.started_at == job.finished_at == now
        if fails_from:
            assert (job.state, job.processed) == ("failed", 0)
            assert runner.status.failed_seq is not None
            seq = runner.status.failed_seq
            assert job.error == (
                f"ProjectionFailed: projection fails failed at seq {seq}: RuntimeError: bad row"
            )
            # the first partition folded fails and says where and why; the others, not yet
            # folded, are abandoned with the job
            states = sorted((p.state, p.error) for p in job.partitions)
            assert states == [
                ("failed", "abandoned: the job failed"),
                ("failed", "abandoned: the job failed"),
                ("failed", f"at seq {seq}: RuntimeError: bad row"),
            ]
            assert all(p.expires_at is None for p in job.partitions)
        else:
            assert (job.state, job.processed, job.error) == ("succeeded", head, None)
            assert [p.state for p in job.partitions] == ["succeeded", "succeeded"]
        # the live model (from the first, successful run) and the states: nothing staged
        assert sorted(await store.read_models.collections()) == ["projection_states", "rm_fails"]
    assert len(created.ids) == 2
    # running from the start, with its workers: a queued job would be picked up by whoever
    # holds the lease
    assert created.states == ["running", "running"] and created.workers == [2, 3]
    assert not [r for r in caplog.records if r.name == "projections.runner"]


def _failing_entity(entity_key: str) -> Projection:
    """`_failing_from`'s rows, but only the apply of one entity's events raises."""
    ok = _failing_from(0)

    def apply(rows: Any, change: Change) -> list[Write]:
        if change.event.entity_key == entity_key:
            raise RuntimeError("bad row")
        return ok.apply(rows, change)

    return msgspec.structs.replace(ok, apply=apply)


async def test_a_failed_job_keeps_its_succeeded_partitions_and_abandons_the_unfinished() -> None:
    store = await numbered_orders(12)
    events = await store.events.read(after_seq=0, limit=1_000)
    # in-process, partitions fold in index order: 0 succeeds, 1 fails, 2 is never finished
    bad = next(e.entity_key for e in events if partition_of(e, 3) == 1)
    runner = ProjectionRunner(store, _failing_entity(bad), clock=FakeClock(), batch_size=5)
    runner.processes = False
    created = _Created(store)
    assert await runner.lease.try_acquire()
    with pytest.raises(ProjectionFailed, match="RuntimeError: bad row") as failed:
        await runner.rebuild(workers=3)
    seq = failed.value.seq
    assert events[seq - 1].entity_key == bad
    job = await store.jobs.get(created.ids[-1])
    assert job is not None and job.state == "failed"
    assert [(p.index, p.state, p.error) for p in sorted(job.partitions, key=lambda p: p.index)] == [
        (0, "succeeded", None),
        (1, "failed", f"at seq {seq}: RuntimeError: bad row"),
        (2, "failed", "abandoned: the job failed"),
    ]


async def test_a_partitioned_rebuilds_progress_says_the_seconds_since_it_started() -> None:
    store = await numbered_orders(6)
    runner = ProjectionRunner(store, _failing_from(0), clock=FakeClock(), batch_size=5)
    runner.processes = False
    seconds: list[float] = []
    assert await runner.lease.try_acquire()
    started = time.perf_counter()
    await runner.rebuild(lambda p: seconds.append(p.seconds), workers=2)
    elapsed = time.perf_counter() - started
    assert seconds and all(0 <= s <= elapsed for s in seconds)


async def test_a_job_whose_log_cannot_be_read_abandons_the_partitions_it_claimed() -> None:
    store = await numbered_orders(6)
    runner = ProjectionRunner(store, _failing_from(0), clock=FakeClock(), batch_size=5)
    runner.processes = False
    created = _Created(store)

    async def away(*, after_seq: int = 0, limit: int = 0) -> list[Any]:
        raise ConnectionError("store away")

    store.events.read = away  # type: ignore[method-assign]
    assert await runner.lease.try_acquire()
    with pytest.raises(ConnectionError, match="store away"):
        await runner.rebuild(workers=2)
    job = await store.jobs.get(created.ids[-1])
    assert job is not None and job.state == "failed"
    assert [(p.state, p.error) for p in job.partitions] == [
        ("failed", "abandoned: the job failed"),
        ("failed", "abandoned: the job failed"),
    ]


async def test_a_failed_partitioned_rebuild_that_cannot_be_cleared_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The store goes away mid-rebuild: the clean-up fails too; a warning says so and the
    first failure is the one raised (the leftovers go on the next start)."""
    import logging

    store = await simulated(4, 6, 30)
    runner = ProjectionRunner(store, _failing_from(0), clock=FakeClock(), batch_size=5)
    runner.processes = False
    assert await runner.lease.try_acquire()

    async def away(job_id: str) -> Job | None:
        raise ConnectionError("store away")

    store.jobs.get = away  # type: ignore[method-assign]
    with (
        caplog.at_level(logging.WARNING, logger="projections.runner"),
        pytest.raises(ConnectionError, match="store away"),
    ):
        await runner.rebuild(workers=2)
    assert [r.getMessage() for r in caplog.records if r.name == "projections.runner"] == [
        "projection fails: could not clear a failed rebuild"
    ]


def _keeping_one_problem(bad: set[int]) -> Projection:
    """Each entity's events counted; an event in `bad` is a problem. A row keeps its newest
    problem and counts the older ones in `problems_dropped` (as projections.money does)."""

    def keys(change: Change) -> list[str]:
        return [change.event.entity_key]

    def apply(rows: Any, change: Change) -> list[Write]:
        key, seq = change.event.entity_key, change.event.seq
        row = rows.get(key) or {"n": 0, "problems": [], "problems_dropped": 0}
        problems, dropped = list(row["problems"]), row["problems_dropped"]
        if seq in bad:
            dropped += len(problems)
            problems = [{"seq": seq, "field": "total", "value": None, "reason": "missing"}]
        new = {"n": row["n"] + 1, "problems": problems, "problems_dropped": dropped}
        return [Write(key=key, row=new)]

    def merge(key: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        return a  # one entity's events are all in one partition: never two rows of one key

    return Projection(
        name="one_problem", collection="rm_one_problem", keys=keys, apply=apply, merge=merge
    )


async def test_a_partitioned_rebuild_counts_the_problems_one_worker_counts() -> None:
    """Every problem recorded counts once, kept in a row or dropped from it: the installed
    model's count equals the count one worker makes event by event."""
    from projections.runner import STATE_COLLECTION

    store = await simulated(12, 4, 40)
    events = await store.events.read(after_seq=0, limit=100_000)
    busiest = Counter(e.entity_key for e in events).most_common(1)[0][0]
    # three problems of one entity (two of them dropped from its row) and one of another
    bad = {e.seq for e in events if e.entity_key == busiest}
    bad = set(sorted(bad)[:3]) | {next(e.seq for e in events if e.entity_key != busiest)}
    clock = FakeClock()
    one = ProjectionRunner(store, _keeping_one_problem(bad), clock=clock, batch_size=7)
    await one.rebuild_now()
    assert one.status.problems == 4
    many = ProjectionRunner(store, _keeping_one_problem(bad), clock=clock, batch_size=7)
    many.processes = False
    await store.read_models.write(STATE_COLLECTION, [("one_problem", None)])
    assert await many.lease.try_acquire()
    await many.rebuild(workers=2)
    assert many.status.problems == 4
    await many.hand_back()
    recorded = await store.read_models.get_many(STATE_COLLECTION, ["one_problem"])
    assert recorded["one_problem"]["problems"] == 4
    kept = await rows(store, "rm_one_problem")
    assert sum(len(r["problems"]) for r in kept.values()) == 2  # the rest were dropped


async def test_a_dead_instances_partitioned_job_is_requeued_and_its_staging_dropped() -> None:
    """An instance died running a two-worker job, leaving staged partitions; the next holder
    drops them and re-queues the job, which then runs (here with one worker: the projection
    lost its merge meanwhile, so no partitioned clean-up comes after)."""
    from eventstore.model import Partition
    from projections.claims import staging_name

    store = await simulated(2, 4, 10)
    clock = FakeClock()
    partitions = [Partition(index=i, state="running", attempts=1) for i in range(2)]
    job = Job(job="dead-instance-job", projection="no_merge", workers=2)
    await store.jobs.create(job)
    await store.jobs.set_partitions(job.job, partitions)
    running = await store.jobs.get(job.job)
    assert running is not None
    await store.jobs.update(msgspec.structs.replace(running, state="running", processed=5))
    staged = [staging_name(NO_MERGE.collection, job, p) for p in partitions]
    for name in staged:
        await store.read_models.write(name, [("n", {"n": 3})])
    assert set(staged) <= set(await store.read_models.collections())

    runner = ProjectionRunner(store, NO_MERGE, clock=clock)
    await runner.run(until_caught_up=True)
    assert not set(staged) & set(await store.read_models.collections())
    done = await store.jobs.get(job.job)
    assert done is not None and (done.state, done.workers) == ("succeeded", 1)
    head = (await store.events.head()).seq
    assert (await rows(store, "rm_no_merge"))["n"]["n"] == head


async def _check_with_erasures(
    seed: int, orders: int, steps: int, erased: int, workers: int
) -> None:
    """As `_check`, on a log where `erased` orders were erased part-way and their documents
    changed again after (new events folded onto the erased history)."""
    from tests.integration.test_erasure import erase

    store = MemoryStore()
    shop = Shop(store, seed)
    clock = shop.clock
    await shop.open(orders)
    await shop.changes(steps)
    keys = sorted(
        {
            e.entity_key
            for e in await store.events.read(after_seq=0, limit=100_000)
            if e.type not in STREAM_TYPES
        }
    )
    for key in keys[:erased]:
        await erase(store, key, clock)
    await shop.changes(steps)  # the erasures carried out, and the documents changed again
    log = await store.events.read(after_seq=0, limit=100_000)
    assert sum(e.type == "erased" for e in log) == min(erased, len(keys))
    await _equal_to_one_worker(store, ORDER_PROJECTIONS, workers)


@settings(deadline=None, max_examples=25)
@given(
    seed=st.integers(0, 10_000),
    orders=st.integers(1, 8),
    steps=st.integers(0, 40),
    erased=st.integers(1, 3),
    workers=st.integers(2, 4),
)
def test_partitions_merged_equal_one_worker_over_an_erased_log(
    seed: int, orders: int, steps: int, erased: int, workers: int
) -> None:
    asyncio.run(_check_with_erasures(seed, orders, steps, erased, workers))
