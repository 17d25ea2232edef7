"""Readiness, metrics, workers, projections and the live tail while the database misbehaves.

The store is the memory store behind `OutageStore`: once the test breaks it, its reads
fail as an unreachable MongoDB's do (a `ServerSelectionTimeoutError` after a server
selection's wait) or stall (a database that completed the handshake and never answers).
Every answer must come within about SERVER_TIMEOUT_MS, whatever the database does.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from pymongo.errors import OperationFailure, ServerSelectionTimeoutError

from api import create_app
from api.metrics import Metrics
from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.supervisor import Progress, Supervisor, WorkerContext
from eventstore.worker_state import RUNNING
from tests.api.conftest import build_log, settings
from tests.api.test_api_live import parse_sse
from tests.supervision import metric

TIMEOUT_MS = 300
# A stalled read gives up long after any answer is due (then fails, so nothing hangs).
STALL_SECONDS = 2.5
# An answer "within about one timeout": one timeout and some slack, well under two.
WITHIN = TIMEOUT_MS / 1000 * 1.8


@dataclass
class Outage:
    """What the store's reads do: answer (`mode` None), `fail` after `delay`, or `stall`.

    `only`: the methods affected (None: every one); `after`: calls let through first.
    """

    mode: str | None = None
    delay: float = TIMEOUT_MS / 1000
    only: frozenset[str] | None = None
    after: int = 0
    calls: int = 0

    async def meet(self, name: str) -> None:
        """Fail or stall this call, when the outage covers it."""
        if self.mode is None or (self.only is not None and name not in self.only):
            return
        self.calls += 1
        if self.calls <= self.after:
            return
        if self.mode == "refuse":  # the credentials refused, as mongod does (code 18)
            raise OperationFailure("Authentication failed.", code=18)
        await asyncio.sleep(STALL_SECONDS if self.mode == "stall" else self.delay)
        raise ServerSelectionTimeoutError("127.0.0.1:27017: timed out")


class OutagePort:
    """One port of the memory store whose coroutine methods meet the outage first."""

    def __init__(self, port: Any, outage: Outage) -> None:
        self._port = port
        self._outage = outage

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._port, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            await self._outage.meet(name)
            return await attr(*args, **kwargs)

        return call


class OutageStore:
    """The memory store, its ports behind the outage (`close` and capabilities untouched)."""

    def __init__(self, store: MemoryStore, outage: Outage) -> None:
        self._store = store
        self.outage = outage
        for name in (
            "events",
            "checkpoints",
            "leases",
            "snapshots",
            "read_models",
            "jobs",
            "merkle",
            "erasures",
            "workers",
            "subscriptions",
            "deliveries",
            "admin_actions",
        ):
            setattr(self, name, OutagePort(getattr(store, name), outage))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class ProbingWorker:
    """A running worker whose progress is read from the store, as a projection's is."""

    kind = "projection"

    def __init__(self, name: str, store: Any) -> None:
        self.name = name
        self.store = store

    async def run(self, ctx: WorkerContext) -> None:
        ctx.report(RUNNING)
        ctx.healthy()
        await ctx.stop.wait()

    async def progress(self) -> Progress:
        head = await self.store.events.head()
        return Progress(position=head.seq, lag=0)

    async def close(self) -> None:
        pass


def app_over(store: OutageStore, *, probes: int = 3) -> Any:
    """An app over the store, with `probes` workers whose progress reads it."""
    metrics = Metrics()
    sup = Supervisor(clock=FakeClock(), instance="here:1", lease_seconds=10, metrics=metrics)
    for n in range(probes):
        sup.add(ProbingWorker(f"projection:p{n}", store))
    app = create_app(
        settings(server_timeout_ms=TIMEOUT_MS),
        store=store,
        supervisor=sup,
        capture=None,
        metrics=metrics,
    )

    async def start() -> None:
        await sup.start()

    async def stop() -> None:
        await sup.stop(0.1)

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    return app


async def timed(client: AsyncTestClient[Any], path: str) -> tuple[Any, float]:
    started = time.monotonic()
    r = await client.get(path)
    return r, time.monotonic() - started


@pytest.mark.parametrize("mode", ["fail", "stall"])
async def test_readiness_is_a_503_within_one_timeout_when_the_database_fails_or_stalls(
    mode: str,
) -> None:
    store = OutageStore(MemoryStore(), Outage())
    async with AsyncTestClient(app_over(store)) as client:
        assert (await client.get("/health/ready")).status_code == 200
        store.outage.mode = mode
        r, took = await timed(client, "/health/ready")
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("/not-ready")
    assert r.json()["detail"].startswith("the database does not answer")
    assert took < WITHIN, took


