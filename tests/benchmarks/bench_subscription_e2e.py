"""End-to-end subscription latency: a write to the memory feed until a Redis pub/sub
subscriber, and a webhook receiver, has the message.

The service side is the composition root's workers in this process (the ingester
and the subscription manager with its delivery workers) on a memory store; the
Redis server is a real `redis-server`, the receiver a real HTTP server on loopback
in a process of its own (it is another service), verifying each signature with
`standardwebhooks`. Writes are paced at 500 changes/s;
every 10th is timed; the subscriptions run with lanes = 4. Floor, in the same run: the
same writes until a bare consumer
of the feed's change stream has them. Target: p99 <= 50 ms.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis

from eventstore.cli.common import frozen_gc
from tests.benchmarks.bench_e2e_lag import (
    ORDERS,
    RATE,
    SAMPLE_EVERY,
    _paced_writes,
    _seed,
    floor_lags,
    floor_row,
    lag_rows,
)
from tests.benchmarks.harness import Row

# Entities with a delivery in flight at once (each entity still in seq order).
LANES = 4


async def _service_lags(sink: dict[str, Any], wait_for_messages: Any) -> list[float]:
    from eventstore.cli.bootstrap import Service, Wiring
    from eventstore.clock import SystemClock
    from eventstore.memory.store import MemoryStore
    from eventstore.settings import Settings
    from eventstore.sources.memory import MemoryChangeFeed
    from eventstore.subscriptions import positions
    from eventstore.subscriptions.control import SubscriptionAdmin

    settings = Settings(uri="memory://", source="simulator")
    feed = MemoryChangeFeed()
    store = MemoryStore()
    clock = SystemClock()
    admin = SubscriptionAdmin(store, clock=clock, owner="bench", lease_seconds=10)
    await admin.put(
        "bench", {"sink": sink, "filter": {"types": ["updated"]}, "lanes": LANES}, actor="bench"
    )
    source = feed.source(["orders"], batch_size=1000)
    service = Service(settings, store, clock=clock, wiring=Wiring(source=source))
    workers = service.workers()
    written: dict[int, float] = {}
    lags: list[float] = []
    # As `run` and `serve` do: what start-up made is frozen out of the collector's passes.
    with frozen_gc():
        await workers.start()
        try:
            await _seed(feed)
            consumer = asyncio.create_task(wait_for_messages(written, lags))
            # Warm: the seeded orders are captured and the subscription's worker has passed them.
            for _ in range(3000):
                head = (await store.events.head()).seq
                position = await positions.read_position(store.checkpoints, "bench")
                if head >= ORDERS and position == head:
                    break
                await asyncio.sleep(0.01)
            await _paced_writes(feed, lambda i, _k, t: written.__setitem__(i, t))
            await asyncio.wait_for(consumer, timeout=60)
        finally:
            await workers.stop()
    return lags


def _n(event: dict[str, Any]) -> int | None:
    fields = (event.get("changes") or {}).get("updatedFields") or {}
    n = fields.get("n")
    return n if isinstance(n, int) else None


async def pubsub_lags(url: str) -> list[float]:
    """Write -> message received by a Redis pub/sub subscriber, in ms."""
    client = Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe("orders")
    await pubsub.get_message(timeout=1)
    total = int(RATE * 3.0)

    async def listen(written: dict[int, float], lags: list[float]) -> None:
        seen = 0
        while seen < total:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            if message is None:
                continue
            now = time.perf_counter()
            n = _n(msgspec.json.decode(message["data"]))
            if n is None:
                continue
            seen += 1
            if n % SAMPLE_EVERY == 0:
                lags.append((now - written[n]) * 1000)

    try:
        return await _service_lags(
            {"kind": "redis-pubsub", "url": url, "channel": "{stream}"}, listen
        )
    finally:
        await pubsub.aclose()
        await client.aclose()


def _receiver_process(conn: Connection, total: int) -> None:
    """A webhook receiver in a process of its own; sends its URL, then the arrival times."""
    from tests.realsinks import Receiver

    async def serve() -> None:
        receiver = Receiver()
        arrivals: dict[int, float] = {}

        def rule(payload: dict[str, Any]) -> tuple[int, dict[str, str]]:
            n = _n(payload["data"])
            if n is not None:
                # perf_counter is CLOCK_MONOTONIC: one clock for both processes.
                arrivals[n] = time.perf_counter()
            return 200, {}

        receiver.rule = rule
        await receiver.start()
        conn.send(receiver.url)
        try:
            while len(arrivals) < total:  # noqa: ASYNC110 (the receiver records; this only polls)
                await asyncio.sleep(0.01)
            conn.send(arrivals)
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "stop"
        finally:
            await receiver.stop()

    asyncio.run(serve())


async def webhook_lags() -> list[float]:
    """Write -> webhook received (and verified) by a local receiver, in ms.

    The receiver is another service: it runs in a process of its own, as it would
    in production, not on the event loop of the workers it measures.
    """
    from tests.realsinks import SECRET

    total = int(RATE * 3.0)
    loop = asyncio.get_running_loop()
    ours, theirs = multiprocessing.get_context("spawn").Pipe()
    child = multiprocessing.get_context("spawn").Process(
        target=_receiver_process, args=(theirs, total), daemon=True
    )
    child.start()

    async def wait(written: dict[int, float], lags: list[float]) -> None:
        arrivals: dict[int, float] = await loop.run_in_executor(None, ours.recv)
        lags.extend(
            (arrivals[n] - written[n]) * 1000 for n in sorted(arrivals) if n % SAMPLE_EVERY == 0
        )

    try:
        url = await asyncio.wait_for(loop.run_in_executor(None, ours.recv), timeout=30)
        return await _service_lags(
            {"kind": "webhook", "url": url, "secret": SECRET, "timeout_s": 5}, wait
        )
    finally:
        if child.is_alive():
            ours.send("stop")
            child.join(5)
            if child.is_alive():
                child.kill()


async def run() -> list[Row]:
    from tests.realsinks import RedisServer

    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is needed for this benchmark (apt-get install redis-server)")
    floor = await floor_lags()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            pubsub = await pubsub_lags(server.url)
        finally:
            server.stop()
    hooks = await webhook_lags()
    rows = []
    for label, lags in (("redis pub/sub subscriber", pubsub), ("webhook receiver", hooks)):
        rows += lag_rows(f"subscription lag {{name}}: write -> {label}", lags, floor)
    return [*rows, floor_row(floor)]


if __name__ == "__main__":
    import sys

    from tests.benchmarks.harness import print_table

    print_table(asyncio.run(run()), sys.stdout)
