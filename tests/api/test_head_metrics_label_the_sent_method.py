"""`/metrics` labels a HEAD request `method="HEAD"`, whatever its answer.

The methods layer runs a HEAD as a bodiless GET (the scope's method is GET while
Litestar answers it), so the label is the method as the client sent it, taken
before anything runs: 200, 400, 401 (before any key is checked), 405, an
unmatched 404 and a 499 alike, in the counter and the latency histogram. The
access log line says HEAD too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Final

import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from api import create_app
from api.app import EventStoreApp
from tests.api.conftest import READ_KEY, AuditLog, settings
from tests.api.test_api_disconnect import counted, leaves_when, scope

REQUESTS: Final = "eventstore_http_requests_total"
LATENCY: Final = "eventstore_http_request_duration_seconds_count"
REBUILD: Final = "/v1/admin/projections/order_summary/rebuild"
REBUILD_ROUTE: Final = "/v1/admin/projections/{name}/rebuild"
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _series(text: str) -> Series:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name in (REQUESTS, LATENCY)
    }


def _requests(found: Series) -> dict[tuple[str, str, str], float]:
    """(method, route, status) -> requests, the scrapes of /metrics left out."""
    out = {}
    for (name, labels), value in found.items():
        got = dict(labels)
        if name == REQUESTS and got["route"] != "/metrics":
            out[(got["method"], got["route"], got["status"])] = value
    return out


def _latency(found: Series) -> dict[tuple[str, str], float]:
    """(method, route) -> observations of the latency histogram, /metrics left out."""
    out = {}
    for (name, labels), value in found.items():
        got = dict(labels)
        if name == LATENCY and got["route"] != "/metrics":
            out[(got["method"], got["route"])] = value
    return out


async def test_head_requests_are_counted_as_head_for_every_answer(audit_log: AuditLog) -> None:
    app = create_app(settings(read_keys=(READ_KEY,)), store=audit_log.store)
    key = {"Authorization": f"Bearer {READ_KEY}"}
    async with AsyncTestClient(app) as c:
        ok = await c.head("/v1/workers", headers=key)
        assert (ok.status_code, ok.content) == (200, b"")
        ok = await c.head("/v1/streams", headers=key)
        assert ok.status_code == 200
        bad = await c.head("/v1/events", params={"limit": "0"}, headers=key)
        assert bad.status_code == 400
        assert bad.headers["content-type"] == "application/problem+json"
        keyless = await c.head("/v1/workers")
        assert keyless.status_code == 401
        assert keyless.headers["www-authenticate"].startswith("Bearer")
        refused = await c.head(REBUILD)
        assert refused.status_code == 405
        assert refused.headers["allow"] == "POST, OPTIONS"
        unknown = await c.head("/v1/no/such/thing")
        assert unknown.status_code == 404
        assert unknown.headers["content-type"] == "application/problem+json"
        got = await c.get("/v1/streams", headers=key)  # a GET stays a GET
        assert got.status_code == 200
        scrape = await c.get("/metrics")
    assert scrape.status_code == 200
    found = _series(scrape.text)
    assert _requests(found) == {
        ("HEAD", "/v1/workers", "200"): 1,
        ("HEAD", "/v1/streams", "200"): 1,
        ("HEAD", "/v1/events", "400"): 1,
        ("HEAD", "/v1/workers", "401"): 1,
        ("HEAD", REBUILD_ROUTE, "405"): 1,
        ("HEAD", "unmatched", "404"): 1,
        ("GET", "/v1/streams", "200"): 1,
    }
    assert _latency(found) == {
        ("HEAD", "/v1/workers"): 2,
        ("HEAD", "/v1/streams"): 1,
        ("HEAD", "/v1/events"): 1,
        ("HEAD", REBUILD_ROUTE): 1,
        ("HEAD", "unmatched"): 1,
        ("GET", "/v1/streams"): 1,
    }


async def test_a_head_whose_client_leaves_after_the_headers_is_a_head_499(
    audit_log: AuditLog, caplog: pytest.LogCaptureFixture
) -> None:
    """The client hangs up once the status line is sent: its (empty) end is dropped."""
    caplog.set_level(logging.INFO, logger="eventstore.access")
    app = create_app(settings(), store=audit_log.store)
    left = asyncio.Event()
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.start":
            left.set()
            await asyncio.sleep(0)  # the watch sees the disconnect before the body is sent

    await app(scope("HEAD", "/health/live"), leaves_when(left), send)
    assert [m["type"] for m in sent] == ["http.response.start"]
    assert counted(app) == {("HEAD", "/health/live", 499): 1}
    _the_log_says_head(app, caplog, 499)


async def test_a_head_whose_client_leaves_while_it_runs_is_a_head_499(
    audit_log: AuditLog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="eventstore.access")
    app = create_app(settings(), store=audit_log.store)
    left = asyncio.Event()
    store = audit_log.store
    real = store.events.streams

    async def streams() -> Any:
        left.set()  # the client hangs up while the handler reads the log
        await asyncio.sleep(0.01)
        return await real()

    store.events.streams = streams  # type: ignore[method-assign]
    try:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope("HEAD", "/v1/streams"), leaves_when(left), send)
    finally:
        del store.events.streams
    assert sent == []
    assert counted(app) == {("HEAD", "/v1/streams", 499): 1}
    _the_log_says_head(app, caplog, 499)


def _the_log_says_head(app: EventStoreApp, caplog: pytest.LogCaptureFixture, status: int) -> None:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "eventstore.access"]
    assert [(line["method"], line["status"]) for line in lines] == [("HEAD", status)]
    latency = {
        (s.labels["method"], s.labels["route"]): s.value
        for family in app.services.metrics.latency.collect()
        for s in family.samples
        if s.name == LATENCY
    }
    assert set(latency) == {("HEAD", lines[0]["route"])}
    assert latency[("HEAD", lines[0]["route"])] == 1
