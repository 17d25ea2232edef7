"""Store-side faults under supervision (issue 11, fault tests 2, 3 and 4, and a planted conflict).

Each run goes through a store that raises the real PyMongo exceptions, and its
log (and read models) afterwards must equal an uninterrupted run's: the same
events, seq, versions and hashes. Meanwhile readiness, `/v1/workers` and
`/metrics` must say what happened. The back-off runs on a fake clock.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError, WTimeoutError

from api import create_app
from api.metrics import Metrics
from eventstore.capture_worker import CaptureWorker
from eventstore.clock import FakeClock
from eventstore.ingester import Ingester
from eventstore.memory.store import MemoryStore
from eventstore.model import Event
from eventstore.ports import LogConflict, Store
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.simulator import Simulator
from eventstore.supervisor import Supervisor
from eventstore.worker_state import FAILED, RETRYING, STOPPED
from projections.orders import ORDER_SUMMARY, Projection
from projections.runner import ProjectionRunner
from projections.worker import ProjectionWorker
from tests.faults import Faults, FaultyStore, not_primary
from tests.integration.ingest_helpers import (
    ROLE,
    all_events,
    assert_log_intact,
    ingester,
    settings,
    start_from_the_beginning,
)
from tests.supervision import GatedClock, metric, until


def fingerprint(events: list[Event]) -> list[tuple[Any, ...]]:
    """What must not differ from an uninterrupted run: identity, order, versions, hashes."""
    return [
        (e.id, e.seq, e.stream, e.entity_key, e.version, e.type, e.hash, e.prev_hash, e.log_hash)
        for e in events
    ]


async def feed_with_orders(clock: FakeClock, *, orders: int = 12, changes: int = 80) -> Any:
    feed = MemoryChangeFeed(clock=clock)
    await Simulator(feed, seed=21, clock=clock).run(orders=orders, changes=changes, rate=0)
    return feed


async def reference_log(feed: MemoryChangeFeed, clock: FakeClock) -> list[Event]:
    """The same feed captured without a fault."""
    store = MemoryStore()
    await start_from_the_beginning(store)
    await ingester(store, feed, clock, batch_size=10).run(until_idle=True)
    return await assert_log_intact(store)


def supervised_capture(
    store: Store,
    feed: MemoryChangeFeed,
    clock: FakeClock,
    *,
    capture_clock: FakeClock | None = None,
    metrics: Metrics | None = None,
    follow: bool = False,
    **kw: Any,
) -> tuple[Supervisor, CaptureWorker]:
    """A supervisor on `clock` (the back-off) running capture until idle.

    `capture_clock` (default: `clock`) stamps `recorded_at`, which the hashes cover: a run
    compared with an uninterrupted one keeps it still while the back-off moves `clock`.
    """
    s = settings(batch_size=10, **kw)
    ing = Ingester(
        store=store,
        source=feed.source(["orders"], batch_size=10, max_await=0.01),
        settings=s,
        clock=capture_clock or clock,
        owner="here",
    )
    sup = Supervisor(clock=clock, instance="here", lease_seconds=10, rng_seed=4, metrics=metrics)
    worker = CaptureWorker(ing, follow=follow)
    sup.add(worker)
    return sup, worker


async def test_not_primary_on_the_events_insert_is_retried_with_no_duplicate_and_no_hole() -> None:
    still = FakeClock(advance_on_sleep=False)
    feed = await feed_with_orders(still)
    expected = await reference_log(feed, still)

    inner = MemoryStore()
    await start_from_the_beginning(inner)
    store = FaultyStore(inner)
    # The third insert is refused by a stepped-down primary; the next one lands but its
    # reply is lost (the driver raises after the write): both retried from the checkpoint.
    store.faults.plan("events.append", not_primary(), when=lambda _: _third(store.faults))
    store.faults.plan("events.append", not_primary(), after=True)
    seen: list[str] = []
    backoff = GatedClock()
    metrics = Metrics()
    sup, worker = supervised_capture(store, feed, backoff, capture_clock=still, metrics=metrics)
    sup.on_change = lambda r: seen.append(r.state)
    app = create_app(
        settings(),
        store=store,
        clock=backoff,
        supervisor=sup,
        capture=worker.name,
        caught_up=worker.caught_up,
        metrics=metrics,
    )
    held = backoff.hold(2)  # the back-off after the write that landed unacknowledged
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await sup.start()
        await asyncio.wait_for(held.wait(), 10)
        [listed] = (await client.get("/v1/workers")).json()
        assert (listed["state"], listed["restarts"]) == ("retrying", 2)
        assert listed["last_error"] == (
            "NotPrimaryError: not primary, full error: "
            "{'ok': 0, 'code': 10107, 'codeName': 'NotWritablePrimary'}"
        )
        # Not ready for the one reason that holds: the backlog is not captured yet (a blip
        # alone would not be; see the ten-failure test).
        r = await client.get("/health/ready")
        assert r.status_code == 503
        assert r.json()["detail"] == "the ingester has not caught up with the source yet"
        page = (await client.get("/metrics")).text
        assert metric(page, "eventstore_worker_restarts_total", worker=ROLE) == 2
        backoff.release(2)
        await asyncio.wait_for(sup.wait(worker.name), 10)
        await sup.stop()

    entry = sup.get(ROLE)
    assert entry is not None and entry.state == STOPPED
    assert store.faults.raised["events.append"] == 2 and store.faults.pending("events.append") == 0
    assert entry.restarts == 2
    assert seen.count(RETRYING) == 2 and FAILED not in seen
    assert fingerprint(await assert_log_intact(inner)) == fingerprint(expected)


def _third(faults: Faults) -> bool:
    return faults.calls["events.append"] == 3


async def test_ten_connection_failures_back_off_to_the_cap_and_readiness_follows() -> None:
    clock = GatedClock()
    still = FakeClock(advance_on_sleep=False)
    feed = MemoryChangeFeed(clock=still)
    simulator = Simulator(feed, seed=21, clock=still)
    await simulator.run(orders=12, changes=40, rate=0)
    inner = MemoryStore()
    await start_from_the_beginning(inner)
    store = FaultyStore(inner)
    metrics = Metrics()
    sup, worker = supervised_capture(
        store, feed, clock, capture_clock=still, metrics=metrics, follow=True
    )
    app = create_app(
        settings(unhealthy_after=30),
        store=store,
        clock=clock,
        supervisor=sup,
        capture=worker.name,
        caught_up=worker.caught_up,
        metrics=metrics,
    )
    early = clock.hold(2)
    late = clock.hold(10)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await sup.start()
        await until(lambda: worker.caught_up_once)
        assert (await client.get("/health/ready")).status_code == 200
        # The database goes away while the shop keeps writing.
        store.faults.plan("events.append", *[AutoReconnect("connection refused")] * 10)
        await simulator.run(orders=3, changes=40, rate=0)

        await asyncio.wait_for(early.wait(), 10)  # retrying, but not for long yet
        # Retrying for less than UNHEALTHY_AFTER is no reason to leave the load balancer.
        assert (await client.get("/health/ready")).status_code == 200
        assert sup.trouble(ROLE, 30) is None
        clock.release(2)

        await asyncio.wait_for(late.wait(), 10)  # the tenth back-off: at the cap
        ceilings = [min(30.0, 0.1 * 2**i) for i in range(10)]
        assert all(c / 2 <= d <= c for c, d in zip(ceilings, clock.slept, strict=True))
        assert ceilings[-1] == 30.0 and clock.slept[-1] >= 15.0
        r = await client.get("/health/ready")
        assert r.status_code == 503
        body = r.json()
        assert body["type"].endswith("/not-ready")
        assert body["detail"].startswith("ingester:shop has been retrying for ")
        assert body["workers"] == [
            {
                "name": ROLE,
                "state": "retrying",
                "last_error": "AutoReconnect: connection refused",
            }
        ]
        [listed] = (await client.get("/v1/workers")).json()
        assert (listed["state"], listed["restarts"]) == ("retrying", 10)
        page = (await client.get("/metrics")).text
        assert metric(page, "eventstore_worker_state", worker=ROLE, state="retrying") == 1
        assert metric(page, "eventstore_worker_state", worker=ROLE, state="running") == 0
        assert metric(page, "eventstore_worker_restarts_total", worker=ROLE) == 10
        clock.release(10)

        # Recovered: everything written meanwhile is captured, and the process is ready again.
        expected = await reference_log(feed, still)
        await until(lambda: worker.ingester.idle and store.faults.pending("events.append") == 0)
        for _ in range(2000):
            if (await inner.events.head()).seq == len(expected):
                break
            await asyncio.sleep(0.005)
        r = await client.get("/health/ready")
        assert r.status_code == 200, r.text
        page = (await client.get("/metrics")).text
        assert metric(page, "eventstore_worker_state", worker=ROLE, state="running") == 1
        assert metric(page, "eventstore_capture_lag_seconds", worker=ROLE) == 0
        await sup.stop()
    assert fingerprint(await all_events(inner)) == fingerprint(expected)


async def test_a_projection_write_failing_transiently_resumes_from_its_checkpoint() -> None:
    clock = FakeClock(advance_on_sleep=False)
    feed = await feed_with_orders(clock, orders=15, changes=120)
    events = await reference_log(feed, clock)
    inner = MemoryStore()
    await inner.events.append(events)
    store = FaultyStore(inner)

    def rows(args: tuple[Any, ...]) -> bool:
        return bool(args and args[0] == ORDER_SUMMARY.collection)

    # A write concern timeout before the write; then a write that lands but whose reply is
    # lost (the checkpoint is not moved): applying those events again must not double-count.
    store.faults.plan(
        "read_models.write",
        WTimeoutError("waiting for replication timed out", 64, {"code": 64}),
        when=rows,
    )
    store.faults.plan("read_models.write", AutoReconnect("reset"), after=True, when=rows)
    store.faults.plan("read_models.write", AutoReconnect("reset again"), after=True, when=rows)
    runner = ProjectionRunner(store, ORDER_SUMMARY, clock=clock, batch_size=25, lease_seconds=10)
    backoff = GatedClock()
    metrics = Metrics()
    sup = Supervisor(clock=backoff, instance="here", lease_seconds=10, rng_seed=2, metrics=metrics)
    worker = ProjectionWorker(runner, until_caught_up=True)
    sup.add(worker)
    app = create_app(settings(), store=store, clock=backoff, supervisor=sup, metrics=metrics)
    held = backoff.hold(1)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await sup.start()
        await asyncio.wait_for(held.wait(), 10)
        # A projection's trouble shows everywhere but readiness.
        [listed] = (await client.get("/v1/workers")).json()
        assert (listed["name"], listed["state"]) == ("projection:order_summary", "retrying")
        assert listed["last_error"].startswith("WTimeoutError: waiting for replication")
        status = {p["name"]: p for p in (await client.get("/v1/projections")).json()}
        assert status["order_summary"]["state"] == "retrying"
        assert status["order_summary"]["error"].startswith("WTimeoutError")
        assert (await client.get("/health/ready")).status_code == 200
        page = (await client.get("/metrics")).text
        worker_state = {"worker": "projection:order_summary", "state": "retrying"}
        assert metric(page, "eventstore_worker_state", **worker_state) == 1
        projection_state = {"projection": "order_summary", "state": "retrying"}
        assert metric(page, "eventstore_projection_state", **projection_state) == 1
        backoff.release(1)
        await asyncio.wait_for(sup.wait(worker.name), 10)
        await sup.stop()

    entry = sup.get("projection:order_summary")
    assert entry is not None and entry.state == STOPPED and entry.restarts == 3
    assert store.faults.pending("read_models.write") == 0
    assert await runner.position() == events[-1].seq
    assert await live_rows(inner, ORDER_SUMMARY) == await rebuilt_rows(events, ORDER_SUMMARY)


async def live_rows(store: Store, projection: Projection) -> list[dict[str, Any]]:
    return await store.read_models.query(projection.collection, filters={}, limit=10**6)


async def rebuilt_rows(events: list[Event], projection: Projection) -> list[dict[str, Any]]:
    fresh = MemoryStore()
    await fresh.events.append(events)
    await ProjectionRunner(fresh, projection, clock=FakeClock()).rebuild_now()
    return await live_rows(fresh, projection)


async def test_a_conflict_while_the_lease_is_ours_fails_capture_at_once_without_a_hot_loop() -> (
    None
):
    clock = FakeClock(advance_on_sleep=False)
    feed = await feed_with_orders(clock)
    inner = MemoryStore()
    await start_from_the_beginning(inner)
    store = FaultyStore(inner)
    # A bug: the log refuses the batch although nobody else holds the lease.
    store.faults.plan("events.append", *[LogConflict("seq 1 holds a different event")] * 1000)
    sup, worker = supervised_capture(store, feed, clock)
    await sup.start()
    await asyncio.wait_for(sup.wait(worker.name), 5)
    entry = sup.get(ROLE)
    assert entry is not None and entry.state == FAILED and entry.restarts == 0
    assert entry.last_error == "another writer changed the log: seq 1 holds a different event"
    assert store.faults.calls["events.append"] == 1  # not retried: no hot loop
    assert await inner.leases.get(ROLE) is None  # released for a standby
    assert await inner.events.head() == (await MemoryStore().events.head())
    await sup.stop()


async def test_an_unreachable_lease_store_is_retried_like_any_connection_failure() -> None:
    clock = FakeClock(advance_on_sleep=False)
    feed = await feed_with_orders(clock, orders=4, changes=10)
    expected = await reference_log(feed, clock)
    inner = MemoryStore()
    await start_from_the_beginning(inner)
    store = FaultyStore(inner)
    store.faults.plan("leases.acquire", *[ServerSelectionTimeoutError("no servers")] * 3)
    sup, worker = supervised_capture(store, feed, clock)
    await sup.start()
    await asyncio.wait_for(sup.wait(worker.name), 10)
    await sup.stop()
    entry = sup.get(ROLE)
    assert entry is not None and entry.state == STOPPED and entry.restarts == 3
    assert fingerprint(await all_events(inner)) == fingerprint(expected)
