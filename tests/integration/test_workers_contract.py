"""The Workers port, over both adapters: one record per instance and worker, replaced in place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from eventstore.ports import Store
from eventstore.worker_state import FAILED, RUNNING, STALE, STANDBY, WorkerRecord, shown

T = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)


def _record(name: str, instance: str, state: str = RUNNING, **extra: object) -> WorkerRecord:
    return WorkerRecord(
        name=name,
        kind="capture" if name.startswith("ingester") else "projection",
        instance=instance,
        state=state,
        since=T,
        updated_at=T,
        **extra,  # type: ignore[arg-type]
    )


async def test_records_are_replaced_per_instance_and_listed_by_name(store: Store) -> None:
    a = _record("projection:order_summary", "a", position=7, lag=3)
    b = _record("ingester:shop", "b", STANDBY)
    c = _record("ingester:shop", "a", lag_seconds=1.5)
    await store.workers.put([a, b, c])
    failed = msgspec.structs.replace(
        a, state=FAILED, restarts=2, last_error="Boom: x", updated_at=T + timedelta(seconds=5)
    )
    await store.workers.put([failed])
    stored = await store.workers.all()
    # Times come back at millisecond precision, aware UTC.
    ms = T.replace(microsecond=123000)
    assert [(r.name, r.instance, r.state) for r in stored] == [
        ("ingester:shop", "a", RUNNING),
        ("ingester:shop", "b", STANDBY),
        ("projection:order_summary", "a", FAILED),
    ]
    assert stored[0].lag_seconds == 1.5 and stored[0].lag is None
    assert stored[2] == msgspec.structs.replace(
        failed, since=ms, updated_at=ms + timedelta(seconds=5)
    )


async def test_remove_forgets_only_that_instance(store: Store) -> None:
    await store.workers.put([_record("ingester:shop", "a"), _record("ingester:shop", "b")])
    await store.workers.remove("a")
    assert [r.instance for r in await store.workers.all()] == ["b"]


async def test_remove_worker_forgets_only_that_instance_s_record_of_it(store: Store) -> None:
    await store.workers.put(
        [
            _record("subscription:a", "a"),
            _record("subscription:a", "b"),
            _record("ingester:shop", "a"),
        ]
    )
    await store.workers.remove_worker("a", "subscription:a")
    await store.workers.remove_worker("a", "subscription:never")  # none: nothing happens
    assert [(r.name, r.instance) for r in await store.workers.all()] == [
        ("ingester:shop", "a"),
        ("subscription:a", "b"),
    ]


def test_a_record_not_refreshed_for_three_lease_times_reads_stale() -> None:
    record = _record("ingester:shop", "a")
    assert shown(record, now=T + timedelta(seconds=30), lease_seconds=10).state == RUNNING
    assert shown(record, now=T + timedelta(seconds=30.01), lease_seconds=10).state == STALE
