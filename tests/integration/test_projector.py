"""The projector end to end: incremental = rebuild, idempotent re-delivery, crashes, swap, failures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from eventstore.clock import FakeClock
from eventstore.leasing import LeaseLost
from eventstore.model import Checkpoint
from eventstore.ports import Store
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.simulator import Simulator
from eventstore.worker_state import FAILED
from projections.orders import ORDER_PROJECTIONS, ORDERS_BY_STATUS, Projection
from projections.runner import ProjectionFailed, ProjectionRunner, StateCache
from tests.integration.ingest_helpers import ingester, start_from_the_beginning


async def workload(
    store: Store, clock: FakeClock, *, seed: int = 8, changes: int = 120
) -> tuple[MemoryChangeFeed, Simulator]:
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    sim = Simulator(feed, seed=seed, clock=clock)
    await sim.create_orders(12)
    for _ in range(changes):
        clock.advance(3 * 3600)
        await sim.step()
    await ingester(store, feed, clock).run(until_idle=True)
    return feed, sim


async def rows(
    store: Store, projection: Projection, collection: str | None = None
) -> dict[str, Any]:
    found = await store.read_models.query(
        collection or projection.collection, filters={}, limit=100_000
    )
    return {r["_id"]: {k: v for k, v in r.items() if k != "seq"} for r in found}


async def test_incremental_models_equal_a_rebuild_and_survive_redelivery(
    store: Store, clock: FakeClock
) -> None:
    await workload(store, clock)
    for projection in ORDER_PROJECTIONS:
        runner = ProjectionRunner(store, projection, clock=clock, batch_size=17)
        head = (await store.events.head()).seq
        assert await runner.catch_up() == head  # every event covered, in pages of 17
        assert await runner.catch_up() == 0  # caught up: nothing more
        incremental = await rows(store, projection)
        assert incremental, projection.name
        # every batch delivered again: nothing changes
        await store.checkpoints.put(Checkpoint(name=runner.role))
        await runner.catch_up()
        assert await rows(store, projection) == incremental, projection.name
        # a rebuild from scratch gives the same model
        await ProjectionRunner(store, projection, clock=clock, batch_size=50).rebuild_now()
        assert await rows(store, projection) == incremental, projection.name
    holder = ProjectionRunner(store, ORDER_PROJECTIONS[0], clock=clock, owner="other")
    assert await holder.lease.try_acquire()
    busy = ProjectionRunner(store, ORDER_PROJECTIONS[0], clock=clock)
    with pytest.raises(LeaseLost, match=f"^{busy.role} is held by another instance$"):
        await busy.catch_up()


async def test_rebuilds_and_catch_ups_past_their_memory_bounds_give_the_same_model(
    store: Store, clock: FakeClock
) -> None:
    # rows forgotten past `rebuild_rows` are read back; states past the cache come from history
    await workload(store, clock, seed=16)
    for projection in ORDER_PROJECTIONS:
        await ProjectionRunner(store, projection, clock=clock, batch_size=13).rebuild_now()
        expected = await rows(store, projection)
        assert expected, projection.name
        tight = ProjectionRunner(
            store, projection, clock=clock, batch_size=13, rebuild_rows=2, rebuild_states=2
        )
        progress = await tight.rebuild_now()
        assert await rows(store, projection) == expected, projection.name
        assert progress.written > 0
        follower = ProjectionRunner(store, projection, clock=clock, batch_size=13)
        follower.cache = StateCache(follower.history, size=2)
        await store.read_models.drop(projection.collection)
        await store.checkpoints.put(Checkpoint(name=follower.role))
        await follower.catch_up()
        assert await rows(store, projection) == expected, projection.name


async def test_a_rebuild_keeps_every_state_it_may_and_folds_none_again_from_history(
    store: Store, clock: FakeClock
) -> None:
    # Following keeps a small cache; a rebuild up to `rebuild_states` entities. A state not
    # kept is folded again from history (its versions since the last snapshot): over a log
    # with more entities than the cache that was most of a rebuild's time.
    await workload(store, clock, seed=17)
    entities = len({e.entity_key for e in await store.events.read(after_seq=0, limit=100_000)})
    reads: list[int] = []

    async def counted(runner: ProjectionRunner) -> dict[str, Any]:
        real = runner.history.state_of

        async def state_of(*args: Any, **kwargs: Any) -> Any:
            reads.append(1)
            return await real(*args, **kwargs)

        runner.history.state_of = state_of  # type: ignore[method-assign]
        await runner.rebuild_now()
        return await rows(store, runner.projection)

    roomy = ProjectionRunner(store, ORDER_PROJECTIONS[0], clock=clock, rebuild_states=entities)
    roomy.cache = StateCache(roomy.history, size=3)  # following's cache, smaller than the log
    expected = await counted(roomy)
    assert reads == [] and expected
    tight = ProjectionRunner(store, ORDER_PROJECTIONS[0], clock=clock, rebuild_states=3)
    assert await counted(tight) == expected
    assert len(reads) > 0  # the bound is real: past it, states come from history


async def test_a_crash_between_rows_and_checkpoint_never_double_counts(
    store: Store, clock: FakeClock
) -> None:
    await workload(store, clock, seed=9)
    reference = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, batch_size=10)
    await reference.rebuild_now()
    expected = await rows(store, ORDERS_BY_STATUS)
    await store.read_models.drop(ORDERS_BY_STATUS.collection)
    await store.checkpoints.put(Checkpoint(name=reference.role))

    real_put = store.checkpoints.put
    calls = 0

    async def flaky_put(cp: Any, *, session: Any = None) -> None:
        nonlocal calls
        calls += 1
        if calls % 3 == 0:
            raise RuntimeError("crashed after the rows, before the checkpoint")
        await real_put(cp, session=session)

    store.checkpoints.put = flaky_put  # type: ignore[method-assign,assignment]
    for _ in range(200):
        runner = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, batch_size=10)
        try:
            await runner.catch_up()
            break
        except RuntimeError:
            continue
    store.checkpoints.put = real_put  # type: ignore[method-assign]
    assert await rows(store, ORDERS_BY_STATUS) == expected


async def test_a_row_write_failing_every_third_time_loses_nothing_once_retried(
    store: Store, clock: FakeClock
) -> None:
    # The rows' write fails, not the checkpoint's: the checkpoint must never run ahead of them.
    await workload(store, clock, seed=11)
    reference = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, batch_size=10)
    await reference.rebuild_now()
    expected = await rows(store, ORDERS_BY_STATUS)
    assert expected
    await store.read_models.drop(ORDERS_BY_STATUS.collection)
    await store.checkpoints.put(Checkpoint(name=reference.role))

    real_write = store.read_models.write
    calls = failures = 0

    async def flaky_write(collection: str, writes: Any, *, session: Any = None) -> None:
        nonlocal calls, failures
        calls += 1
        if calls % 3 == 0:
            failures += 1
            raise RuntimeError("the rows' write failed")
        await real_write(collection, writes, session=session)

    store.read_models.write = flaky_write  # type: ignore[method-assign]
    try:
        for _ in range(200):
            runner = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, batch_size=10)
            try:
                await runner.catch_up()
                break
            except RuntimeError:
                continue
        else:
            pytest.fail("the projection never caught up")
    finally:
        store.read_models.write = real_write  # type: ignore[method-assign]
    assert failures >= 3  # the failures did happen, at several batches
    assert await rows(store, ORDERS_BY_STATUS) == expected
    last = (await store.events.read(after_seq=0, limit=100_000))[-1].seq
    assert await ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock).position() == last


async def test_readers_see_the_old_model_until_the_swap_then_the_new(
    store: Store, clock: FakeClock
) -> None:
    feed, sim = await workload(store, clock, seed=10)
    runner = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, batch_size=5)
    await runner.catch_up()
    old = await rows(store, ORDERS_BY_STATUS)
    # the ingester keeps appending; then a rebuild, during which readers poll the live model
    for _ in range(30):
        clock.advance(60)
        await sim.step()
    await ingester(store, feed, clock).run(until_idle=True)
    seen: list[dict[str, Any]] = []

    def poll(_: Any) -> None:
        seen.append(
            dict(store.read_models._tables.get(ORDERS_BY_STATUS.collection, {}))
            if hasattr(store.read_models, "_tables")
            else {}
        )

    progress = await runner.rebuild_now(on_progress=poll)
    new = await rows(store, ORDERS_BY_STATUS)
    assert (
        progress.processed == (await store.events.head()).seq
        and progress.processed == progress.total
    )
    if seen and seen[0]:  # the memory adapter lets the test look while the rebuild runs
        assert all(
            {k: {f: v for f, v in r.items() if f not in ("seq", "_id")} for k, r in s.items()}
            == {k: {f: v for f, v in r.items() if f != "_id"} for k, r in old.items()}
            for s in seen
        )
    fresh = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock)
    await fresh.rebuild_now()
    assert await rows(store, ORDERS_BY_STATUS) == new
    assert await runner.position() == (await store.events.head()).seq


async def test_a_failing_apply_stops_only_that_projection(store: Store, clock: FakeClock) -> None:
    await workload(store, clock, seed=11, changes=20)
    bad = [7]

    def explode(rows: Any, change: Any) -> Any:
        if change.event.seq in bad:
            raise ValueError("bad row")
        return ORDERS_BY_STATUS.apply(rows, change)

    broken = Projection(
        name="broken", collection="rm_broken", keys=ORDERS_BY_STATUS.keys, apply=explode
    )
    runner = ProjectionRunner(store, broken, clock=clock, batch_size=3)
    with pytest.raises(ProjectionFailed) as failed:
        await runner.run(until_caught_up=True)
    assert str(failed.value) == "projection broken failed at seq 7: ValueError: bad row"
    assert (failed.value.name, failed.value.seq) == ("broken", 7)
    assert (runner.status.state, runner.status.failed_seq) == (FAILED, 7)
    assert runner.status.error == "ValueError: bad row"
    recorded = await store.read_models.get_many("projection_states", ["broken"])
    assert (recorded["broken"]["state"], recorded["broken"]["failed_seq"]) == ("failed", 7)
    assert recorded["broken"]["error"] == "ValueError: bad row"
    assert await runner.position() == 6  # the batches before the failing one are kept
    # the cause fixed, the same runner started again: it follows on, its failure cleared
    bad.clear()
    await runner.run(until_caught_up=True)
    head = (await store.events.head()).seq
    restarted = runner.status
    assert (restarted.failed_seq, restarted.error) == (None, None)
    recorded = await store.read_models.get_many("projection_states", ["broken"])
    assert {k: recorded["broken"][k] for k in ("state", "position", "failed_seq", "error")} == {
        "state": "stopped",
        "position": head,
        "failed_seq": None,
        "error": None,
    }
    healthy = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock)
    await healthy.run(until_caught_up=True)
    assert await healthy.position() == (await store.events.head()).seq


async def test_rebuild_requests_are_jobs_run_by_the_lease_holder_or_the_requester(
    store: Store,
) -> None:
    import asyncio

    from eventstore.ports import JobConflict
    from projections.runner import request_rebuild
    from tests.integration.ingest_helpers import wait_until

    clock = FakeClock(advance_on_sleep=False)
    await workload(store, clock, seed=12, changes=30)
    head = (await store.events.head()).seq

    # nobody runs the projection: the requester takes the lease and runs the job itself
    alone = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, owner="cli")
    job = await request_rebuild(alone, job_id="j1")
    assert (job.state, job.processed, job.total) == ("succeeded", head, head)
    assert (job.workers, job.partitions) == (1, [])  # one worker unless asked for more
    assert job.requested_at == clock.now()
    assert job.started_at is not None and job.finished_at is not None
    assert await store.leases.get(alone.role) is None  # given back

    # an instance follows the projection: a request is queued and that instance runs it
    holder = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, owner="server")
    stop = asyncio.Event()
    task = asyncio.create_task(holder.run(stop=stop))
    await wait_until(lambda: holder.status.state == "running")
    requester = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, owner="cli")
    queued = await request_rebuild(requester, job_id="j2")
    assert (queued.state, queued.requested_at, queued.workers) == ("queued", clock.now(), 1)
    with pytest.raises(JobConflict):
        await request_rebuild(requester, job_id="j3")
    for _ in range(400):
        done = await store.jobs.get("j2")
        if done is not None and done.state == "succeeded":
            break
        await asyncio.sleep(0.005)
    assert done is not None and done.state == "succeeded" and done.processed == head
    assert holder.status.rebuilt_at is not None
    # what every instance reads: the holder follows the rebuilt model on
    shown = (await store.read_models.get_many("projection_states", [holder.projection.name]))[
        holder.projection.name
    ]
    assert (shown["state"], shown["position"]) == ("running", head)
    assert shown["rebuilt_at"] is not None
    stop.set()
    await task


async def test_a_crash_mid_rebuild_leaves_the_live_model_and_is_cleaned_and_rerun(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio
    import logging

    import msgspec

    from eventstore.model import Job
    from projections.runner import BUILDING_SUFFIX
    from tests.integration.ingest_helpers import wait_until

    clock = FakeClock(advance_on_sleep=False)
    await workload(store, clock, seed=13, changes=40)
    live = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, batch_size=7)
    await live.catch_up()
    before = await rows(store, ORDERS_BY_STATUS)

    crashing = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, batch_size=7, owner="dies")
    crashing.rebuild_rows = 1  # rows reach the fresh collection before the crash
    await crashing.lease.try_acquire()
    await store.jobs.create(Job(job="j1", projection=ORDERS_BY_STATUS.name))
    queued = await store.jobs.get("j1")
    assert queued is not None
    await store.jobs.update(msgspec.structs.replace(queued, state="running", processed=7))
    calls = 0

    def die(_: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("killed mid-rebuild")

    with pytest.raises(RuntimeError):
        await crashing.rebuild(die)
    assert await rows(store, ORDERS_BY_STATUS) == before  # readers still see the old model
    assert ORDERS_BY_STATUS.collection + BUILDING_SUFFIX in await store.read_models.collections()

    # the dead instance's lease expires; the next holder cleans up and runs the job again
    clock.advance(11)
    successor = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, owner="next")
    updates: list[tuple[str, int]] = []
    real_update = store.jobs.update

    async def recording_update(job: Job) -> None:
        updates.append((job.state, job.processed))
        await real_update(job)

    store.jobs.update = recording_update  # type: ignore[method-assign]
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="projections.runner"):
        task = asyncio.create_task(successor.run(stop=stop))
        for _ in range(400):
            job = await store.jobs.get("j1")
            if job is not None and job.state == "succeeded":
                break
            await asyncio.sleep(0.005)
        assert job is not None and job.state == "succeeded"
        await wait_until(lambda: successor.status.rebuilt_at is not None)
        stop.set()
        await task
    store.jobs.update = real_update  # type: ignore[method-assign]
    assert [r.getMessage() for r in caplog.records if r.name == "projections.runner"] == [
        "projection orders_by_status: re-queuing job j1 of a stopped instance"
    ]
    assert updates[:2] == [("queued", 0), ("running", 0)]  # queued afresh, then run again
    assert (
        ORDERS_BY_STATUS.collection + BUILDING_SUFFIX not in await store.read_models.collections()
    )
    assert await rows(store, ORDERS_BY_STATUS) == before


async def test_a_standby_projector_takes_over_when_the_holder_dies(store: Store) -> None:
    import asyncio

    from tests.integration.ingest_helpers import wait_until

    clock = FakeClock(advance_on_sleep=False)
    feed, sim = await workload(store, clock, seed=14, changes=20)
    first = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, owner="first", batch_size=4)
    second = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, owner="second", batch_size=4)
    stop = asyncio.Event()
    t1 = asyncio.create_task(first.run(stop=stop))
    await wait_until(lambda: first.status.state == "running")
    t2 = asyncio.create_task(second.run(stop=stop))
    head = (await store.events.head()).seq
    await wait_until(lambda: first.status.position == head)
    assert second.status.state != "running"
    # the holder dies without giving its lease back; more events arrive meanwhile
    first.lease.release = _noop  # type: ignore[method-assign]
    t1.cancel()
    await asyncio.gather(t1, return_exceptions=True)
    for _ in range(15):
        clock.advance(60)
        await sim.step()
    await ingester(store, feed, clock).run(until_idle=True)
    clock.advance(11)
    new_head = (await store.events.head()).seq
    await wait_until(lambda: second.status.position == new_head)
    stop.set()
    await t2
    incremental = await rows(store, ORDERS_BY_STATUS)
    await ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock).rebuild_now()
    assert await rows(store, ORDERS_BY_STATUS) == incremental


async def _noop() -> None:
    return None


async def test_rebuild_while_the_ingester_appends_then_catches_up(store: Store) -> None:
    import asyncio

    clock = FakeClock(advance_on_sleep=False)
    feed, sim = await workload(store, clock, seed=15, changes=40)
    writer_done = asyncio.Event()

    async def keep_appending() -> None:
        for _ in range(6):
            for _ in range(5):
                clock.advance(60)
                await sim.step()
            await ingester(store, feed, clock).run(until_idle=True)
            await asyncio.sleep(0)
        writer_done.set()

    runner = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, batch_size=2)
    writing = asyncio.create_task(keep_appending())
    progress = await runner.rebuild_now()
    await writing
    assert progress.processed <= (await store.events.head()).seq
    await runner.catch_up()  # after the swap, the projection catches up from the rebuilt position
    caught_up = await rows(store, ORDERS_BY_STATUS)
    await ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock).rebuild_now()
    assert await rows(store, ORDERS_BY_STATUS) == caught_up


async def test_an_idle_projector_wakes_on_the_append_not_on_a_poll(store: Store) -> None:
    """With polls 30 s apart, new events are still applied at once: the log wakes the runner."""
    import asyncio
    import time

    from tests.integration.ingest_helpers import wait_until

    clock = FakeClock(advance_on_sleep=False)
    feed, sim = await workload(store, clock, seed=21, changes=10)
    runner = ProjectionRunner(
        store, ORDERS_BY_STATUS, clock=clock, poll_seconds=30.0, max_poll_seconds=30.0
    )
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop=stop))
    head = (await store.events.head()).seq
    await wait_until(lambda: runner.status.position == head)
    await asyncio.sleep(0.05)  # idle now, waiting on the log
    for _ in range(3):
        clock.advance(60)
        await sim.step()
    started = time.monotonic()
    await ingester(store, feed, clock).run(until_idle=True)
    new_head = (await store.events.head()).seq
    assert new_head > head
    await wait_until(lambda: runner.status.position == new_head, seconds=5)
    assert time.monotonic() - started < 5  # far below the 30 s poll
    stop.set()
    task.cancel()  # the idle wait has a 30 s bound; stopping need not wait for it
    await asyncio.gather(task, return_exceptions=True)


async def _refuse_swap(building: str, live: str) -> None:
    raise RuntimeError("swap refused")


async def test_a_failed_rebuild_job_is_logged_cleared_and_following_goes_on(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The job fails at the swap: the live model stays, the staging collection goes, the
    status shows the projection running at its checkpoint, and later events are applied."""
    import logging

    from eventstore.model import Job
    from projections.runner import BUILDING_SUFFIX, STATE_COLLECTION

    feed, sim = await workload(store, clock, seed=16, changes=30)
    runner = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, batch_size=9)
    await runner.catch_up()
    live = await rows(store, ORDERS_BY_STATUS)
    position = await runner.position()
    requested = clock.now()
    await store.jobs.create(
        Job(job="refused", projection=ORDERS_BY_STATUS.name, requested_at=requested)
    )

    published: list[tuple[Any, Any, Any]] = []
    real_write, real_swap = store.read_models.write, store.read_models.swap

    async def recording_write(collection: str, writes: Any, *, session: Any = None) -> None:
        if collection == STATE_COLLECTION:
            published.extend((r["state"], r["position"], r["error"]) for _, r in writes)
        await real_write(collection, writes, session=session)

    store.read_models.write = recording_write  # type: ignore[method-assign]
    store.read_models.swap = _refuse_swap  # type: ignore[method-assign]
    try:
        with caplog.at_level(logging.WARNING, logger="projections.runner"):
            await runner.run(until_caught_up=True)  # runs the job, which fails; follows on
    finally:
        store.read_models.write = real_write  # type: ignore[method-assign]
        store.read_models.swap = real_swap  # type: ignore[method-assign]

    assert [r.getMessage() for r in caplog.records if r.name == "projections.runner"] == [
        "projection orders_by_status: rebuild job refused failed (RuntimeError: swap refused);"
        " following the live model on"
    ]
    failed = await store.jobs.get("refused")
    assert failed is not None
    assert (failed.state, failed.error) == ("failed", "RuntimeError: swap refused")
    # it folded the whole log before the swap failed, and says when it ended
    assert (failed.processed, failed.total) == (position, position)
    assert failed.started_at == failed.finished_at == clock.now()
    # what the API showed: running, rebuilding, running again at the checkpoint, stopped
    assert published == [
        ("running", position, None),
        ("rebuilding", position, None),
        ("running", position, None),
        ("stopped", position, None),
    ]
    assert (
        ORDERS_BY_STATUS.collection + BUILDING_SUFFIX not in await store.read_models.collections()
    )
    assert await rows(store, ORDERS_BY_STATUS) == live
    assert await runner.position() == position

    # the same runner follows on with its own states: later events are applied
    for _ in range(10):
        clock.advance(3 * 3600)
        await sim.step()
    await ingester(store, feed, clock).run(until_idle=True)
    await runner.run(until_caught_up=True)
    assert await runner.position() == (await store.events.head()).seq > position
    followed = await rows(store, ORDERS_BY_STATUS)
    await ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock).rebuild_now()
    assert await rows(store, ORDERS_BY_STATUS) == followed


