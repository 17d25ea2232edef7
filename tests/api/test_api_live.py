"""GET /v1/events/live: Server-Sent Events over bounded connections (`limit`, `timeout`).

The SSE wire format is parsed here (per the HTML living standard's event stream
interpretation), not by a library, so framing mistakes show up.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from eventstore.model import Event
from eventstore.ports import Store
from tests.api.conftest import AppFactory, AuditLog, build_log
from tests.integration.ingest_helpers import all_events, ingester

LINE = re.compile(r"\r\n|\r|\n")


@dataclass
class Frame:
    """One dispatched SSE event, or a run of comment lines (a heartbeat)."""

    id: str | None = None
    event: str | None = None
    data: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)

    @property
    def is_event(self) -> bool:
        return bool(self.data)

    def json(self) -> Any:
        return json.loads("\n".join(self.data))


def parse_sse(text: str) -> list[Frame]:
    """Frames as a browser's EventSource sees them; comment-only blocks kept as frames too."""
    frames: list[Frame] = []
    current = Frame()
    lines = LINE.split(text)
    if lines and lines[-1] == "":
        lines.pop()  # the final line terminator
    for line in lines:
        if line == "":
            if current.fields or current.comments:
                frames.append(current)
            current = Frame()
            continue
        if line.startswith(":"):
            current.comments.append(line[1:].removeprefix(" "))
            continue
        name, sep, value = line.partition(":")
        value = value.removeprefix(" ") if sep else ""
        current.fields.append(name)
        if name == "id":
            current.id = value
        elif name == "event":
            current.event = value
        elif name == "data":
            current.data.append(value)
    assert not current.fields, f"an unterminated frame at the end: {current}"
    if current.comments:
        frames.append(current)
    return frames


def events_of(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if f.is_event]


async def sse(
    client: AsyncTestClient[Any], query: str = "", headers: dict[str, str] | None = None
) -> list[Frame]:
    r = await client.get(f"/v1/events/live{query}", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    return parse_sse(r.text)


def assert_frames_are(frames: list[Frame], events: list[Event]) -> None:
    """`id` = seq, `event` = type, `data` = the event JSON."""
    assert [f.id for f in frames] == [str(e.seq) for e in events]
    assert [f.event for f in frames] == [e.type for e in events]
    for f, e in zip(frames, events, strict=True):
        data = f.json()
        assert (data["seq"], data["id"], data["entity_key"], data["version"], data["type"]) == (
            e.seq,
            e.id,
            e.entity_key,
            e.version,
            e.type,
        )
        assert data["log_hash"] == e.log_hash


async def test_bounded_by_limit_from_the_start(
    client: AsyncTestClient[Any], audit_log: AuditLog
) -> None:
    frames = await sse(client, "?after=0&limit=5")
    assert not [f for f in frames if not f.is_event]
    assert_frames_are(frames, audit_log.events[:5])
    # data is exactly the event JSON the query endpoint serves
    page = (await client.get("/v1/events", params={"limit": 5})).json()["events"]
    assert [f.json() for f in frames] == page


async def test_after_resumes(client: AsyncTestClient[Any], audit_log: AuditLog) -> None:
    frames = events_of(await sse(client, "?after=240&limit=3"))
    assert_frames_are(frames, audit_log.events[240:243])


async def test_last_event_id_resumes(client: AsyncTestClient[Any], audit_log: AuditLog) -> None:
    x = audit_log.of("ORD-X")
    frames = events_of(await sse(client, "?limit=2", headers={"last-event-id": str(x[0].seq)}))
    assert_frames_are(frames, x[1:3])
    # An EventSource reconnects to the URL it started with, sending the newest id it saw:
    # it resumes after that id, and never replays what it had (the later of the two wins).
    frames = events_of(await sse(client, "?after=10&limit=1", headers={"last-event-id": "200"}))
    assert_frames_are(frames, audit_log.events[200:201])
    frames = events_of(await sse(client, "?after=10&limit=1", headers={"last-event-id": "4"}))
    assert_frames_are(frames, audit_log.events[10:11])
    # An empty id is none (the SSE spec's reset): `after`, else the head.
    frames = events_of(await sse(client, "?after=7&limit=1", headers={"last-event-id": ""}))
    assert_frames_are(frames, audit_log.events[7:8])


async def test_the_tail_ends_at_its_timeout(
    client: AsyncTestClient[Any], audit_log: AuditLog
) -> None:
    head = audit_log.events[-1].seq
    started = time.monotonic()
    frames = await sse(client, "?timeout=0.2")  # from the head: nothing new
    assert events_of(frames) == []
    assert 0.15 < time.monotonic() - started < 5
    # events before the timeout are all delivered, then it closes
    frames = await sse(client, f"?after={head - 3}&timeout=0.2")
    assert_frames_are(events_of(frames), audit_log.events[-3:])
    # a limit larger than what exists: the timeout still ends the connection
    frames = await sse(client, f"?after={head - 2}&limit=50&timeout=0.1")
    assert len(events_of(frames)) == 2


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("?after=-1&limit=1", {}),
        ("?limit=0", {}),
        ("?timeout=0", {}),
        ("?timeout=soon", {}),
        ("?aftr=3&limit=1", {}),
        ("?limit=1", {"last-event-id": "abc"}),
        ("?limit=1", {"last-event-id": "-5"}),
        ("?limit=1", {"last-event-id": str(2**62 + 1)}),  # past what MongoDB can compare
        ("?limit=1", {"last-event-id": "9" * 40}),
        ("?limit=1", {"last-event-id": "\u0663".encode()}),  # ARABIC-INDIC DIGIT THREE
        ("?after=" + str(2**62 + 1) + "&limit=1", {}),
        ("?stream=&timeout=0.1", {}),
    ],
)
async def test_bad_parameters_are_problems(
    client: AsyncTestClient[Any], query: str, headers: dict[str, str | bytes]
) -> None:
    raw = {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in headers.items()}
    r = await client.get(f"/v1/events/live{query}", headers=raw)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_heartbeat_is_a_comment_while_idle(audit_log: AuditLog, make_app: AppFactory) -> None:
    app = make_app(audit_log.store)
    app.services.heartbeat_seconds = 0.05  # type: ignore[attr-defined]
    async with AsyncTestClient(app) as client:
        r = await client.get("/v1/events/live?timeout=0.4")
    frames = parse_sse(r.text)
    assert len(frames) >= 2, r.text
    for f in frames:
        # a pure comment: no `data` line, so EventSource dispatches nothing for it
        assert f.fields == [], r.text
        assert f.comments


