"""A Redis stream another writer writes too: an entry this subscription did not write is
never counted as delivered (the event would be missing from the stream with no error); the
worker fails with the reason and a WARNING. Its own entries refused again (after a reset)
are already delivered, as before."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from redis.asyncio import Redis

from eventstore.worker_state import FAILED
from tests.realsinks import RedisServer
from tests.subscribing import Harness, until


def stream_sink(server: RedisServer) -> dict[str, Any]:
    return {"kind": "redis-stream", "url": server.url, "stream": "events:{stream}"}


def foreign_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "eventstore.subscriptions"
        and r.levelno == logging.WARNING
        and "another writer" in r.getMessage()
    ]


async def entries(client: Redis, key: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    found: list[tuple[bytes, dict[bytes, bytes]]] = await client.xrange(key)  # type: ignore[assignment]
    return found


def conflict(port: int, what: str, seq: int) -> str:
    return (
        f"the Redis stream 'events:orders' at 127.0.0.1:{port}: {what}: another writer writes "
        f"this stream, so seq {seq} is missing from it; give subscription 'feed' a stream of "
        "its own (or stop the other writer and remove its entries), then restart its worker"
    )


async def test_entries_refused_below_another_writers_top_fail_the_worker_not_counted(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # They were counted as already delivered (with a WARNING only): the stream lacked them.
    caplog.set_level(logging.WARNING, logger="eventstore.subscriptions")
    h = Harness()
    client = Redis.from_url(redis_server.url)
    try:
        await client.xadd("events:orders", {"other": "writer"}, id="5000-0")
        await h.append("a", "b", "c")
        await h.subscribe("feed", {"sink": stream_sink(redis_server)})
        worker = h.worker("feed")
        supervised = await h.start(worker)
        try:
            await until(lambda: supervised.state == FAILED)
        finally:
            await h.stop()
        length = await client.xlen("events:orders")
    finally:
        await client.aclose()
    assert length == 1  # nothing of this subscription's is in the stream
    why = conflict(
        redis_server.port,
        "entry 1-0 is refused below the top entry 5000-0 (written by another writer), "
        "and the stream does not hold it",
        1,
    )
    assert supervised.last_error == f"configuration error: {why}"
    assert (worker.delivered, worker.already, worker.checkpoint) == (0, 0, 0)
    assert foreign_warnings(caplog) == [f"subscription feed: {why}"]
    record = await h.admin.get("feed")
    assert record.last_error == f"configuration error: {why}"


async def test_a_second_subscription_writing_ahead_is_a_conflict_not_already_delivered(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The tester's case: `ra3` (the same server by another name) wrote seq 5 while `ra1`
    # was paused at 3; `ra1` then counted 4 as already delivered, and the stream lacked it.
    caplog.set_level(logging.WARNING, logger="eventstore.subscriptions")
    h = Harness()
    client = Redis.from_url(redis_server.url)
    try:
        await h.append("a", "b", "c")
        await h.subscribe("feed", {"sink": stream_sink(redis_server)})
        worker = h.worker("feed")
        supervised = await h.start(worker)
        await until(lambda: worker.checkpoint == 3)
        await h.admin.pause("feed", actor="ops")
        await until(lambda: supervised.state == "paused")
        await h.append("d")
        await client.xadd("events:orders", {"event": "{}", "subscription": "ra3"}, id="5-0")
        await h.append("e")
        await h.admin.resume("feed", actor="ops")
        try:
            await until(lambda: supervised.state == FAILED)
        finally:
            await h.stop()
        ids = [entry_id.decode() for entry_id, _ in await entries(client, "events:orders")]
    finally:
        await client.aclose()
    assert ids == ["1-0", "2-0", "3-0", "5-0"]
    why = conflict(
        redis_server.port,
        "entry 4-0 is refused below the top entry 5-0 (written by subscription 'ra3'), "
        "and the stream does not hold it",
        4,
    )
    assert supervised.last_error == f"configuration error: {why}"
    assert (worker.delivered, worker.already, worker.checkpoint) == (3, 0, 3)
    assert foreign_warnings(caplog) == [f"subscription feed: {why}"]


async def test_another_subscriptions_entry_at_its_id_is_a_conflict(
    redis_server: RedisServer,
) -> None:
    h = Harness()
    client = Redis.from_url(redis_server.url)
    try:
        await client.xadd("events:orders", {"event": "{}", "subscription": "other"}, id="1-0")
        await h.append("a", "b")
        await h.subscribe("feed", {"sink": stream_sink(redis_server)})
        worker = h.worker("feed")
        supervised = await h.start(worker)
        try:
            await until(lambda: supervised.state == FAILED)
        finally:
            await h.stop()
        fields = [f for _, f in await entries(client, "events:orders")]
    finally:
        await client.aclose()
    why = conflict(
        redis_server.port,
        "entry 1-0 was written by subscription 'other', not by this subscription",
        1,
    )
    assert supervised.last_error == f"configuration error: {why}"
    assert worker.checkpoint == 0
    # Seq 2 of the same pipeline went in (above the top): it is this subscription's, named.
    assert [f[b"subscription"] for f in fields] == [b"other", b"feed"]


async def test_entries_written_before_writers_were_named_are_its_own(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # An upgrade: entries of the one field `event` (no writer named) stay already delivered.
    caplog.set_level(logging.WARNING, logger="eventstore.subscriptions")
    h = Harness()
    client = Redis.from_url(redis_server.url)
    try:
        for seq in (1, 2):
            await client.xadd("events:orders", {"event": "{}"}, id=f"{seq}-0")
        await h.append("a", "b", "c")
        await h.subscribe("feed", {"sink": stream_sink(redis_server)})
        worker = h.worker("feed")
        await h.start(worker)
        try:
            await until(lambda: worker.checkpoint == 3)
        finally:
            await h.stop()
        length = await client.xlen("events:orders")
    finally:
        await client.aclose()
    assert (worker.delivered, worker.already, length) == (3, 2, 3)
    assert foreign_warnings(caplog) == []


async def test_a_redelivery_of_its_own_entries_is_not_warned_about(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="eventstore.subscriptions")
    h = Harness()
    await h.append("a", "b", "c")
    await h.subscribe("feed", {"sink": stream_sink(redis_server)})
    worker = h.worker("feed")
    await h.start(worker)
    await until(lambda: worker.checkpoint == 3)
    await h.stop()
    await h.admin.reset("feed", "earliest", actor="ops")  # its own ids again: refused
    h.supervisors.clear()
    again = h.worker("feed")
    await h.start(again)
    try:
        await until(lambda: again.checkpoint == 3)
    finally:
        await h.stop()
    assert again.already == 3
    assert foreign_warnings(caplog) == []