async def test_a_rebuild_job_failing_on_a_store_away_stops_the_runner_for_a_retry(
    store: Store, clock: FakeClock
) -> None:
    """A transient failure is not the rebuild's fault: the runner stops (its supervisor
    retries) instead of following on as after a failed rebuild."""
    from pymongo.errors import AutoReconnect

    from eventstore.model import Job

    await workload(store, clock, seed=17, changes=10)
    runner = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock)
    await store.jobs.create(Job(job="away", projection=ORDERS_BY_STATUS.name))

    async def away(building: str, live: str) -> None:
        raise AutoReconnect("primary stepped down")

    real_swap = store.read_models.swap
    store.read_models.swap = away  # type: ignore[method-assign]
    try:
        with pytest.raises(AutoReconnect, match="primary stepped down"):
            await runner.run(until_caught_up=True)
    finally:
        store.read_models.swap = real_swap  # type: ignore[method-assign]
    failed = await store.jobs.get("away")
    assert failed is not None
    assert (failed.state, failed.error) == ("failed", "AutoReconnect: primary stepped down")
    assert await store.leases.get(runner.role) is None  # given back for the retry


async def test_a_rebuild_job_records_its_start_its_progress_each_half_second_and_its_end(
    store: Store, clock: FakeClock
) -> None:
    """What the job's record shows while it runs: running from its start, the events
    processed written at most once per half second (a fake timer), then succeeded."""
    from projections.runner import request_rebuild

    await workload(store, clock, seed=18, changes=20)
    head = (await store.events.head()).seq
    runner = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, batch_size=3)
    seconds = 0.0
    runner.monotonic = lambda: seconds
    seen: list[int] = []

    def progressed(p: Any) -> None:
        nonlocal seconds
        seconds += 0.25  # each batch takes a quarter of a second
        seen.append(p.processed)

    recorded: list[tuple[Any, ...]] = []
    real_update = store.jobs.update

    async def recording_update(job: Any) -> None:
        recorded.append((job.state, job.processed, job.total, job.started_at, job.finished_at))
        await real_update(job)

    store.jobs.update = recording_update  # type: ignore[method-assign]
    try:
        job = await request_rebuild(runner, job_id="paced", on_progress=progressed)
    finally:
        store.jobs.update = real_update  # type: ignore[method-assign]
    now = clock.now()
    # one report per batch, and one more once the last rows are written
    assert seen == [*range(3, head, 3), head, head]
    assert len(seen) > 6
    # started; its total, known before the first batch; then every second report (half a
    # second has passed); the end
    assert recorded == [
        ("running", 0, 0, now, None),
        ("running", 0, head, now, None),
        *[("running", p, head, now, None) for p in seen[1::2]],
        ("succeeded", head, head, now, now),
    ]
    assert (job.state, job.processed, job.total, job.finished_at) == ("succeeded", head, head, now)


