"""Partitioned rebuilds: N partitions merged equal one worker (property, in-process); real
worker processes through the runner, the CLI and the admin API; partitions tracked in the job."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
from collections import Counter
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
from projections.runner import ProjectionRunner, rebuild_partitioned, request_rebuild
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


async def simulate(store: S, seed: int, orders: int, steps: int) -> S:
    """`store` holding a simulated shop's orders: `orders` created, then `steps` changes."""
    clock = FakeClock()
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    sim = Simulator(feed, seed=seed, clock=clock)
    await sim.create_orders(orders)
    for _ in range(steps):
        clock.advance(5400)
        await sim.step()
    await ingester(store, feed, clock).run(until_idle=True)
    return store


async def simulated(seed: int, orders: int, steps: int) -> MemoryStore:
    return await simulate(MemoryStore(), seed, orders, steps)


async def rows(store: Store, collection: str) -> dict[str, Any]:
    found = await store.read_models.query(collection, filters={}, limit=1_000_000)
    return {r["_id"]: {k: v for k, v in r.items() if k != "_id"} for r in found}


_PLUGIN: list[Projection] = []


async def _check(seed: int, orders: int, steps: int, workers: int, tmp: Path) -> None:
    store = await simulated(seed, orders, steps)
    if not _PLUGIN:
        _PLUGIN.append(example_plugin(tmp))
    clock = FakeClock()
    for projection in (*ORDER_PROJECTIONS, _PLUGIN[0]):
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


async def test_a_projection_without_merge_rebuilds_with_one_worker_and_says_so() -> None:
    store = await simulated(2, 4, 10)
    runner = ProjectionRunner(store, NO_MERGE, clock=FakeClock())
    assert await runner.lease.try_acquire()
    with pytest.raises(NoMerge, match="no_merge has no merge: rebuild it with one worker"):
        await rebuild_partitioned(runner, 2)
    await runner.hand_back()
    job = await request_rebuild(runner, workers=4)
    assert job.state == "succeeded" and job.workers == 1 and job.partitions == []
    head = (await store.events.head()).seq
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
    runner = ProjectionRunner(store, failing, clock=clock)
    with pytest.raises(RuntimeError, match="bad row"):
        await request_rebuild(runner, workers=2)
    job = await store.jobs.active("fails")
    assert job is None
    failed = [j for j in store.jobs._jobs.values() if j.projection == "fails"]  # type: ignore[attr-defined]
    assert len(failed) == 1 and failed[0].state == "failed" and "bad row" in (failed[0].error or "")
    assert {p.state for p in failed[0].partitions} >= {"failed"}
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
            os.kill(os.getpid(), signal.SIGKILL)
        key = change.event.entity_key
        n = (rows.get(key) or {}).get("n", 0)
        return [Write(key=key, row={"n": n + 1})]

    def merge(key: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        return {"n": a["n"] + b["n"]}

    return Projection(name="dying", collection="rm_dying", keys=keys, apply=apply, merge=merge)


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
