"""A partition of a rebuild job claimed by an instance (`projections.claims`), step by step.

`run_claimed` (another instance's job): the claim is kept while the log is read, while
the fold runs and while the rows are staged, with the progress at each renewal; a
failing fold fails the partition at its seq; a claim taken over at any step leaves the
partition to its new holder. `coordinate` (the job's own instance): the log read once,
the lease kept meanwhile, a fold running long renewing its claim, and each way the job
can fail, with its reason. The memory store throughout: the ports' own contract
suites run both adapters, and `test_partition_claims.py` runs whole
multi-instance rebuilds over mongomock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest

from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.model import Job, Partition
from projections import claims
from projections.api import Change, Projection, Write
from projections.claims import ClaimKeeper, Coordination, PartitionFailed, coordinate, run_claimed
from projections.partitioned import FoldFailed
from tests.helpers import LogBuilder

TTL = 3.0  # the claim's lease (fake seconds): a renewal is due after one


class TickingClock(FakeClock):
    """A fake clock that moves `tick` seconds each time it is read: a renewal falls due at
    every step that reads it often enough, whatever the real time."""

    def __init__(self, tick: float) -> None:
        super().__init__()
        self.tick = tick

    def now(self) -> datetime:
        t = super().now()
        self.advance(self.tick)
        return t


def per_entity(*, fail_at: int | None = None, pause: float = 0.0) -> Projection:
    """Events per entity: one row each (`fail_at`: apply raises there; `pause`: real seconds
    per event, for a fold that runs long)."""

    def keys(change: Change) -> list[str]:
        return [change.event.entity_key]

    def apply(rows: Any, change: Change) -> list[Write]:
        if change.event.seq == fail_at:
            raise ValueError("boom")
        if pause:
            time.sleep(pause)
        key = change.event.entity_key
        old = rows.get(key) or {"events": 0}
        return [Write(key=key, row={"events": old["events"] + 1})]

    def merge(key: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        return {"events": a["events"] + b["events"]}

    return Projection(
        name="per_entity", collection="rm_per_entity", keys=keys, apply=apply, merge=merge
    )


async def shop(entities: int, *, twice: bool = False) -> MemoryStore:
    """A log of `entities` entities created (and each changed once more with `twice`)."""
    store = MemoryStore()
    log = LogBuilder()
    ids = [f"e{n:05d}" for n in range(entities)]
    events = log.many(*ids) + (log.many(*ids) if twice else [])
    await store.events.append(events)
    return store


async def running_job(store: MemoryStore, clock: FakeClock, workers: int) -> Job:
    """A running job of `workers` partitions up to the head, its partitions queued."""
    job = Job(job="pj", projection="per_entity", requested_at=clock.now(), workers=workers)
    await store.jobs.create(job)
    head = (await store.events.head()).seq
    running = msgspec.structs.replace(job, state="running", started_at=clock.now(), head=head)
    await store.jobs.update(running)
    await store.jobs.set_partitions("pj", [Partition(index=i) for i in range(workers)])
    return running


async def job_over(
    entities: int, workers: int = 1, clock: FakeClock | None = None
) -> tuple[MemoryStore, FakeClock, Job]:
    """A log of `entities` entities, a clock, and a running job of `workers` partitions."""
    store = await shop(entities)
    clock = clock or FakeClock()
    return store, clock, await running_job(store, clock, workers)


async def claim(store: MemoryStore, clock: FakeClock, owner: str = "b") -> Partition:
    now = clock.now()
    claimed = await store.jobs.claim_partition(
        "pj", owner=owner, now=now, until=now + timedelta(seconds=TTL)
    )
    assert claimed is not None
    return claimed


async def partition(store: MemoryStore, index: int = 0) -> Partition:
    job = await store.jobs.get("pj")
    assert job is not None
    return job.partitions[index]


def spy(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[dict[str, Any]]:
    """Record each call of `owner.name` (its keyword arguments, and `n`: the how-manieth)."""
    calls: list[dict[str, Any]] = []
    real = getattr(owner, name)

    async def recorded(*args: Any, **kwargs: Any) -> Any:
        calls.append({"n": len(calls) + 1, **kwargs})
        return await real(*args, **kwargs)

    monkeypatch.setattr(owner, name, recorded)
    return calls


def then(
    monkeypatch: pytest.MonkeyPatch,
    owner: object,
    name: str,
    after: Callable[[int], Awaitable[object]],
) -> None:
    """After each call of `owner.name` (numbered from 1), run `after(number)`."""
    real = getattr(owner, name)
    count = [0]

    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        result = await real(*args, **kwargs)
        count[0] += 1
        await after(count[0])
        return result

    monkeypatch.setattr(owner, name, wrapped)


def test_an_error_is_recorded_with_its_type_unless_the_fold_already_said_where() -> None:
    assert claims._error_of(ValueError("bad")) == "ValueError: bad"
    assert claims._error_of(FoldFailed(7, "ValueError: bad")) == "at seq 7: ValueError: bad"


# -- run_claimed: another instance's job ------------------------------------------------------
async def test_a_claimed_partition_is_kept_while_read_folded_and_staged_in_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every entity's rows in one partition: three staging writes.
    store, clock, job = await job_over(2500)
    claimed = await claim(store, clock)
    renewals = spy(monkeypatch, store.jobs, "renew_partition")
    writes = spy(monkeypatch, store.read_models, "write")

    async def a_third_of_the_lease(_: int) -> None:
        clock.advance(TTL / 3)  # a renewal falls due at each read and each write

    then(monkeypatch, store.events, "read", a_third_of_the_lease)
    then(monkeypatch, store.read_models, "write", a_third_of_the_lease)
    projection = per_entity()
    assert await run_claimed(
        store,
        projection,
        job,
        claimed,
        clock=clock,
        lease_seconds=TTL,
        batch_size=1000,
        processes=False,
    )
    progress = [(r["processed"], r["total"]) for r in renewals]
    # Reading: the log's three batches (and the empty read after them): no progress yet.
    # Staging: after each of the three writes, everything folded.
    assert progress == [(0, 0)] * 3 + [(2500, 2500)] * 3
    assert len(writes) == 3  # 1,000 rows a write
    staged = await claims.read_staged(store, claims.staging_name("rm_per_entity", job, claimed))
    assert len(staged) == 2500
    assert staged["e00042"] == {"events": 1, "_seq": 43}
    done = await partition(store)
    assert (done.state, done.processed, done.total, done.owner) == ("succeeded", 2500, 2500, "b")


async def test_read_staged_pages_through_every_row() -> None:
    store = MemoryStore()
    # "" is a key like any other (an order whose `_id` is the empty string has it).
    rows = [("", {"n": -1})] + [(f"k{n:05d}", {"n": n}) for n in range(2 * claims.STAGE_BATCH)]
    await store.read_models.write("rm_staged", rows)
    staged = await claims.read_staged(store, "rm_staged")
    assert list(staged.items()) == rows
    await store.read_models.write("rm_full_page", rows[: claims.STAGE_BATCH])
    assert len(await claims.read_staged(store, "rm_full_page")) == claims.STAGE_BATCH


async def test_a_fold_failing_here_fails_the_partition_at_its_seq(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="projections.claims")
    store, clock, job = await job_over(6)
    claimed = await claim(store, clock)
    projection = per_entity(fail_at=4)
    assert not await run_claimed(
        store, projection, job, claimed, clock=clock, lease_seconds=TTL, processes=False
    )
    failed = await partition(store)
    assert (failed.state, failed.processed, failed.total) == ("failed", 0, 6)
    assert (failed.failed_seq, failed.error) == (4, "at seq 4: ValueError: boom")
    assert [r.getMessage() for r in caplog.records] == [
        "rebuild of per_entity: partition 0 failed: at seq 4: ValueError: boom"
    ]


async def _take_over(store: MemoryStore, clock: FakeClock) -> None:
    """B stalled past its lease: C claims the partition."""
    clock.advance(TTL + 1)
    assert (await claim(store, clock, owner="c")).owner == "c"


@pytest.mark.parametrize("step", ["reading", "staging", "finishing"])
async def test_a_claim_taken_over_at_any_step_leaves_the_partition_to_its_new_holder(
    step: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="projections.claims")
    store, clock, job = await job_over(1500)
    claimed = await claim(store, clock)

    async def lose(n: int) -> None:
        if n == 1:
            await _take_over(store, clock)

    if step == "reading":
        then(monkeypatch, store.events, "read", lose)
    elif step == "staging":
        then(monkeypatch, store.read_models, "write", lose)
    else:
        real_finish = store.jobs.finish_partition

        async def finish_late(*args: Any, **kwargs: Any) -> bool:
            await _take_over(store, clock)
            return await real_finish(*args, **kwargs)

        monkeypatch.setattr(store.jobs, "finish_partition", finish_late)
    assert not await run_claimed(
        store, per_entity(), job, claimed, clock=clock, lease_seconds=TTL, processes=False
    )
    held = await partition(store)
    assert (held.owner, held.state) == ("c", "running")  # B changed nothing of C's claim
    staging = claims.staging_name("rm_per_entity", job, claimed)
    assert await claims.read_staged(store, staging) == {}  # B's partial rows are gone
    assert [r.getMessage() for r in caplog.records] == [
        "rebuild of per_entity: partition 0 taken over"
    ]


async def test_a_fold_running_long_in_a_process_renews_its_claim_with_its_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every look at the clock finds a renewal due.
    store, clock, job = await job_over(20, clock=TickingClock(tick=TTL / 3))
    claimed = await claim(store, clock)
    renewals = spy(monkeypatch, store.jobs, "renew_partition")
    # 20 events at 50 ms: a second of folding, the claim looked at every third of a second.
    assert await run_claimed(
        store,
        per_entity(pause=0.05),
        job,
        claimed,
        clock=clock,
        lease_seconds=1.0,
        processes=True,
    )
    folding = [r for r in renewals if (r["processed"], r["total"]) == (0, 20)]
    assert len(folding) >= 2, renewals
    assert (await partition(store)).state == "succeeded"


async def test_waiting_for_a_fold_renews_the_claim_each_poll_until_the_rows_come() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[dict[str, Any]] = loop.create_future()
    kept: list[tuple[int, int]] = []

    class Keeper:
        async def keep(self, processed: int = 0, total: int = 0) -> None:
            kept.append((processed, total))
            if len(kept) == 3:
                future.set_result({"k": {"n": 1}})

    rows = await asyncio.wait_for(
        claims._folded(future, Keeper(), 40, 0.01),  # type: ignore[arg-type]
        timeout=5,
    )
    assert rows == {"k": {"n": 1}}
    assert kept == [(0, 40)] * 3


async def test_a_keeper_renewing_without_progress_records_none() -> None:
    store, clock, job = await job_over(3)
    keeper = ClaimKeeper(store, job, await claim(store, clock), clock=clock, ttl=TTL)
    clock.advance(TTL / 3)
    await keeper.keep()
    renewed = await partition(store)
    assert (renewed.processed, renewed.total) == (0, 0)
    assert renewed.expires_at == clock.now() + timedelta(seconds=TTL)


# -- coordinate: the job's own instance -------------------------------------------------------
def coordination(
    store: MemoryStore,
    clock: FakeClock,
    projection: Projection,
    *,
    keep_lease: Callable[[], Awaitable[object]] | None = None,
    slots: int | None = None,
    processes: bool = False,
    poll: float = 0.01,
) -> Coordination:
    async def nothing() -> None:
        return None

    return Coordination(
        store=store,
        projection=projection,
        clock=clock,
        owner="a",
        lease_seconds=TTL,
        batch_size=100,
        processes=processes,
        slots=slots,
        keep_lease=keep_lease or nothing,
        poll_seconds=poll,
    )


async def test_the_coordinator_reads_the_log_once_keeping_its_lease_between_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, clock, job = await job_over(450, workers=3)
    reads = spy(monkeypatch, store.events, "read")
    leased_at: list[int] = []  # how many reads had been made at each renewal of the lease

    async def keep_lease() -> None:
        leased_at.append(len(reads))

    c = coordination(store, clock, per_entity(), keep_lease=keep_lease, slots=3)
    merged, done = await coordinate(c, job)
    # One pass over the log for all three partitions: 450 events in 100s, then the end.
    assert len(reads) == 5
    assert set(range(1, 5)) <= set(leased_at)  # the lease was kept after each full batch
    assert [p.state for p in done.partitions] == ["succeeded"] * 3
    assert len(merged) == 450 and merged["e00007"] == {"events": 1, "_seq": 8}


async def test_a_fold_failing_at_the_coordinator_records_no_progress_and_fails_the_job() -> None:
    store, clock, job = await job_over(6)
    with pytest.raises(FoldFailed, match="at seq 5: ValueError: boom"):
        await coordinate(coordination(store, clock, per_entity(fail_at=5)), job)
    failed = await partition(store)
    assert (failed.state, failed.processed, failed.total, failed.failed_seq) == ("failed", 0, 6, 5)


async def test_a_partition_failing_elsewhere_without_a_seq_fails_the_job_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, clock, job = await job_over(40, workers=2)
    real_claim = store.jobs.claim_partition

    async def b_claims_and_breaks(*args: Any, **kwargs: Any) -> Partition | None:
        mine = await real_claim(*args, **kwargs)
        theirs = await real_claim("pj", owner="b", now=clock.now(), until=kwargs["until"])
        if theirs is not None:  # B's worker processes died: no seq, the pool's error
            await store.jobs.finish_partition(
                "pj",
                theirs,
                state="failed",
                processed=0,
                total=20,
                error="BrokenProcessPool: a child process terminated",
                failed_seq=None,
            )
        return mine

    monkeypatch.setattr(store.jobs, "claim_partition", b_claims_and_breaks)
    with pytest.raises(PartitionFailed) as failed:
        await coordinate(coordination(store, clock, per_entity(), slots=1), job)
    assert str(failed.value) == (
        "partition 1 failed on b: BrokenProcessPool: a child process terminated"
    )


async def test_a_job_no_longer_recorded_fails_the_coordination(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, clock, job = await job_over(10)
    real_get = store.jobs.get
    gets = [0]

    async def gone_after_the_first(job_id: str) -> Job | None:
        gets[0] += 1
        return await real_get(job_id) if gets[0] == 1 else None

    monkeypatch.setattr(store.jobs, "get", gone_after_the_first)
    with pytest.raises(PartitionFailed, match=r"^job pj is no longer recorded$"):
        await coordinate(coordination(store, clock, per_entity()), job)


async def test_a_long_fold_at_the_coordinator_renews_its_claim_while_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, clock, job = await job_over(20, clock=TickingClock(tick=TTL / 3))
    renewals = spy(monkeypatch, store.jobs, "renew_partition")
    c = coordination(store, clock, per_entity(pause=0.05), processes=True, poll=0.1)
    merged, done = await coordinate(c, job)
    folding = [r for r in renewals if (r["processed"], r["total"]) == (0, 20)]
    assert len(folding) >= 2, renewals  # a second of folding, looked at every 0.1 s
    assert done.partitions[0].state == "succeeded"
    assert merged == {f"e{n:05d}": {"events": 1, "_seq": n + 1} for n in range(20)}