async def test_a_rebuild_job_reports_the_total_of_the_log_the_rebuild_reads(
    store: Store, clock: FakeClock
) -> None:
    """The total recorded at the start is the head then; an event appended before the
    rebuild reads the log is in the total its progress reports (never N+1 of N)."""
    from eventstore.model import Head
    from projections.runner import request_rebuild

    await workload(store, clock, seed=18, changes=20)
    head = (await store.events.head()).seq
    runner = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, batch_size=3)
    ticks = iter(range(10**6))
    runner.monotonic = lambda: float(next(ticks))  # a second a call: every report is written
    heads = 0
    real_head = store.events.head

    async def head_before_the_last_append() -> Head:
        nonlocal heads
        heads += 1
        found = await real_head()
        return Head(seq=found.seq - 1) if heads == 1 else found  # the job's own read: one behind

    store.events.head = head_before_the_last_append  # type: ignore[method-assign]
    totals: list[int] = []
    real_update = store.jobs.update

    async def recording_update(job: Any) -> None:
        totals.append(job.total)
        await real_update(job)

    store.jobs.update = recording_update  # type: ignore[method-assign]
    try:
        job = await request_rebuild(runner, job_id="grown")
    finally:
        store.jobs.update = real_update  # type: ignore[method-assign]
        store.events.head = real_head  # type: ignore[method-assign]
    assert totals[:2] == [0, head - 1] and set(totals[2:]) == {head}
    assert (job.processed, job.total) == (head, head)