@pytest.mark.parametrize("mode", ["fail", "stall"])
async def test_metrics_while_the_database_fails_or_stalls_are_the_process_series_and_up_0(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = OutageStore(MemoryStore(), Outage())
    async with AsyncTestClient(app_over(store)) as client:
        r = await client.get("/metrics")
        assert metric(r.text, "eventstore_up") == 1
        store.outage.mode = mode
        with caplog.at_level(logging.WARNING, logger="eventstore.api"):
            r, took = await timed(client, "/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    assert metric(r.text, "eventstore_up") == 0
    assert metric(r.text, "eventstore_events_total") is None  # no database figures
    # the process's own series are all there
    assert metric(r.text, "eventstore_worker_state", worker="projection:p0", state="running") == 1
    assert (
        metric(
            r.text, "eventstore_http_requests_total", method="GET", route="/metrics", status="200"
        )
        == 1
    )
    assert took < WITHIN, took
    said = [rec.getMessage() for rec in caplog.records if rec.getMessage().startswith("/metrics")]
    assert len(said) == 1 and said[0].endswith("eventstore_up 0"), said


@pytest.mark.parametrize("mode", ["fail", "stall"])
async def test_workers_while_the_database_fails_or_stalls_is_a_503_within_one_timeout(
    mode: str,
) -> None:
    store = OutageStore(MemoryStore(), Outage())
    async with AsyncTestClient(app_over(store)) as client:
        r = await client.get("/v1/workers")
        assert r.status_code == 200 and len(r.json()) == 3
        store.outage.mode = mode
        r, took = await timed(client, "/v1/workers")
    # every instance's workers cannot be read: never this one's alone as if it were all
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("/unavailable")
    assert took < WITHIN, took


async def test_projections_while_the_database_fails_answer_503_within_one_timeout() -> None:
    store = OutageStore(MemoryStore(), Outage())
    async with AsyncTestClient(app_over(store)) as client:
        assert (await client.get("/v1/projections")).status_code == 200
        store.outage.mode = "fail"
        r, took = await timed(client, "/v1/projections")
    assert r.status_code == 503, r.text
    assert r.json()["type"].endswith("/unavailable")
    assert took < WITHIN, took


@pytest.mark.parametrize(
    "outage",
    [
        Outage(mode="fail", delay=0.0, only=frozenset({"wait_for_append"})),
        # the tail's own reads: the second round of head() never answers
        Outage(mode="stall", only=frozenset({"head"}), after=2),
    ],
    ids=["fails", "stalls"],
)
async def test_a_live_tail_ends_cleanly_when_the_database_goes_away(
    outage: Outage, caplog: pytest.LogCaptureFixture
) -> None:
    log = await build_log("memory", orders=2, changes=2)
    store = OutageStore(log.store, Outage())  # type: ignore[arg-type]
    async with AsyncTestClient(app_over(store, probes=0)) as client:
        store.outage = outage
        for port in vars(store).values():
            if isinstance(port, OutagePort):
                port._outage = outage
        with caplog.at_level(logging.WARNING, logger="eventstore.api"):
            started = time.monotonic()
            r = await client.get("/v1/events/live?after=0")
            took = time.monotonic() - started
    assert r.status_code == 200
    frames = parse_sse(r.text)
    # every event up to the outage, then a comment saying why the stream ends
    assert [f.id for f in frames if f.is_event] == [str(e.seq) for e in log.events]
    last = frames[-1]
    assert last.comments == ["the database is unavailable; reconnect shortly"]
    assert last.fields == ["retry"]  # an EventSource reconnects, after 5 s
    assert "retry: 5000" in r.text
    said = [rec for rec in caplog.records if "live tail" in rec.getMessage()]
    assert [rec.levelno for rec in said] == [logging.WARNING]
    assert said[0].getMessage().startswith("live tail ended: the database is unavailable")
    assert said[0].exc_info is None
    assert took < WITHIN + 0.5, took


async def test_a_live_tail_over_a_sound_database_still_follows() -> None:
    """Bounding the tail's reads does not cut a tail whose database answers."""
    log = await build_log("memory", orders=2, changes=2)
    store = OutageStore(log.store, Outage())  # type: ignore[arg-type]
    async with AsyncTestClient(app_over(store, probes=0)) as client:
        r = await client.get("/v1/events/live?after=0&timeout=0.5")
    assert r.status_code == 200
    frames = parse_sse(r.text)
    assert [f.id for f in frames if f.is_event] == [str(e.seq) for e in log.events]
    assert not any(f.comments for f in frames)


async def test_readiness_says_the_credentials_were_refused_not_that_the_database_is_silent() -> (
    None
):
    # It said "the database does not answer (OperationFailure)": it answered, and refused.
    store = OutageStore(MemoryStore(), Outage())
    async with AsyncTestClient(app_over(store, probes=0)) as client:
        store.outage.mode = "refuse"
        r = await client.get("/health/ready")
    assert r.status_code == 503
    assert r.json()["detail"].startswith(
        "MongoDB refused the credentials (authentication failed): check the user name and password"
    )
