"""A claimed partition's keeper: it renews the claim every third of the lease, records the
fold's progress when it does, and stops the fold when another instance holds it now."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from eventstore.clock import FakeClock
from eventstore.model import Job, Partition
from eventstore.ports import Store
from projections.claims import ClaimKeeper, ClaimLost

TTL = 30.0  # seconds: a renewal is due every 10


async def _claimed(store: Store, clock: FakeClock) -> tuple[Job, Partition]:
    job = Job(job="pj", projection="revenue_by_day", requested_at=clock.now(), workers=1)
    await store.jobs.create(job)
    running = msgspec.structs.replace(job, state="running", started_at=clock.now(), head=40)
    await store.jobs.update(running)
    await store.jobs.set_partitions("pj", [Partition(index=0)])
    now = clock.now()
    claimed = await store.jobs.claim_partition(
        "pj", owner="a", now=now, until=now + timedelta(seconds=TTL)
    )
    assert claimed is not None
    return running, claimed


async def _partition(store: Store) -> Partition:
    job = await store.jobs.get("pj")
    assert job is not None
    return job.partitions[0]


async def test_the_claim_is_renewed_from_a_third_of_its_lease_with_the_progress(
    store: Store, clock: FakeClock
) -> None:
    job, claimed = await _claimed(store, clock)
    keeper = ClaimKeeper(store, job, claimed, clock=clock, ttl=TTL)
    first = (await _partition(store)).expires_at
    assert keeper.until() == clock.now() + timedelta(seconds=TTL)

    clock.advance(TTL / 3 - 0.5)  # not due yet: nothing written
    await keeper.keep(5, 40)
    assert (await _partition(store)).expires_at == first
    assert (await _partition(store)).processed == 0

    clock.advance(0.5)  # a third of the lease since the claim: due
    await keeper.keep(5, 40)
    renewed = await _partition(store)
    assert renewed.expires_at == clock.now() + timedelta(seconds=TTL)
    assert (renewed.processed, renewed.total, renewed.owner) == (5, 40, "a")

    clock.advance(TTL / 4)  # counted from the renewal, not from the claim: not due
    await keeper.keep(9, 40)
    assert (await _partition(store)).processed == 5


async def test_a_claim_taken_over_stops_the_fold_with_claim_lost(
    store: Store, clock: FakeClock
) -> None:
    job, claimed = await _claimed(store, clock)
    keeper = ClaimKeeper(store, job, claimed, clock=clock, ttl=TTL)
    clock.advance(TTL + 1)  # A stalled past its lease: B takes the partition over
    now = clock.now()
    taken = await store.jobs.claim_partition(
        "pj", owner="b", now=now, until=now + timedelta(seconds=TTL)
    )
    assert taken is not None and taken.owner == "b"
    with pytest.raises(ClaimLost, match="partition 0 of job pj was taken over"):
        await keeper.keep(1, 40)
    assert (await _partition(store)).owner == "b"  # A's renewal changed nothing