async def test_a_runner_whose_lease_is_taken_says_so_and_stands_by(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio
    import logging

    from tests.integration.ingest_helpers import wait_until

    clock = FakeClock(advance_on_sleep=False)
    await workload(store, clock, seed=19, changes=10)
    head = (await store.events.head()).seq
    runner = ProjectionRunner(
        store, ORDERS_BY_STATUS, clock=clock, owner="first", max_poll_seconds=0.05
    )
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="projections.runner"):
        task = asyncio.create_task(runner.run(stop=stop))
        await wait_until(lambda: runner.status.position == head)
        # the holder stalls past its lease time: another instance takes the projection
        clock.advance(11)
        thief = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, owner="second")
        assert await thief.lease.try_acquire()
        await wait_until(lambda: not runner.lease.held)
        stop.set()  # a standby stops when told, without ever taking the lease back
        await asyncio.wait_for(task, 5)
    assert [r.getMessage() for r in caplog.records if r.name == "projections.runner"] == [
        "projection orders_by_status: lease lost, standing by"
    ]
    lease = await store.leases.get(runner.role)
    assert lease is not None and lease.owner == "second"  # the standby gave nothing back


def _failing_stopped_publish(store: Store) -> Any:
    """A `read_models.write` that refuses to record a projection as stopped."""
    from projections.runner import STATE_COLLECTION

    real_write = store.read_models.write

    async def write(collection: str, writes: Any, *, session: Any = None) -> None:
        if collection == STATE_COLLECTION and any(
            r is not None and r["state"] == "stopped" for _, r in writes
        ):
            raise RuntimeError("state write refused")
        await real_write(collection, writes, session=session)

    return write


