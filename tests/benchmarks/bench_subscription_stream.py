"""Redis Streams delivery throughput against a bare redis-py pipeline of XADDs.

Both write the same payloads (each event's JSON, id `<seq>-0`, approximate MAXLEN)
to the same real `redis-server`, in pipelines of 500: the floor to a key of its
own, the subscription engine (checkpoints, settled positions, the strict-order
path of a redis-stream sink) to another. Target: engine / bare >= 0.5.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

import msgspec
from redis.asyncio import Redis

from eventstore.render import event_json
from tests.benchmarks.harness import Row, ratio

EVENTS = 20_000
BATCH = 500
TARGET = 0.5


async def _bare(url: str, bodies: list[bytes]) -> float:
    client = Redis.from_url(url)
    try:
        started = time.perf_counter()
        for i in range(0, len(bodies), BATCH):
            pipe = client.pipeline(transaction=False)
            for seq in range(i + 1, min(i + BATCH, len(bodies)) + 1):
                pipe.xadd(
                    "bare",
                    {"event": bodies[seq - 1]},
                    id=f"{seq}-0",
                    maxlen=1_000_000,
                    approximate=True,
                )
            await pipe.execute()
        return len(bodies) / (time.perf_counter() - started)
    finally:
        await client.aclose()


async def _engine(url: str) -> tuple[float, list[bytes]]:
    from tests.subscribing import Harness, until

    h = Harness()
    events = [h.log.next(f"o{i % 500}") for i in range(EVENTS)]
    for i in range(0, EVENTS, 5000):
        await h.store.events.append(events[i : i + 5000])
    bodies = [msgspec.json.encode(event_json(e)) for e in events]
    await h.subscribe(
        "bench",
        {"sink": {"kind": "redis-stream", "url": url, "stream": "engine", "maxlen": 1_000_000}},
    )
    worker = h.worker("bench", strict_batch=BATCH, read_batch=5000, window=20_000)
    started = time.perf_counter()
    await h.start(worker)
    try:
        await until(lambda: worker.checkpoint == EVENTS, seconds=120)
        elapsed = time.perf_counter() - started
    finally:
        await h.stop()
    return EVENTS / elapsed, bodies


async def run() -> list[Row]:
    from tests.realsinks import RedisServer

    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is needed for this benchmark (apt-get install redis-server)")
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            engine, bodies = await _engine(server.url)
            bare = await _bare(server.url, bodies)
            client = Redis.from_url(server.url)
            try:
                stored = int(await client.xlen("engine"))
            finally:
                await client.aclose()
        finally:
            server.stop()
    assert stored == EVENTS, stored
    r = ratio(engine, bare)
    return [
        Row(
            f"redis-stream subscription delivery ({EVENTS} events)",
            engine,
            "events/s",
            bare,
            r,
            f">= {TARGET} x bare pipeline",
            r is not None and r >= TARGET,
        ),
        Row("  floor: bare redis-py pipeline of XADDs", bare, "events/s", None, None, "-", None),
    ]


if __name__ == "__main__":
    import sys

    from tests.benchmarks.harness import print_table

    print_table(asyncio.run(run()), sys.stdout)
