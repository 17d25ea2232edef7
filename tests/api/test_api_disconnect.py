"""A client that disconnects before its answer: logged and counted as 499, never a 500.

The ASGI app is driven directly, with a `receive` that reports `http.disconnect`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Final

import pytest

from api import create_app
from api.app import EventStoreApp
from tests.api.conftest import ADMIN_KEY, AuditLog, build_log, settings

Receive = Callable[[], Awaitable[dict[str, Any]]]
STREAMS: Final = "/v1/streams"


def scope(method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers or [],
        "client": ("127.0.0.1", 5555),
        "server": ("test", 80),
        "state": {},
    }


async def call(app: EventStoreApp, s: Any, receive: Receive) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(s, receive, send)
    return sent


async def gone() -> dict[str, Any]:
    return {"type": "http.disconnect"}


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="eventstore.access")  # errors of eventstore.api too
    return caplog


def counted(app: EventStoreApp) -> dict[tuple[str, str, int], float]:
    """The app's request counter: (method, route, status) -> requests."""
    return {
        (x.labels["method"], x.labels["route"], int(x.labels["status"])): x.value
        for family in app.services.metrics.requests.collect()
        for x in family.samples
        if x.name == "eventstore_http_requests_total"
    }


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "eventstore.access"]


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_client_gone_before_the_request_runs_is_499(
    audit_log: AuditLog, access: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings(), store=audit_log.store)
    sent = await call(app, scope("GET", STREAMS), gone)
    assert sent == []  # nobody to answer
    assert counted(app) == {("GET", "unmatched", 499): 1}
    assert [(line["path"], line["status"]) for line in lines(access)] == [(STREAMS, 499)]
    assert errors(access) == []


async def test_a_client_gone_while_its_query_runs_is_499(
    audit_log: AuditLog, access: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings(), store=audit_log.store)
    left = asyncio.Event()
    store = audit_log.store
    real = store.events.head

    async def head() -> Any:
        left.set()  # the client hangs up while the handler reads the log
        await asyncio.sleep(0.01)
        return await real()

    arrived = False

    async def receive() -> dict[str, Any]:
        nonlocal arrived
        if not arrived:
            arrived = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await left.wait()
        return {"type": "http.disconnect"}

    store.events.head = head  # type: ignore[method-assign]
    try:
        sent = await call(app, scope("GET", "/v1/events/live"), receive)
    finally:
        del store.events.head
    assert sent == []
    assert counted(app) == {("GET", "/v1/events/live", 499): 1}
    assert [line["status"] for line in lines(access)] == [499]
    assert errors(access) == []


async def test_a_post_whose_client_leaves_mid_body_is_499_not_500(
    access: pytest.LogCaptureFixture,
) -> None:
    log = await build_log("memory", orders=2, changes=2)
    app = create_app(settings(admin_key=ADMIN_KEY), store=log.store)
    parts: Iterator[dict[str, Any]] = iter(
        [
            {"type": "http.request", "body": b"{", "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    first_part = asyncio.Event()

    async def receive() -> dict[str, Any]:
        message = next(parts)
        if message["type"] == "http.disconnect":
            await first_part.wait()
        else:
            first_part.set()
        return message

    headers = [(b"authorization", f"Bearer {ADMIN_KEY}".encode()), (b"content-length", b"10")]
    path = "/v1/admin/projections/order_summary/rebuild"
    await call(app, scope("POST", path, headers), receive)
    statuses = {k[2] for k in counted(app)}
    assert statuses == {499}, statuses  # seen before the handler ran: no rebuild was queued
    assert await log.store.jobs.active("order_summary") is None
    assert not any(line["status"] >= 500 for line in lines(access))
    assert errors(access) == []


async def test_a_client_that_stays_gets_its_answer(audit_log: AuditLog) -> None:
    """The read-ahead is invisible to a client that waits: the answer is sent and counted."""
    app = create_app(settings(), store=audit_log.store)
    done = asyncio.Event()
    arrived = False

    async def receive() -> dict[str, Any]:
        nonlocal arrived
        if not arrived:
            arrived = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    sent = await call(app, scope("GET", STREAMS), receive)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert b'"stream":"orders"' in b"".join(m.get("body", b"") for m in sent[1:])
    assert counted(app) == {("GET", STREAMS, 200): 1}