async def test_a_stopped_state_that_cannot_be_recorded_is_logged_and_the_lease_still_goes(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    await workload(store, clock, seed=20, changes=10)
    real_write = store.read_models.write
    store.read_models.write = _failing_stopped_publish(store)  # type: ignore[method-assign]
    try:
        with caplog.at_level(logging.WARNING, logger="projections.runner"):
            following = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock)
            await following.run(until_caught_up=True)  # stops: its last publish fails
            rebuilding = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock)
            await rebuilding.rebuild_now()  # hands back: its last publish fails
    finally:
        store.read_models.write = real_write  # type: ignore[method-assign]
    assert [r.getMessage() for r in caplog.records if r.name == "projections.runner"] == [
        "projection orders_by_status: could not record its state"
    ] * 2
    assert await store.leases.get(following.role) is None  # given back both times
    assert (following.status.state, rebuilding.status.state) == ("stopped", "stopped")


async def test_an_idle_projector_backs_off_on_the_log_and_never_sleeps_on_the_clock(
    store: Store,
) -> None:
    """Idle, it waits on the log for `poll_seconds`, doubling up to `max_poll_seconds`, and
    back to `poll_seconds` once events came; the fake clock (which a sleep would move)
    stays where it was."""
    import asyncio

    from tests.integration.ingest_helpers import wait_until

    clock = FakeClock()  # every clock.sleep(s) moves it by s
    feed, sim = await workload(store, clock, seed=22, changes=5)
    runner = ProjectionRunner(
        store, ORDERS_BY_STATUS, clock=clock, poll_seconds=0.01, max_poll_seconds=0.04
    )
    waits: list[tuple[int, float, bool]] = []
    real_wait = store.events.wait_for_append

    async def wait_for_append(after_seq: int, timeout: float) -> bool:  # noqa: ASYNC109
        appended = await real_wait(after_seq, timeout)
        waits.append((after_seq, timeout, appended))
        return appended

    store.events.wait_for_append = wait_for_append  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop=stop))
    head = (await store.events.head()).seq
    await wait_until(lambda: len(waits) >= 5)
    idle_since = clock.now()
    await wait_until(lambda: len(waits) >= 8)
    assert clock.now() == idle_since  # idling moved no clock
    for _ in range(3):
        clock.advance(60)
        await sim.step()
    await ingester(store, feed, clock).run(until_idle=True)
    new_head = (await store.events.head()).seq
    await wait_until(lambda: runner.status.position == new_head)
    count = len(waits)
    await wait_until(lambda: len(waits) >= count + 3)
    stop.set()
    await asyncio.wait_for(task, 5)
    store.events.wait_for_append = real_wait  # type: ignore[method-assign]
    assert [t for _, t, _ in waits[:5]] == [0.01, 0.02, 0.04, 0.04, 0.04]
    assert {after for after, _, _ in waits[:5]} == {head}
    after_events = [t for after, t, _ in waits if after == new_head]
    assert after_events[:3] == [0.01, 0.02, 0.04]  # back to poll_seconds, doubling again