async def test_a_filtered_tail_gets_heartbeats_while_other_streams_are_busy(
    make_app: AppFactory,
) -> None:
    async def test(log: AuditLog, client: AsyncTestClient[Any]) -> None:
        orders = log.feed.collection("orders")

        async def write() -> None:  # an orders change every 20 ms, the tail's whole time
            loop = asyncio.get_running_loop()
            end, n = loop.time() + 0.8, 0
            while loop.time() < end:
                await orders.update_one({"_id": "ORD-X"}, {"$set": {"n": n}})
                await ingester(log.store, log.feed, log.clock).run(until_idle=True)
                await asyncio.sleep(0.02)
                n += 1

        writer = WriteWhileWaiting(log.store, write)
        client.app.services.heartbeat_seconds = 0.1
        # eight heartbeats due: a loaded machine that delays the tail still sees two
        r = await client.get("/v1/events/live?stream=customers&timeout=0.8")
        await writer.finished()
        frames = parse_sse(r.text)
        assert events_of(frames) == []
        assert len(frames) >= 2, r.text  # quiet for this tail, however busy the log
        assert all(f.comments and not f.fields for f in frames)

    # `customers` is captured, with nothing in it yet: a known stream, quiet
    await _with_fresh_log(test, make_app, collections=("orders", "customers"))


async def _with_fresh_log(
    test: Callable[[AuditLog, AsyncTestClient[Any]], Awaitable[None]],
    make_app: AppFactory,
    **kw: Any,
) -> None:
    log = await build_log("memory", orders=3, changes=5)
    try:
        async with AsyncTestClient(make_app(log.store, **kw)) as client:
            await test(log, client)
    finally:
        await log.store.close()


