"""A database that stops answering, under supervision: a stalled operation, and a stop.

- An operation that never returned left capture `starting` for ever (the probe's F6).
  With a socket timeout, it fails as a `NetworkTimeout`: the supervisor must retry it
  from the checkpoint, and readiness must come back, with nothing lost.
- A stop during an outage took one server selection per lease release and record
  removal, one after another (the probe's F12): the stop's database work shares one
  deadline (SERVER_TIMEOUT_MS) after the grace for batches in flight.
"""

from __future__ import annotations

import asyncio
import time

import httpx
from pymongo.errors import NetworkTimeout

from api import create_app
from api.workers import Workers
from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.worker_state import RUNNING, STOPPED
from tests.faults import FaultyStore
from tests.integration.ingest_helpers import (
    assert_log_intact,
    settings,
    start_from_the_beginning,
)
from tests.integration.test_supervised_faults import (
    feed_with_orders,
    fingerprint,
    reference_log,
    supervised_capture,
)
from tests.supervision import until


async def test_an_operation_that_stalled_then_timed_out_is_retried_and_readiness_comes_back() -> (
    None
):
    still = FakeClock(advance_on_sleep=False)
    feed = await feed_with_orders(still)
    expected = await reference_log(feed, still)

    inner = MemoryStore()
    await start_from_the_beginning(inner)
    store = FaultyStore(inner)
    # The first insert never returns (the database stalled) until the test lets it go: then
    # it fails as the driver's socket timeout makes it fail.
    stalled = asyncio.Event()
    store.faults.gates["events.append"] = stalled
    backoff = FakeClock()  # the back-off passes at once
    sup, worker = supervised_capture(store, feed, backoff, capture_clock=still)
    app = create_app(
        settings(),
        store=store,
        clock=backoff,
        supervisor=sup,
        capture=worker.name,
        caught_up=worker.caught_up,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await sup.start()
        try:
            await until(lambda: store.faults.calls["events.append"] == 1)
            [listed] = (await client.get("/v1/workers")).json()
            assert listed["state"] in ("starting", RUNNING) and listed["restarts"] == 0
            assert (await client.get("/health/ready")).status_code == 503
            store.faults.plan("events.append", NetworkTimeout("127.0.0.1:27017: timed out"))
            stalled.set()  # the operation's socket timeout expires
            await asyncio.wait_for(sup.wait(worker.name), 10)
            [listed] = (await client.get("/v1/workers")).json()
            assert (listed["state"], listed["restarts"]) == (STOPPED, 1)
            assert listed["last_error"] == "NetworkTimeout: 127.0.0.1:27017: timed out"
            r = await client.get("/health/ready")
            assert r.status_code == 200, r.text
        finally:
            await sup.stop(0.5)
    assert store.faults.raised["events.append"] == 1
    assert fingerprint(await assert_log_intact(inner)) == fingerprint(expected)


async def test_stopping_during_an_outage_waits_one_server_timeout_for_the_releases() -> None:
    clock = FakeClock(advance_on_sleep=False)
    feed = await feed_with_orders(clock, orders=2, changes=4)
    inner = MemoryStore()
    await start_from_the_beginning(inner)
    store = FaultyStore(inner)
    s = settings(server_timeout_ms=300)
    workers = Workers(
        store,
        s,
        feed.source(["orders"], batch_size=10, max_await=0.01),
        clock=clock,
        owner="here",
    )
    await workers.start()
    await until(workers.caught_up)
    await until(lambda: all(w.state == RUNNING for w in workers.supervisor.workers))
    await workers.supervisor.publish()  # this instance's records are stored: removed at stop
    # The database goes silent: every lease release, state write and record removal waits.
    silent = asyncio.Event()
    for op in (
        "leases.release",
        "workers.remove",
        "workers.put",
        "read_models.put",
        "read_models.write",
        "checkpoints.put",
    ):
        store.faults.gates[op] = silent
    started = time.monotonic()
    await workers.stop(grace=0.2)
    took = time.monotonic() - started
    # the grace, then one deadline of SERVER_TIMEOUT_MS for all of it (never one per release)
    assert took < 0.2 + 0.3 + 0.4, took
    assert store.faults.calls["leases.release"] >= 1  # capture's, at least, was under way
    assert store.faults.calls["workers.remove"] == 1
    assert {w.state for w in workers.supervisor.workers} == {STOPPED}
    silent.set()