def _flagging(bad: set[int], config: str = "") -> Projection:
    """Counts each entity's events; the events in `bad` add a problem record to the row."""

    def keys(change: Any) -> list[str]:
        return [change.event.entity_key]

    def apply(rows: Any, change: Any) -> Any:
        from projections import Write

        key, seq = change.event.entity_key, change.event.seq
        row = rows.get(key) or {"n": 0, "problems": []}
        problems = list(row["problems"])
        if seq in bad:
            problems.append({"seq": seq, "field": "total", "value": None, "reason": "missing"})
        return [Write(key=key, row={"n": row["n"] + 1, "problems": problems, "seq": seq})]

    return Projection(
        name="flagging", collection="rm_flagging", keys=keys, apply=apply, config=config
    )


async def test_a_following_runner_publishes_its_problems_when_they_change_not_per_batch(
    store: Store, clock: FakeClock
) -> None:
    from projections.runner import STATE_COLLECTION

    await workload(store, clock, seed=23, changes=20)
    head = (await store.events.head()).seq
    assert head > 25
    runner = ProjectionRunner(store, _flagging({8, 9, 22}), clock=clock, batch_size=5)
    published: list[tuple[Any, ...]] = []
    real_write = store.read_models.write

    async def recording_write(collection: str, writes: Any, *, session: Any = None) -> None:
        if collection == STATE_COLLECTION:
            published.extend((r["state"], r["problems"], r["position"]) for _, r in writes)
        await real_write(collection, writes, session=session)

    store.read_models.write = recording_write  # type: ignore[method-assign]
    try:
        await runner.run(until_caught_up=True)
    finally:
        store.read_models.write = real_write  # type: ignore[method-assign]
    assert published == [
        ("running", 0, 0),
        ("running", 2, 10),  # the batch of seqs 6-10 found two
        ("running", 3, 25),  # the batch of seqs 21-25 one more
        ("stopped", 3, head),
    ]


