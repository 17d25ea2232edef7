"""Source-side faults on the wire (issue 11, fault tests 1 and 5), capture under supervision.

A scripted replica-set primary (mockupdb) plays the change stream; the log is
kept in the memory store. The server disappearing for twice the server-selection
timeout is transient: capture resumes from the last stored resume token and the
log equals an uninterrupted run's. An authorization error is fatal: capture ends
`failed` at once, its lease released, while projections and the API keep serving.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from mockupdb import MockupDB, Request
from pymongo import AsyncMongoClient

from api import create_app
from api.metrics import Metrics
from eventstore.capture_worker import CaptureWorker
from eventstore.clock import FakeClock
from eventstore.ingester import Ingester
from eventstore.memory.store import MemoryStore
from eventstore.model import Checkpoint, Event
from eventstore.settings import Settings
from eventstore.sources.mongo import MongoChangeSource
from eventstore.supervisor import Supervisor
from eventstore.worker_state import FAILED, RETRYING, RUNNING, STOPPED
from projections.orders import ORDER_SUMMARY
from projections.runner import ProjectionRunner
from projections.worker import ProjectionWorker
from tests.contract.wire import CURSOR_ID, HELLO, change, stop_quickly, token
from tests.supervision import GatedClock, metric

ROLE = "ingester:shop"
SERVER_TIMEOUT_MS = 200
SETTINGS = Settings(
    uri="mongodb://x", source="mongo", lease_seconds=10, server_timeout_ms=SERVER_TIMEOUT_MS
)


class FlakyPrimary:
    """A primary whose change stream follows a script, and which can vanish for a while.

    Batches: the first `aggregate` gets changes 1-2, `getMore`s get 3, then (when
    `outage` is set) the server hangs up on everything, monitoring included, for
    `outage` seconds and at least two requests; any later `aggregate` gets 4-5
    (without an outage the next `getMore` does), then idle batches.
    """

    def __init__(self, *, outage: float = 0.0, refuse: dict[str, Any] | None = None) -> None:
        self.outage = outage
        self.refuse = refuse
        self.down_until = 0.0
        self.refused = 0
        self.streams: list[dict[str, Any]] = []
        self.getmores = 0
        self._lock = threading.Lock()

    def answer(self, request: Request) -> bool:
        with self._lock:
            name = (request.command_name or "").lower()
            if self.down_until and (time.monotonic() < self.down_until or self.refused < 2):
                # Away: for `outage` seconds and until the driver's own single resume
                # attempt (its monitor re-checks at most every 500 ms) has failed too.
                self.refused += 1
                return bool(request.hangup())
            if name in ("hello", "ismaster"):
                return bool(request.replies(HELLO))
            if name in ("endsessions", "killcursors"):
                return bool(request.replies())
            doc = dict(request.doc)
            if name == "aggregate":
                self.streams.append(dict(doc["pipeline"][0]["$changeStream"]))
                if self.refuse is not None:
                    return bool(request.replies(self.refuse))
                if len(self.streams) == 1:
                    return self._batch(request, [change(1), change(2)], 2, first=True)
                return self._batch(request, [change(4), change(5)], 5, first=True)
            if name == "getmore":
                self.getmores += 1
                if self.getmores == 1:
                    return self._batch(request, [change(3)], 3, first=False)
                if self.getmores == 2 and self.outage:
                    self.down_until = time.monotonic() + self.outage
                    return bool(request.hangup())
                if self.getmores == 2:  # no outage: the same changes on the same stream
                    return self._batch(request, [change(4), change(5)], 5, first=False)
                return self._batch(request, [], 5, first=False)
            return bool(request.replies())

    def _batch(self, request: Request, changes: list[Any], last: int, *, first: bool) -> bool:
        key = "firstBatch" if first else "nextBatch"
        cursor = {
            "id": CURSOR_ID,
            "ns": "shop.$cmd.aggregate",
            key: changes,
            "postBatchResumeToken": token(last),
        }
        return bool(request.replies({"cursor": cursor}))


@pytest.fixture
def servers() -> Iterator[list[MockupDB]]:
    started: list[MockupDB] = []
    yield started
    for server in started:
        stop_quickly(server)


def serve(servers: list[MockupDB], primary: FlakyPrimary) -> MockupDB:
    server = MockupDB(request_timeout=5)
    server.autoresponds(primary.answer)
    server.run()
    servers.append(server)
    return server


async def client_of(server: MockupDB) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(
        server.uri,
        directConnection=True,
        serverSelectionTimeoutMS=SERVER_TIMEOUT_MS,
        heartbeatFrequencyMS=500,
        tz_aware=True,
    )


@pytest.fixture
async def clients() -> AsyncIterator[list[AsyncMongoClient[dict[str, Any]]]]:
    opened: list[AsyncMongoClient[dict[str, Any]]] = []
    yield opened
    for c in opened:
        await c.close()


def capture_of(
    store: MemoryStore,
    client: AsyncMongoClient[dict[str, Any]],
    clock: FakeClock,
    metrics: Metrics | None = None,
    *,
    supervisor_clock: FakeClock | None = None,
) -> tuple[Supervisor, CaptureWorker]:
    """Capture until idle, supervised; `supervisor_clock` (default `clock`) times the back-off.

    The ingester's `clock` stamps `recorded_at`, which the hashes cover: compared runs share it.
    """
    source = MongoChangeSource(client, source_db="shop", collections=["orders"], max_await_ms=10)
    ingester = Ingester(store=store, source=source, settings=SETTINGS, clock=clock, owner="here")
    supervisor = Supervisor(
        clock=supervisor_clock or clock,
        instance="here",
        lease_seconds=10,
        rng_seed=5,
        metrics=metrics,
    )
    worker = CaptureWorker(ingester, follow=False)
    supervisor.add(worker)
    return supervisor, worker


async def streaming_store() -> MemoryStore:
    store = MemoryStore()
    await store.checkpoints.put(Checkpoint(name=ROLE, phase="streaming", token=token(0)))
    return store


def fingerprint(events: list[Event]) -> list[tuple[Any, ...]]:
    return [(e.id, e.seq, e.entity_key, e.version, e.hash, e.prev_hash, e.log_hash) for e in events]


async def captured(
    servers: list[MockupDB],
    clients: list[AsyncMongoClient[dict[str, Any]]],
    primary: FlakyPrimary,
) -> tuple[MemoryStore, Supervisor, list[str]]:
    """Run capture until idle against `primary`; the store, the supervisor, the states seen."""
    client = await client_of(serve(servers, primary))
    clients.append(client)
    store = await streaming_store()
    supervisor, worker = capture_of(store, client, FakeClock(advance_on_sleep=False))
    seen: list[str] = []
    supervisor.on_change = lambda record: seen.append(record.state)
    await supervisor.start()
    await asyncio.wait_for(supervisor.wait(worker.name), 15)
    await supervisor.stop()
    return store, supervisor, seen


async def test_the_server_vanishing_mid_getmore_is_survived_from_the_last_token(
    servers: list[MockupDB], clients: list[AsyncMongoClient[dict[str, Any]]]
) -> None:
    reference, _, _ = await captured(servers, clients, FlakyPrimary())
    outage = 2 * SERVER_TIMEOUT_MS / 1000
    primary = FlakyPrimary(outage=outage)
    client = await client_of(serve(servers, primary))
    clients.append(client)
    store = await streaming_store()
    backoff = GatedClock()
    metrics = Metrics()
    supervisor, worker = capture_of(
        store, client, FakeClock(advance_on_sleep=False), metrics, supervisor_clock=backoff
    )
    seen: list[str] = []
    supervisor.on_change = lambda record: seen.append(record.state)
    app = create_app(
        SETTINGS,
        store=store,
        clock=backoff,
        supervisor=supervisor,
        capture=ROLE,
        caught_up=worker.caught_up,
        metrics=metrics,
    )
    first_backoff = backoff.hold(1)
    started = time.monotonic()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        await supervisor.start()
        # Meanwhile (held in the first back-off), the service says what is happening.
        await asyncio.wait_for(first_backoff.wait(), 10)
        [listed] = (await http.get("/v1/workers")).json()
        assert (listed["state"], listed["restarts"]) == ("retrying", 1)
        assert "cannot reach MongoDB" in listed["last_error"]
        # Not ready only because the first catch-up is not done (not past UNHEALTHY_AFTER).
        r = await http.get("/health/ready")
        assert r.status_code == 503
        assert r.json()["detail"] == "the ingester has not caught up with the source yet"
        page = (await http.get("/metrics")).text
        assert metric(page, "eventstore_worker_state", worker=ROLE, state="retrying") == 1
        assert metric(page, "eventstore_worker_restarts_total", worker=ROLE) == 1
        backoff.release(1)
        await asyncio.wait_for(supervisor.wait(worker.name), 15)
        await supervisor.stop()

    assert time.monotonic() - started >= outage  # it did wait the outage out
    entry = supervisor.get(ROLE)
    assert entry is not None and entry.state == STOPPED and entry.restarts >= 1
    assert RETRYING in seen and FAILED not in seen
    assert entry.last_error is not None and "cannot reach MongoDB" in entry.last_error
    # Every stream opened after the outage resumed after the last stored token (change 3).
    assert primary.streams[0]["resumeAfter"] == token(0)
    assert len(primary.streams) >= 2
    assert all(s["resumeAfter"] == token(3) for s in primary.streams[1:])
    events = await reference.events.read(limit=100)
    assert [e.id for e in events] == [token(n)["_data"] for n in range(1, 6)]
    assert fingerprint(await store.events.read(limit=100)) == fingerprint(events)


async def test_an_authorization_error_on_the_change_stream_fails_capture_only(
    servers: list[MockupDB], clients: list[AsyncMongoClient[dict[str, Any]]]
) -> None:
    refused = {
        "ok": 0,
        "code": 13,
        "codeName": "Unauthorized",
        "errmsg": "not authorized on shop to execute command { aggregate: 1 }",
    }
    primary = FlakyPrimary(refuse=refused)
    client = await client_of(serve(servers, primary))
    clients.append(client)
    # A log captured earlier: the projection has work, the API has something to serve.
    earlier, _, _ = await captured(servers, clients, FlakyPrimary())
    store = await streaming_store()
    await store.events.append(await earlier.events.read(limit=100))
    clock = FakeClock(advance_on_sleep=False)
    metrics = Metrics()
    supervisor, worker = capture_of(store, client, clock, metrics)
    runner = ProjectionRunner(store, ORDER_SUMMARY, clock=clock, lease_seconds=10, owner="here")
    supervisor.add(ProjectionWorker(runner))
    app = create_app(
        SETTINGS,
        store=store,
        clock=clock,
        supervisor=supervisor,
        capture=worker.name,
        caught_up=worker.caught_up,
        metrics=metrics,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        await supervisor.start()
        await asyncio.wait_for(supervisor.wait(ROLE), 10)
        for _ in range(500):  # the projection catches up meanwhile
            if runner.status.position == 5:
                break
            await asyncio.sleep(0.01)

        entry = supervisor.get(ROLE)
        assert entry is not None and entry.state == FAILED and entry.restarts == 0
        assert len(primary.streams) == 1  # not retried
        assert entry.last_error == (
            "MongoDB refused the change stream (code 13): "
            "not authorized on shop to execute command { aggregate: 1 }"
        )
        assert await store.leases.get(ROLE) is None  # released for a standby
        projection = supervisor.get("projection:order_summary")
        assert projection is not None and projection.state == RUNNING
        assert runner.status.position == 5

        r = await http.get("/health/ready")
        assert r.status_code == 503
        assert r.json()["detail"] == f"{ROLE} failed: {entry.last_error}"
        assert (await http.get("/health/live")).status_code == 200
        r = await http.get("/v1/events")
        assert r.status_code == 200 and len(r.json()["events"]) == 5
        states = {w["name"]: w["state"] for w in (await http.get("/v1/workers")).json()}
        assert states == {ROLE: "failed", "projection:order_summary": "running"}
        page = (await http.get("/metrics")).text
        assert metric(page, "eventstore_worker_state", worker=ROLE, state="failed") == 1
        assert metric(page, "eventstore_worker_restarts_total", worker=ROLE) == 0
        projection_state = {"worker": "projection:order_summary", "state": "running"}
        assert metric(page, "eventstore_worker_state", **projection_state) == 1
        r = await http.get("/v1/projections/order_summary")
        assert r.status_code == 200
        await supervisor.stop()
