"""The Jobs port, over both adapters: one active rebuild per projection."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from eventstore.model import Job
from eventstore.ports import JobConflict, Store

T = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


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