def _per_entity_count() -> Projection:
    """Each entity's events counted, one row per entity (never deleted)."""

    def keys(change: Any) -> list[str]:
        return [change.event.entity_key]

    def apply(rows: Any, change: Any) -> Any:
        from projections import Write

        key = change.event.entity_key
        return [Write(key=key, row={"n": (rows.get(key) or {"n": 0})["n"] + 1})]

    return Projection(name="per_entity", collection="rm_per_entity", keys=keys, apply=apply)


def _written_per_batch(batches: list[list[str]], bound: int) -> list[int]:
    """The rows written after each batch by the policy of `ProjectionRunner.rebuild`: rows
    kept in memory up to `bound`, the changed ones written once `bound` of them changed;
    past the bound (more rows than it), written after every batch; the rest at the end (one
    more report then)."""
    kept: set[str] = set()
    unwritten: set[str] = set()
    complete, written, out = True, 0, []
    for keys in batches:
        kept |= set(keys)
        unwritten |= set(keys)
        if not complete or len(unwritten) >= bound:
            written, unwritten = written + len(unwritten), set()
        if len(kept) > bound:
            written, unwritten, kept, complete = written + len(unwritten), set(), set(), False
        out.append(written)
    if unwritten:
        out.append(written + len(unwritten))
    return out


async def test_a_rebuild_reports_its_progress_after_each_batch_and_once_written(
    store: Store, clock: FakeClock
) -> None:
    """processed = the last seq of each batch, total = the head, written = rows written so
    far (`_written_per_batch`), seconds = time since the start (within the time the call
    took, never going back)."""
    import time

    await workload(store, clock, seed=24, changes=20)
    events = await store.events.read(after_seq=0, limit=100_000)
    head = events[-1].seq
    # the log opens with the creation of its 12 orders. Bounds: all kept; reached exactly
    # by the batch that writes them (they stay kept: the next batches update kept rows);
    # past it.
    for size, rebuild_rows in ((5, 50_000), (4, 12), (5, 5), (5, 4)):
        batches = [[e.entity_key for e in events[i : i + size]] for i in range(0, head, size)]
        runner = ProjectionRunner(
            store, _per_entity_count(), clock=clock, batch_size=size, rebuild_rows=rebuild_rows
        )
        reports: list[tuple[int, int, int, float]] = []

        def progressed(p: Any, reports: list[tuple[int, int, int, float]] = reports) -> None:
            reports.append((p.processed, p.total, p.written, p.seconds))

        started = time.perf_counter()
        progress = await runner.rebuild_now(progressed)
        took = time.perf_counter() - started
        expected = _written_per_batch(batches, rebuild_rows)
        processed = [min(size * (i + 1), head) for i in range(len(expected))]
        assert [(p, t, w) for p, t, w, _ in reports] == [
            (p, head, w) for p, w in zip(processed, expected, strict=True)
        ], rebuild_rows
        written = [w for _, _, w, _ in reports]
        seconds = [s for _, _, _, s in reports]
        assert seconds == sorted(seconds) and seconds[0] >= 0 and seconds[-1] <= took
        assert (progress.processed, progress.total, progress.written) == (head, head, written[-1])
        assert seconds[-1] <= progress.seconds <= took
        assert {k: r["n"] for k, r in (await rows(store, runner.projection)).items()} == {
            k: sum(1 for e in events if e.entity_key == k) for k in {e.entity_key for e in events}
        }
        # the model stands at the log's head, as of now
        checkpoint = await store.checkpoints.get(runner.role)
        assert checkpoint is not None
        assert (checkpoint.head, checkpoint.updated_at) == (await store.events.head(), clock.now())
        clock.advance(60)


async def test_a_rebuild_starts_afresh_whatever_a_crashed_one_left_behind(
    store: Store, clock: FakeClock
) -> None:
    """A rebuild run without a runner's recovery first (the CLI's `projections rebuild`)
    drops what a crashed rebuild wrote into the fresh collection: no stale row survives."""
    from projections.runner import BUILDING_SUFFIX

    await workload(store, clock, seed=26, changes=15)
    expected_runner = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock)
    await expected_runner.rebuild_now()
    expected = await rows(store, ORDERS_BY_STATUS)
    building = ORDERS_BY_STATUS.collection + BUILDING_SUFFIX
    await store.read_models.write(building, [("stale", {"count": 99, "seq": 1})])
    await ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock).rebuild_now()
    assert await rows(store, ORDERS_BY_STATUS) == expected


async def test_a_rebuild_that_lost_its_lease_leaves_the_new_holders_status_alone(
    store: Store,
) -> None:
    """Stalled past its lease time mid-rebuild, a rebuild stops at its next renewal; giving
    back what it no longer holds, it must not record the projection as stopped over the
    status of the instance that took it over."""
    from eventstore.leasing import LeaseLost
    from projections.runner import STATE_COLLECTION

    clock = FakeClock(advance_on_sleep=False)
    await workload(store, clock, seed=25, changes=20)
    stalled = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, owner="a", batch_size=5)
    taker = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, owner="b")

    async def stall_then_lose(progress: Any) -> None:
        if taker.lease.held:
            return
        clock.advance(11)
        assert await taker.lease.try_acquire()
        taker.status.state = "running"
        await taker.publish()

    with pytest.raises(LeaseLost):
        await stalled.rebuild_now(stall_then_lose)
    recorded = await store.read_models.get_many(STATE_COLLECTION, [ORDERS_BY_STATUS.name])
    assert recorded[ORDERS_BY_STATUS.name]["state"] == "running"
    lease = await store.leases.get(stalled.role)
    assert lease is not None and lease.owner == "b"
    # asked again while the other instance holds it: refused, and the message says why
    with pytest.raises(LeaseLost) as refused:
        await stalled.rebuild_now()
    assert str(refused.value) == "projection:orders_by_status is held by another instance"