class WriteWhileWaiting:
    """Runs `write` in the app's event loop once the tail first waits for an append.

    Litestar's test client runs the app on a portal thread with its own loop and
    blocks the caller until the response is complete, so the writes must start
    from inside the app's loop, while the connection is open.
    """

    def __init__(self, store: Store, write: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.task: asyncio.Task[None] | None = None
        self.waited_before_writing = False
        original = store.events.wait_for_append

        async def spy(after_seq: int, timeout: float) -> bool:  # noqa: ASYNC109
            if self.task is None:
                self.waited_before_writing = True
                self.task = asyncio.get_running_loop().create_task(write())
            return await original(after_seq, timeout)

        store.events.wait_for_append = spy  # type: ignore[method-assign]

    async def finished(self) -> None:
        """Wait (from the test's loop) until the writes are done; re-raise their failure."""
        for _ in range(500):
            if self.task is not None and self.task.done():
                if self.task.exception() is not None:
                    raise AssertionError("the writes failed") from self.task.exception()
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the writes never finished")


async def test_events_appended_while_connected_arrive(make_app: AppFactory) -> None:
    async def test(log: AuditLog, client: AsyncTestClient[Any]) -> None:
        head = log.events[-1].seq
        coll = log.feed.collection("orders")

        async def write() -> None:
            await coll.update_one({"_id": "ORD-X"}, {"$set": {"status": "delivered"}})
            await ingester(log.store, log.feed, log.clock).run(until_idle=True)
            await asyncio.sleep(0.02)  # a second append, after the tail has sent the first
            await coll.insert_one({"_id": "late", "status": "pending", "updatedBy": "zoe"})
            await coll.delete_one({"_id": "late"})
            await ingester(log.store, log.feed, log.clock).run(until_idle=True)

        writer = WriteWhileWaiting(log.store, write)
        started = time.monotonic()
        r = await client.get(f"/v1/events/live?after={head}&limit=3&timeout=5")
        assert time.monotonic() - started < 4  # woken by the appends, not ended by the timeout
        await writer.finished()
        assert writer.waited_before_writing
        new = (await all_events(log.store))[head:]
        assert [e.type for e in new] == ["updated", "created", "deleted"]
        frames = events_of(parse_sse(r.text))
        assert_frames_are(frames, new)
        assert frames[0].json()["changes"]["updatedFields"] == {"status": "delivered"}

    await _with_fresh_log(test, make_app)


async def test_the_stream_filter(make_app: AppFactory) -> None:
    async def test(log: AuditLog, client: AsyncTestClient[Any]) -> None:
        head = log.events[-1].seq
        customers = log.feed.collection("customers")
        orders = log.feed.collection("orders")
        both = ("orders", "customers")
        await customers.insert_one({"_id": "C-1", "name": "Ann", "updatedBy": "ann"})
        await orders.update_one({"_id": "ORD-X"}, {"$set": {"status": "delivered"}})
        await ingester(log.store, log.feed, log.clock, collections=both).run(until_idle=True)
        middle = (await log.store.events.head()).seq

        async def write() -> None:  # while a tail of `customers` waits: orders, then customers
            await orders.update_one({"_id": "ORD-X"}, {"$set": {"status": "cancelled"}})
            await ingester(log.store, log.feed, log.clock, collections=both).run(until_idle=True)
            await asyncio.sleep(0.02)
            await customers.update_one({"_id": "C-1"}, {"$set": {"name": "Anne"}})
            await ingester(log.store, log.feed, log.clock, collections=both).run(until_idle=True)

        writer = WriteWhileWaiting(log.store, write)
        r = await client.get(f"/v1/events/live?stream=customers&after={middle}&limit=1&timeout=5")
        await writer.finished()
        everything = await all_events(log.store)
        assert [e.stream for e in everything[middle:]] == ["orders", "customers"]
        assert_frames_are(events_of(parse_sse(r.text)), everything[-1:])
        # from the start: each stream's events only, the other's skipped
        frames = events_of(await sse(client, "?stream=customers&after=0&timeout=0.1"))
        assert_frames_are(frames, [e for e in everything if e.stream == "customers"])
        assert len(frames) == 2
        frames = events_of(await sse(client, f"?stream=orders&after={head}&timeout=0.1"))
        assert_frames_are(frames, [e for e in everything[head:] if e.stream == "orders"])
        assert len(frames) == 2
        # a stream neither captured nor in the log: a 404, never a tail that waits forever
        nothing = await client.get("/v1/events/live?stream=nothing&after=0&timeout=0.1")
        assert nothing.status_code == 404
        assert nothing.json()["type"] == "https://eventstore.dev/problems/unknown-stream"

    await _with_fresh_log(test, make_app)
