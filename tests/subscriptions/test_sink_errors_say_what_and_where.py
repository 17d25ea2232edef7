"""Sink errors name the server and the reason; a configuration no retry can fix fails the worker;
a template value that is a dot-segment cannot change a webhook's path."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from redis.asyncio import Redis

from eventstore.clock import SystemClock
from eventstore.subscriptions.sinks.base import MISCONFIGURED, SINK_FAILED, Delivery
from eventstore.subscriptions.sinks.redis_sinks import RedisPubSubSink, RedisStreamSink
from eventstore.subscriptions.sinks.webhook import WebhookSink
from eventstore.worker_state import FAILED
from tests.helpers import LogBuilder
from tests.realsinks import SECRET, Receiver, RedisServer, free_port
from tests.subscribing import Harness, until


def delivery(entity: str = "a") -> Delivery:
    e = LogBuilder().next(entity)
    return Delivery(id=f"x-{e.seq}", event=e, body=b"{}")


async def deliver_one(sink: Any) -> Any:
    """One delivery through `sink`, which is closed after; its outcome."""
    try:
        [outcome] = await sink.deliver([delivery()])
    finally:
        await sink.close()
    return outcome


async def test_a_webhook_receiver_that_refuses_connections_is_named_with_the_reason() -> None:
    port = free_port()
    sink = WebhookSink({"url": f"http://127.0.0.1:{port}/h", "secret": SECRET}, clock=SystemClock())
    outcome = await deliver_one(sink)
    assert (outcome.status, outcome.detail) == (
        SINK_FAILED,
        f"cannot reach the receiver 127.0.0.1:{port}: connection refused",
    )


async def test_a_webhook_host_that_does_not_resolve_is_named() -> None:
    sink = WebhookSink(
        {"url": "http://no-such-host.invalid/h", "secret": SECRET}, clock=SystemClock()
    )
    outcome = await deliver_one(sink)
    assert outcome.status == SINK_FAILED
    assert outcome.detail is not None
    assert outcome.detail.startswith("cannot resolve the receiver's host no-such-host.invalid: ")


async def test_a_receiver_answering_something_that_is_not_http_says_so() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(10)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink = WebhookSink({"url": f"http://127.0.0.1:{port}/h", "secret": SECRET}, clock=SystemClock())
    try:
        outcome = await deliver_one(sink)
    finally:
        server.close()
    assert (outcome.status, outcome.detail) == (
        SINK_FAILED,
        f"the receiver 127.0.0.1:{port} answered something that is not HTTP (Bad status line)",
    )


@pytest.mark.parametrize(
    ("path", "keys", "paths"),
    [
        # A key `.` or `..` stays in the path (percent-encoded: never resolved away).
        ("/flt/{entity_key}", ("..", ".", "a.b"), ["/flt/%2E", "/flt/%2E%2E", "/flt/a.b"]),
        # `{entity_key}` is the key as stored: "int:5" reads as the integer 5 and "" is an
        # empty segment. `{typed_key}` is the key that, given back to the API, names it.
        (
            "/t/{typed_key}/{entity_key}",
            ("int:5", "", "a/b"),
            ["/t/str%3A/", "/t/str%3Aa%2Fb/a%2Fb", "/t/str%3Aint%3A5/int%3A5"],
        ),
    ],
)
async def test_the_keys_substituted_in_a_webhook_path_stay_in_it_as_given(
    receiver: Receiver, path: str, keys: tuple[str, ...], paths: list[str]
) -> None:
    h = Harness()
    url = f"http://127.0.0.1:{receiver.port}{path}"
    await h.subscribe("hooks", {"sink": {"kind": "webhook", "url": url, "secret": SECRET}})
    await h.append(*keys)
    await h.start(h.worker("hooks"))
    try:
        await until(lambda: len(receiver.ids) == len(keys))
    finally:
        await h.stop()
    assert sorted(receiver.paths) == paths


async def test_redis_unreachable_names_the_server_and_the_reason() -> None:
    port = free_port()
    sink = RedisPubSubSink({"url": f"redis://127.0.0.1:{port}/0", "channel": "c"})
    outcome = await deliver_one(sink)
    assert (outcome.status, outcome.detail) == (
        SINK_FAILED,
        f"Redis unreachable at 127.0.0.1:{port}: connection refused",
    )


async def _require_password(server: RedisServer, password: str) -> None:
    r = Redis.from_url(server.url)
    try:
        await r.config_set("requirepass", password)
    finally:
        await r.aclose()


@pytest.mark.parametrize("password", ["", ":wrong@"])
async def test_redis_refusing_the_credentials_is_a_configuration_error(
    redis_server: RedisServer, password: str
) -> None:
    await _require_password(redis_server, "right")
    url = f"redis://{password}127.0.0.1:{redis_server.port}/0"
    sink = RedisStreamSink({"url": url, "stream": "s"})
    checked = await sink.check()  # found at the worker's start, before any delivery
    outcome = await deliver_one(sink)
    assert checked is not None and checked.status == MISCONFIGURED
    assert outcome.status == MISCONFIGURED
    assert outcome.detail is not None and checked.detail == outcome.detail
    assert outcome.detail.startswith(
        f"Redis at 127.0.0.1:{redis_server.port} refused the credentials (authentication failed: "
    )


async def test_a_redis_sink_s_start_check_passes_a_server_that_takes_it_or_is_away(
    redis_server: RedisServer,
) -> None:
    # Away is the deliveries' to meet (retried), never a configuration error.
    for url in (f"redis://127.0.0.1:{redis_server.port}/0", f"redis://127.0.0.1:{free_port()}/0"):
        sink = RedisPubSubSink({"url": url, "channel": "c"})
        try:
            assert await sink.check() is None
        finally:
            await sink.close()


@pytest.mark.parametrize("events", [("a", "b"), ()])
async def test_a_redis_database_that_does_not_exist_fails_the_worker_at_start_with_the_reason(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, events: tuple[str, ...]
) -> None:
    # Found when the worker starts, before any delivery: with no event to deliver yet it
    # used to show `running` until the first one came.
    caplog.set_level(logging.INFO)
    h = Harness()
    url = f"redis://127.0.0.1:{redis_server.port}/99"
    sink: dict[str, Any] = {"kind": "redis-pubsub", "url": url, "channel": "c"}
    await h.subscribe("notify", {"sink": sink})
    await h.append(*events)
    worker = h.worker("notify")
    supervised = await h.start(worker)
    try:
        await until(lambda: supervised.state == FAILED)
    finally:
        await h.stop()
    why = (
        f"configuration error: Redis at 127.0.0.1:{redis_server.port} has no database 99 "
        "(DB index is out of range); fix the database number in the sink's URL"
    )
    assert supervised.last_error == why
    record = await h.admin.get("notify")
    assert (record.last_error, record.failed_attempts) == (why, 0)  # refused before a delivery
    assert await h.store.deliveries.count_parked("notify") == 0
    assert [r for r in caplog.records if r.exc_info] == []  # one line, no traceback