async def test_each_batch_writes_its_rows_and_its_checkpoint_in_one_transaction(
    store: Store, clock: FakeClock
) -> None:
    """Where the server has transactions, a batch's rows and its checkpoint commit together:
    both writes go through the session of the batch's one transaction. The checkpoint names
    the last event applied (its seq and log hash) and when."""
    from contextlib import asynccontextmanager

    await workload(store, clock, seed=27, changes=15)
    runner = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock, batch_size=8)
    sessions: list[object] = []
    written: list[tuple[str, object]] = []
    real_write, real_put = store.read_models.write, store.checkpoints.put

    @asynccontextmanager
    async def transaction() -> Any:
        session = object()  # what a driver's session would be
        sessions.append(session)
        yield session

    async def write(collection: str, writes: Any, *, session: Any = None) -> None:
        if collection == ORDERS_BY_STATUS.collection:
            written.append(("rows", session))
        await real_write(collection, writes)

    async def put(checkpoint: Checkpoint, *, session: Any = None) -> None:
        written.append(("checkpoint", session))
        await real_put(checkpoint)

    store.transaction = transaction  # type: ignore[method-assign]
    store.read_models.write = write  # type: ignore[method-assign]
    store.checkpoints.put = put  # type: ignore[method-assign]
    try:
        await runner.catch_up()
    finally:
        del store.transaction, store.read_models.write, store.checkpoints.put
    head = await store.events.head()
    assert len(sessions) == -(-head.seq // 8)  # one transaction per batch
    assert written == [(kind, s) for s in sessions for kind in ("rows", "checkpoint")]
    checkpoint = await store.checkpoints.get(runner.role)
    assert checkpoint == Checkpoint(name=runner.role, head=head, updated_at=clock.now())


async def test_a_restarted_runner_shows_what_its_rows_were_built_with_and_their_problems(
    store: Store, clock: FakeClock
) -> None:
    """The status a new instance takes over from the recorded one: the config the rows were
    built with (here an older one: a rebuild is needed) and the problems they hold."""
    from projections.runner import STATE_COLLECTION

    await workload(store, clock, seed=28, changes=15)
    old = _flagging({5, 9}, config="mapping v1")
    # an empty model (a stale record left by a dropped one) is built with the config at hand
    await store.read_models.write(
        STATE_COLLECTION, [(old.name, {"built_with": "mapping v0", "problems": 7})]
    )
    fresh = ProjectionRunner(store, old, clock=clock, batch_size=1000)
    first: list[tuple[Any, Any]] = []
    fresh.on_step = lambda: first.append((fresh.status.built_with, fresh.status.problems))
    await fresh.run(until_caught_up=True)
    assert first[0] == ("mapping v1", 2)  # its config; the problems of the one batch applied
    await ProjectionRunner(store, old, clock=clock).rebuild_now()
    recorded = (await store.read_models.get_many(STATE_COLLECTION, [old.name]))[old.name]
    assert (recorded["built_with"], recorded["problems"]) == ("mapping v1", 2)
    when = recorded["rebuilt_at"]
    assert isinstance(when, datetime) and when.replace(tzinfo=None) == clock.now().replace(
        tzinfo=None
    )  # a date, not its text (the Mongo adapter gives it back naive, in UTC)

    new = _flagging({5, 9}, config="mapping v2")
    restarted = ProjectionRunner(store, new, clock=clock)
    shown: list[tuple[Any, Any]] = []
    restarted.on_step = lambda: shown.append(
        (restarted.status.built_with, restarted.status.problems)
    )
    await restarted.run(until_caught_up=True)
    assert shown == [("mapping v1", 2)]
    # a record of another shape (written by hand, or by another version) is not taken over
    odd = {**recorded, "built_with": 1, "problems": "two"}
    await store.read_models.write(STATE_COLLECTION, [(old.name, odd)])
    await restarted.run(until_caught_up=True)
    assert shown[-1] == (None, 0)


async def test_an_idle_projector_looks_again_after_50_ms_backing_off_to_1_s_by_default(
    store: Store, clock: FakeClock
) -> None:
    """The default bounds of the idle wait (how soon a job queued elsewhere is seen and
    the lease renewed): 50 ms, doubling up to 1 s. The log here never answers."""
    import asyncio

    await workload(store, clock, seed=29, changes=3)
    runner = ProjectionRunner(store, ORDERS_BY_STATUS, clock=clock)
    stop = asyncio.Event()
    timeouts: list[float] = []

    async def times_out(after_seq: int, timeout: float) -> bool:  # noqa: ASYNC109
        timeouts.append(timeout)
        if len(timeouts) == 8:
            stop.set()
        return False

    store.events.wait_for_append = times_out  # type: ignore[method-assign]
    try:
        await asyncio.wait_for(runner.run(stop=stop), 5)
    finally:
        del store.events.wait_for_append
    assert timeouts == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
