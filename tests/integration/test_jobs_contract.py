"""The Jobs port, over both adapters: one active rebuild per projection."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from eventstore.model import Job, Partition
from eventstore.ports import JobConflict, Store
from tests.integration.conftest import open_test_store

T = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


async def test_one_active_job_per_projection(store: Store) -> None:
    first = Job(job="j1", projection="orders_by_status", requested_at=T)
    await store.jobs.create(first)
    assert await store.jobs.get("j1") == first
    with pytest.raises(JobConflict):
        await store.jobs.create(Job(job="j2", projection="orders_by_status", requested_at=T))
    await store.jobs.create(Job(job="j3", projection="order_summary", requested_at=T))
    running = msgspec.structs.replace(first, state="running", started_at=T, processed=5, total=10)
    await store.jobs.update(running)
    assert await store.jobs.active("orders_by_status") == running
    with pytest.raises(JobConflict):
        await store.jobs.create(Job(job="j4", projection="orders_by_status"))
    done = msgspec.structs.replace(running, state="succeeded", finished_at=T, processed=10)
    await store.jobs.update(done)
    assert await store.jobs.active("orders_by_status") is None
    assert await store.jobs.get("j1") == done
    await store.jobs.create(Job(job="j5", projection="orders_by_status"))
    assert await store.jobs.get("nope") is None


# -- partitions claimed by any instance -----------------------------------------------------
LEASE = timedelta(seconds=10)


async def _running_job(store: Store, partitions: int) -> Job:
    job = Job(job="pj", projection="revenue_by_day", requested_at=T, workers=partitions)
    await store.jobs.create(job)
    running = msgspec.structs.replace(job, state="running", started_at=T, head=40)
    await store.jobs.update(running)
    await store.jobs.set_partitions("pj", [Partition(index=i) for i in range(partitions)])
    return running


async def test_partitions_are_claimed_one_instance_each_in_index_order(store: Store) -> None:
    await _running_job(store, 3)
    a = await store.jobs.claim_partition("pj", owner="a", now=T, until=T + LEASE)
    b = await store.jobs.claim_partition("pj", owner="b", now=T, until=T + LEASE)
    c = await store.jobs.claim_partition("pj", owner="c", now=T, until=T + LEASE)
    assert a is not None and b is not None and c is not None
    assert [(p.index, p.owner, p.state, p.attempts) for p in (a, b, c)] == [
        (0, "a", "running", 1),
        (1, "b", "running", 1),
        (2, "c", "running", 1),
    ]
    assert len({a.claim, b.claim, c.claim}) == 3 and None not in {a.claim, b.claim, c.claim}
    # every partition is held and no claim has expired: nothing to claim
    assert await store.jobs.claim_partition("pj", owner="d", now=T, until=T + LEASE) is None
    stored = await store.jobs.get("pj")
    assert stored is not None and stored.partitions == [a, b, c]
    assert stored.head == 40


async def test_claims_made_at_once_never_share_a_partition(store: Store) -> None:
    await _running_job(store, 4)
    claims = await asyncio.gather(
        *(store.jobs.claim_partition("pj", owner=f"i{n}", now=T, until=T + LEASE) for n in range(6))
    )
    got = [c for c in claims if c is not None]
    assert sorted(c.index for c in got) == [0, 1, 2, 3]  # four partitions, six instances
    stored = await store.jobs.get("pj")
    assert stored is not None
    assert {p.index: p.owner for p in stored.partitions} == {c.index: c.owner for c in got}


async def test_an_expired_claim_is_taken_over_and_the_old_holder_can_no_longer_finish(
    store: Store,
) -> None:
    await _running_job(store, 2)
    dead = await store.jobs.claim_partition("pj", owner="dead", now=T, until=T + LEASE)
    alive = await store.jobs.claim_partition("pj", owner="alive", now=T, until=T + LEASE)
    assert dead is not None and alive is not None
    later = T + timedelta(seconds=5)
    # the live holder renews (and reports progress); the dead one does not
    assert await store.jobs.renew_partition("pj", alive, until=later + LEASE, processed=7, total=20)
    expired = T + LEASE
    assert await store.jobs.claim_partition("pj", owner="x", now=expired - SECOND, until=T) is None
    again = await store.jobs.claim_partition(
        "pj", owner="rescuer", now=expired, until=expired + LEASE
    )
    assert again is not None
    assert (again.index, again.owner, again.attempts) == (dead.index, "rescuer", 2)
    assert again.claim != dead.claim
    # the dead holder's claim is gone: neither renew nor finish changes anything
    assert not await store.jobs.renew_partition(
        "pj", dead, until=expired + LEASE, processed=1, total=1
    )
    assert not await store.jobs.finish_partition(
        "pj", dead, state="succeeded", processed=1, total=1
    )
    assert await store.jobs.finish_partition("pj", again, state="succeeded", processed=20, total=20)
    assert await store.jobs.finish_partition(
        "pj", alive, state="failed", processed=3, total=20, error="RuntimeError: bad row"
    )
    stored = await store.jobs.get("pj")
    assert stored is not None
    first, second = stored.partitions
    assert (first.state, first.owner, first.processed, first.total) == (
        "succeeded",
        "rescuer",
        20,
        20,
    )
    assert (second.state, second.error, second.expires_at) == (
        "failed",
        "RuntimeError: bad row",
        None,
    )
    # finished partitions are never claimed again, even long after
    far = T + timedelta(days=1)
    assert await store.jobs.claim_partition("pj", owner="late", now=far, until=far + LEASE) is None


async def test_a_job_update_keeps_the_partitions_other_instances_claimed(store: Store) -> None:
    job = await _running_job(store, 2)
    claimed = await store.jobs.claim_partition("pj", owner="b", now=T, until=T + LEASE)
    assert claimed is not None
    # the coordinator reports progress with its own (stale) copy of the job
    await store.jobs.update(msgspec.structs.replace(job, processed=12, total=40))
    stored = await store.jobs.get("pj")
    assert stored is not None and stored.processed == 12
    assert stored.partitions[0] == claimed and stored.partitions[1].state == "queued"
    # only a running job's partitions can be claimed; a finished job's never
    done = msgspec.structs.replace(job, state="succeeded", finished_at=T)
    await store.jobs.update(done)
    assert await store.jobs.claim_partition("pj", owner="c", now=T, until=T + LEASE) is None
    assert await store.jobs.active("revenue_by_day") is None
    queued = Job(job="q", projection="order_summary", workers=2)
    await store.jobs.create(queued)
    await store.jobs.set_partitions("q", [Partition(index=0), Partition(index=1)])
    assert await store.jobs.claim_partition("q", owner="c", now=T, until=T + LEASE) is None
    assert await store.jobs.claim_partition("nope", owner="c", now=T, until=T + LEASE) is None


async def test_a_claim_that_loses_the_race_on_the_server_looks_again() -> None:
    """MongoDB: two instances read partition 0 as queued; the server applies one claim (the
    compare-and-set on state and token), and the loser claims partition 1 instead."""
    store = await open_test_store("mongo")
    try:
        await _running_job(store, 2)
        jobs: Any = store.jobs
        coll = jobs._coll
        stale = await coll.find_one({"_id": "pj"})  # what the loser read
        winner = await store.jobs.claim_partition("pj", owner="winner", now=T, until=T + LEASE)
        assert winner is not None and winner.index == 0
        real_find_one = coll.find_one
        reads = 0

        async def find_one(*args: Any, **kw: Any) -> Any:
            nonlocal reads
            reads += 1
            return stale if reads == 1 else await real_find_one(*args, **kw)

        coll.find_one = find_one
        loser = await store.jobs.claim_partition("pj", owner="loser", now=T, until=T + LEASE)
        assert reads == 2  # its first compare-and-set matched nothing: it read again
        assert loser is not None and loser.index == 1
        stored = await store.jobs.get("pj")
        assert stored is not None
        assert [(p.owner, p.claim) for p in stored.partitions] == [
            ("winner", winner.claim),
            ("loser", loser.claim),
        ]
    finally:
        await store.close()
