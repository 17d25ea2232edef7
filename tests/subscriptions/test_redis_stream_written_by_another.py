"""A Redis stream whose top id another writer put above this subscription's ids: the refused
events are counted as already delivered (the documented rule), with a WARNING and a metric."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from redis.asyncio import Redis

from api.subscription_metrics import subscription_lines
from tests.realsinks import RedisServer
from tests.subscribing import Harness, until


def stream_sink(server: RedisServer) -> dict[str, Any]:
    return {"kind": "redis-stream", "url": server.url, "stream": "events:{stream}"}


def foreign_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "another writer" in r.getMessage()
    ]


async def test_entries_refused_below_another_writers_top_are_warned_about_and_counted(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="eventstore.subscriptions")
    h = Harness()
    client = Redis.from_url(redis_server.url)
    try:
        await client.xadd("events:orders", {"other": "writer"}, id="5000-0")
        await h.append("a", "b", "c")
        await h.subscribe("feed", {"sink": stream_sink(redis_server)})
        worker = h.worker("feed")
        await h.start(worker)
        await until(lambda: worker.checkpoint == 3)
        await h.stop()
        length = await client.xlen("events:orders")
    finally:
        await client.aclose()
    assert length == 1  # nothing of this subscription's is in the stream
    assert (worker.delivered, worker.already) == (3, 3)
    # One WARNING (not one per event), naming the top id and the log's head.
    assert foreign_warnings(caplog) == [
        "subscription feed: the Redis stream's top id 5000-0 is above any id this subscription "
        "wrote (the log's head is seq 3): another writer added it, and events at or below it "
        "are refused and counted as already delivered (already_delivered)"
    ]
    status = await h.admin.status(await h.admin.get("feed"))
    lines = subscription_lines([status])
    assert 'eventstore_subscription_already_delivered_total{subscription="feed"} 3' in lines
    assert "# TYPE eventstore_subscription_already_delivered_total counter" in lines


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
