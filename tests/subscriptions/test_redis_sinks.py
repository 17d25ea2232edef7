"""Redis sinks against a real redis-server: streams (with a crash), pub/sub, invalidation."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from eventstore.subscriptions.config import ConfigError
from eventstore.subscriptions.sinks.base import EVENT_FAILED, Delivery
from eventstore.subscriptions.sinks.redis_sinks import RedisPubSubSink
from eventstore.worker_state import RETRYING
from tests.helpers import LogBuilder
from tests.realsinks import RedisServer, free_port
from tests.subscribing import Harness, until, until_async


def stream_sink(server: RedisServer, key: str = "events:{stream}") -> dict[str, object]:
    return {"kind": "redis-stream", "url": server.url, "stream": key, "maxlen": 100000}


async def _ids(client: Redis, key: str) -> list[str]:
    entries: list[tuple[bytes, dict[bytes, bytes]]] = await client.xrange(key)  # type: ignore[assignment]
    return [i.decode() for i, _ in entries]


async def _keys(client: Redis) -> list[str]:
    keys: list[bytes] = await client.keys("*")  # type: ignore[assignment]
    return sorted(k.decode() for k in keys)


async def test_redis_killed_and_restarted_mid_stream_leaves_every_id_once_in_order(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path / "aof", durable=True)
    server.directory.mkdir()
    server.start()
    h = Harness()
    client = Redis.from_url(server.url)
    try:
        for _ in range(30):
            await h.append("a", "b", "c", "d", "e")  # 150 events
        await h.subscribe("feed", {"sink": stream_sink(server)})
        worker = h.worker("feed", strict_batch=7, backoff_first=0.5, backoff_cap=2)
        supervised = await h.start(worker)
        await until_async(lambda: _length(client, "events:orders", 20))
        server.kill()  # SIGKILL mid-stream: the AOF (fsync always) keeps what was acknowledged
        for _ in range(10):
            await h.append("a", "f")  # 20 more while Redis is down
        await until(lambda: supervised.state == RETRYING)
        parked_while_down = await h.store.deliveries.count_parked("feed")
        server.start()  # the same directory: the AOF is replayed
        await client.aclose()
        client = Redis.from_url(server.url)
        await until(lambda: worker.checkpoint == 170, seconds=20)
        ids = await _ids(client, "events:orders")
        entries: list[tuple[bytes, dict[bytes, bytes]]] = await client.xrange("events:orders")  # type: ignore[assignment]
    finally:
        await h.stop()
        await client.aclose()
        server.stop()
    assert parked_while_down == 0  # a strict sink never parks
    assert ids == [f"{seq}-0" for seq in range(1, 171)]  # no gap, no duplicate
    first = json.loads(entries[0][1][b"event"])
    assert first["seq"] == 1 and first["entity_key"] == "a" and first["version"] == 1
    assert worker.already >= 0  # redeliveries after the restart were refused and counted


async def _length(client: Redis, key: str, at_least: int) -> bool:
    try:
        return int(await client.xlen(key)) >= at_least
    except Exception:
        return False


async def test_a_redelivery_refused_as_equal_or_smaller_counts_as_delivered(
    redis_server: RedisServer,
) -> None:
    h = Harness()
    client = Redis.from_url(redis_server.url)
    try:
        await h.append("a", "b", "c")
        await h.subscribe("feed", {"sink": stream_sink(redis_server)})
        worker = h.worker("feed")
        await h.start(worker)
        await until(lambda: worker.checkpoint == 3)
        await h.stop()
        await h.admin.reset("feed", "earliest", actor="ops")  # everything again, same ids
        h.supervisors.clear()
        again = h.worker("feed")
        await h.start(again)
        await until(lambda: again.checkpoint == 3)
        ids = await _ids(client, "events:orders")
    finally:
        await h.stop()
        await client.aclose()
    assert ids == ["1-0", "2-0", "3-0"]
    assert again.already == 3 and again.delivered == 6  # counted, not stored twice
    record = await h.admin.get("feed")
    assert record.already_delivered == 3


async def test_two_subscriptions_may_not_write_the_same_stream_key(
    redis_server: RedisServer,
) -> None:
    h = Harness()
    await h.subscribe("one", {"sink": stream_sink(redis_server)})
    for key in ("events:{stream}", "events:orders"):
        with pytest.raises(ConfigError) as refused:
            await h.admin.put("two", {"sink": stream_sink(redis_server, key)}, actor="x")
        assert refused.value.errors[0]["key"] == "sink.stream"
        assert not refused.value.malformed
    assert await h.store.subscriptions.get("two") is None
    # Another key, or another server, is fine.
    created, _ = await h.admin.put("two", {"sink": stream_sink(redis_server, "audit")}, actor="x")
    assert created


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("redis://127.0.0.1:16390/0", "redis://localhost:16390/0"),  # the tester's case
        ("redis://localhost:16390", "redis://[::1]:16390/0"),
        ("redis://LOCALHOST.:16390/?db=0", "redis://127.0.0.1:16390/00"),
        ("redis://Cache.Example/1", "redis://cache.example:6379/1"),
        ("redis://u:p@cache.example", "rediss://cache.example:6379/0"),
    ],
)
async def test_another_name_of_the_same_redis_server_is_the_same_stream(
    first: str, second: str
) -> None:
    h = Harness()
    sink = {"kind": "redis-stream", "stream": "ev:{stream}"}
    await h.subscribe("one", {"sink": {**sink, "url": first}})
    with pytest.raises(ConfigError) as refused:
        await h.admin.put("two", {"sink": {**sink, "url": second}}, actor="x")
    assert refused.value.errors == [
        {
            "key": "sink.stream",
            "message": "subscription 'one' writes the same Redis stream: two writers would "
            "swallow each other's entries",
        }
    ]
    # Another database of that server is another stream.
    created, _ = await h.admin.put(
        "two", {"sink": {**sink, "url": "redis://cache.example:6379/2"}}, actor="x"
    )
    assert created


def test_a_subscriptions_file_refuses_two_names_of_one_server_for_one_stream(
    tmp_path: Path,
) -> None:
    from eventstore.subscriptions.declarative import DeclarativeError, _refuse_shared_streams

    sink = {"kind": "redis-stream", "stream": "ev:orders"}
    entries = [
        ("one", {"sink": {**sink, "url": "redis://localhost:16390/0"}}),
        ("two", {"sink": {**sink, "url": "redis://127.0.0.1:16390"}}),
    ]
    with pytest.raises(DeclarativeError) as refused:
        _refuse_shared_streams("subs.json", entries)
    assert str(refused.value) == (
        "subs.json: subscriptions 'one' and 'two': sink.stream: both write the same Redis stream"
    )


async def test_pubsub_publishes_each_event_with_seq_and_version_and_counts_unheard(
    redis_server: RedisServer,
) -> None:
    h = Harness()
    client = Redis.from_url(redis_server.url)
    pubsub = client.pubsub()
    try:
        await h.append("a")  # published before anyone listens: unheard
        await h.subscribe(
            "notify",
            {
                "sink": {
                    "kind": "redis-pubsub",
                    "url": redis_server.url,
                    "channel": "order:{entity_key}:{type}",
                }
            },
        )
        worker = h.worker("notify")
        await h.start(worker)
        await until(lambda: worker.checkpoint == 1)
        await pubsub.psubscribe("order:*")
        await pubsub.get_message(timeout=1)  # the psubscribe confirmation
        await h.append("a", "b")
        received: list[dict[str, object]] = []
        while len(received) < 2:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            if message is not None:
                received.append(message)
        await until(lambda: worker.checkpoint == 3)
    finally:
        await h.stop()
        await pubsub.aclose()
        await client.aclose()
    assert [m["channel"] for m in received] == [b"order:a:updated", b"order:b:created"]
    bodies = [
        json.loads(str(m["data"], "utf-8") if isinstance(m["data"], bytes) else "")
        for m in received
    ]
    assert [(b["seq"], b["version"]) for b in bodies] == [(2, 2), (3, 1)]
    assert worker.unheard == 1 and worker.delivered == 3


async def test_invalidation_removes_the_literal_and_pattern_keys_and_nothing_else(
    redis_server: RedisServer,
) -> None:
    h = Harness()
    client = Redis.from_url(redis_server.url)
    keep = [
        "order:b",
        "orders:other",
        "orders:status:x:b",
        "order:*x",
        "orders:status:*:ab",
    ]
    gone = ["order:a", "orders:list", "orders:status:paid:a", "orders:status:x:a", "order:*"]
    try:
        for k in keep + gone + ["orders:status:paid:*"]:
            await client.set(k, "1")
        await h.subscribe(
            "cache",
            {
                "sink": {
                    "kind": "redis-invalidate",
                    "url": redis_server.url,
                    "keys": ["order:{entity_key}", "orders:list", "orders:status:*:{entity_key}"],
                    "again_after_ms": 5,
                }
            },
        )
        worker = h.worker("cache")
        await h.start(worker)
        await h.append("a")
        await until(lambda: worker.checkpoint == 1)
        left_after_a = await _keys(client)
        # An entity key `*` must not widen the pattern: only the keys literally ending in `*` go.
        await h.append("*")
        await until(lambda: worker.checkpoint == 2)
        left = await _keys(client)
    finally:
        await h.stop()
        await client.aclose()
    assert left_after_a == sorted([*keep, "order:*", "orders:status:paid:*"])
    assert left == sorted(keep)


async def test_redis_unreachable_backs_off_without_parking(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "r")
    server.directory.mkdir()  # never started: connection refused
    h = Harness()
    await h.subscribe(
        "notify", {"sink": {"kind": "redis-pubsub", "url": server.url, "channel": "c"}}
    )
    await h.append("a", "b")
    worker = h.worker("notify", backoff_first=0.5, backoff_cap=1)
    supervised = await h.start(worker)
    try:
        await until(lambda: supervised.state == RETRYING and worker.failed_attempts >= 3)
        assert await h.store.deliveries.count_parked("notify") == 0
        # the server is named, and why it cannot be reached
        assert (
            worker.last_error == f"Redis unreachable at 127.0.0.1:{server.port}: connection refused"
        )
        server.start()
        await until(lambda: worker.checkpoint == 2)
    finally:
        await h.stop()
        server.stop()
    assert worker.last_error is None  # the current problem: none once deliveries go through
    await asyncio.sleep(0)


async def test_a_redis_error_reply_names_the_server_and_the_reply(
    redis_server: RedisServer,
) -> None:
    """An outside tester: a stream key holding a string gave `XADD refused: WRONGTYPE …`,
    without the server every other Redis error names."""
    h = Harness()
    client = Redis.from_url(redis_server.url)
    await client.set("events:orders", "a string")
    await h.subscribe("feed", {"sink": stream_sink(redis_server)})
    await h.append("a", "b")
    worker = h.worker("feed", backoff_first=0.5, backoff_cap=1)
    supervised = await h.start(worker)
    try:
        await until(lambda: supervised.state == RETRYING and worker.failed_attempts >= 2)
        assert worker.last_error == (
            f"Redis at 127.0.0.1:{redis_server.port} refused XADD: "
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        )
        assert await h.store.deliveries.count_parked("feed") == 0
        await client.delete("events:orders")
        await until(lambda: worker.checkpoint == 2)
        ids = await _ids(client, "events:orders")
    finally:
        await h.stop()
        await client.aclose()
    assert ids == ["1-0", "2-0"]
    assert worker.last_error is None


async def test_a_long_redis_error_reply_is_cut_with_an_ellipsis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Protected mode's DENIED runs to a kilobyte: the detail quotes its first 199
    characters and `…`, after the server's name."""
    reply = "DENIED Redis is running in protected mode. " + "Fix it this way. " * 60
    port = free_port()
    sink = RedisPubSubSink({"url": f"redis://127.0.0.1:{port}/0", "channel": "c"})

    async def refuse(*_: object) -> int:
        raise ResponseError(reply)

    monkeypatch.setattr(sink.redis, "publish", refuse)
    try:
        [outcome] = await sink.deliver([_delivery()])
    finally:
        await sink.close()
    said = reply.strip()[:199] + "…"
    assert (outcome.status, outcome.detail) == (
        EVENT_FAILED,
        f"Redis at 127.0.0.1:{port} refused PUBLISH: {said}",
    )
    assert len(said) == 200 and len(reply) > 1000


def _delivery() -> Delivery:
    e = LogBuilder().next("a")
    return Delivery(id=f"x-{e.seq}", event=e, body=b"{}")
