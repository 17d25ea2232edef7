"""A client that disconnects before its answer: logged and counted as 499, never a 500.

The ASGI app is driven directly, with a `receive` that reports `http.disconnect`
(tests/e2e/test_client_gone.py does it through a real server). A read whose client
leaves is cancelled, a stream included; a change runs to its end.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Final

import pytest

import eventstore.history
from api import create_app
from api.app import EventStoreApp
from api.routes import events as event_routes
from eventstore.memory.store import MemoryStore
from tests.api.conftest import ADMIN_KEY, AuditLog, build_log, settings
from tests.helpers import LogBuilder
from tests.realsinks import SECRET

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


async def long_log(events: int) -> MemoryStore:
    """A memory store (whose reads never wait) holding a valid log of `events` events."""
    store = MemoryStore()
    log = LogBuilder()
    await store.events.append([log.next(i % 50) for i in range(events)])
    return store


def leaves_when(left: asyncio.Event) -> Receive:
    """A client that sent its request and disconnects once `left` is set."""
    arrived = False

    async def receive() -> dict[str, Any]:
        nonlocal arrived
        if not arrived:
            arrived = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await left.wait()
        return {"type": "http.disconnect"}

    return receive


async def test_a_client_gone_mid_export_stops_the_stream_and_is_499(
    monkeypatch: pytest.MonkeyPatch, access: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(event_routes, "EXPORT_PAGE", 50)
    store = await long_log(1000)  # 20 pages
    app = create_app(settings(), store=store)
    queried = 0
    real = store.events.query

    async def query(*args: Any, **kwargs: Any) -> Any:
        nonlocal queried
        queried += 1
        return await real(*args, **kwargs)

    store.events.query = query  # type: ignore[method-assign]
    left = asyncio.Event()
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message.get("body"):
            left.set()  # the client reads the first part and hangs up

    await app(scope("GET", "/v1/events", [(b"accept", b"text/csv")]), leaves_when(left), send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    parts = sent[1:]
    assert parts[0]["body"].startswith(b"seq,")
    # The stream stopped within a few parts of the client's leaving: no more read, none sent.
    assert 1 <= len(parts) <= 8 and all(m["more_body"] for m in parts), len(parts)
    assert queried <= 8, queried
    assert counted(app) == {("GET", "/v1/events", 499): 1}
    assert [line["status"] for line in lines(access)] == [499]
    assert errors(access) == []


async def test_a_client_gone_while_verify_runs_cancels_it_and_is_499(
    monkeypatch: pytest.MonkeyPatch, access: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(eventstore.history, "_PAGE", 50)
    store = await long_log(1000)  # 20 pages
    app = create_app(settings(), store=store)
    pages = 0
    left = asyncio.Event()
    real = store.events.read

    async def read(**kwargs: Any) -> Any:
        nonlocal pages
        pages += 1
        left.set()  # the client hangs up while the log is read
        return await real(**kwargs)

    store.events.read = read  # type: ignore[method-assign]
    sent = await call(app, scope("GET", "/v1/verify"), leaves_when(left))
    assert sent == []
    assert pages <= 8, pages  # cancelled: the rest of the log was never read
    assert counted(app) == {("GET", "/v1/verify", 499): 1}
    assert [line["status"] for line in lines(access)] == [499]
    assert errors(access) == []


async def test_a_client_gone_while_an_entity_verify_runs_cancels_it_and_is_499(
    monkeypatch: pytest.MonkeyPatch, access: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(eventstore.history, "_PAGE", 50)
    store = MemoryStore()
    log = LogBuilder()
    await store.events.append([log.next("hot") for _ in range(1000)])  # 20 pages of one entity
    app = create_app(settings(), store=store)
    pages = 0
    left = asyncio.Event()
    real = store.events.read_entity

    async def read_entity(*args: Any, **kwargs: Any) -> Any:
        nonlocal pages
        pages += 1
        left.set()  # the client hangs up while the entity is read
        return await real(*args, **kwargs)

    store.events.read_entity = read_entity  # type: ignore[method-assign]
    path = "/v1/streams/orders/entities/hot/verify"
    sent = await call(app, scope("GET", path), leaves_when(left))
    assert sent == []
    assert pages <= 8, pages  # cancelled: the rest of the entity was never read
    assert counted(app) == {("GET", "/v1/streams/{stream}/entities/{key}/verify", 499): 1}
    assert [line["status"] for line in lines(access)] == [499]
    assert errors(access) == []


async def test_a_change_whose_client_leaves_runs_to_its_end_and_is_499(
    access: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore()
    app = create_app(settings(admin_key=ADMIN_KEY), store=store)
    left = asyncio.Event()
    real = store.subscriptions.create

    async def create(record: Any) -> bool:
        left.set()  # the client hangs up while the subscription is stored
        await asyncio.sleep(0.01)
        return await real(record)

    store.subscriptions.create = create  # type: ignore[method-assign]
    body = json.dumps({"sink": {"kind": "webhook", "url": "https://h.test/x", "secret": SECRET}})
    arrived = False

    async def receive() -> dict[str, Any]:
        nonlocal arrived
        if not arrived:
            arrived = True
            return {"type": "http.request", "body": body.encode(), "more_body": False}
        await left.wait()
        return {"type": "http.disconnect"}

    headers = [
        (b"authorization", f"Bearer {ADMIN_KEY}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    sent = await call(app, scope("PUT", "/v1/admin/subscriptions/kept", headers), receive)
    assert sent == []
    # Not cancelled half way: the subscription is stored and its creation in the trail.
    assert await store.subscriptions.get("kept") is not None
    actions = await store.admin_actions.page(limit=10)
    assert [(a.action, a.target) for a in actions] == [("create", "kept")]
    assert counted(app) == {("PUT", "/v1/admin/subscriptions/{name}", 499): 1}
    assert errors(access) == []
