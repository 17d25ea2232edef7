"""End-to-end lag: a write through the memory feed until it is visible in the history endpoint.

Next to its floor measured in the same run: the same writes at the same rate
until a bare consumer of the feed (one change stream, nothing else) has them.
The service side is `eventstore run` in this process: the ingester and the
projector (the composition root's workers) and the API served by uvicorn on loopback; every 10th
write is polled for (1 ms apart) with GET .../history?from_version=<its version>.
Target: p99 <= 50 ms at 500 changes/s.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx

from tests.benchmarks.harness import Row

RATE = 500.0  # changes per second
SECONDS = 3.0
ORDERS = 20
SAMPLE_EVERY = 10
TARGET_P99_MS = 50.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _paced_writes(feed: Any, on_write: Any) -> None:
    """Updates of ORDERS orders, round robin, at RATE per second (absolute schedule)."""
    orders = feed.collection("orders")
    total = int(RATE * SECONDS)
    start = time.perf_counter()
    for i in range(total):
        due = start + i / RATE
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        key = f"order-{i % ORDERS}"
        written = time.perf_counter()
        await orders.update_one({"_id": key}, {"$set": {"n": i, "status": f"s{i % 7}"}})
        on_write(i, key, written)


async def _until(check: Any, seconds: float = 30.0) -> None:
    """Wait (bounded) until the awaitable `check()` gives a true value."""
    for _ in range(int(seconds / 0.01)):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("the service did not come up")


async def _now(value: bool) -> bool:
    return value


async def _status(http: httpx.AsyncClient, path: str, code: int) -> bool:
    return (await http.get(path)).status_code == code


async def _has_events(http: httpx.AsyncClient) -> bool:
    return bool((await http.get("/v1/streams")).json())


async def _seed(feed: Any) -> None:
    orders = feed.collection("orders")
    for k in range(ORDERS):
        await orders.insert_one({"_id": f"order-{k}", "n": -1, "status": "new"})


async def floor_lags() -> list[float]:
    """Write -> the change returned by a bare change stream on the feed, in ms."""
    from eventstore.sources.memory import MemoryChangeFeed

    feed = MemoryChangeFeed()
    await _seed(feed)
    written: dict[int, float] = {}
    lags: list[float] = []
    total = int(RATE * SECONDS)
    source = feed.source(["orders"], batch_size=1000)
    async with source.watch(None) as stream:

        async def consume() -> None:
            seen = 0
            while seen < total:
                batch = await stream.next_batch()
                now = time.perf_counter()
                assert batch is not None
                for change in batch.changes:
                    n = change["updateDescription"]["updatedFields"]["n"]
                    if n % SAMPLE_EVERY == 0:
                        lags.append((now - written[n]) * 1000)
                    seen += 1

        consumer = asyncio.create_task(consume())
        await _paced_writes(feed, lambda i, _k, t: written.__setitem__(i, t))
        await asyncio.wait_for(consumer, timeout=30)
    return lags


async def service_lags() -> list[float]:
    """Write -> visible in GET /v1/streams/orders/entities/{key}/history, in ms."""
    import uvicorn

    from api.server import GracefulServer
    from eventstore.cli.bootstrap import Service, Wiring
    from eventstore.clock import SystemClock
    from eventstore.memory.store import MemoryStore
    from eventstore.settings import Settings
    from eventstore.sources.memory import MemoryChangeFeed

    settings = Settings(uri="memory://", source="simulator")
    feed = MemoryChangeFeed()
    store = MemoryStore()
    source = feed.source(["orders"], batch_size=1000)
    service = Service(settings, store, clock=SystemClock(), wiring=Wiring(source=source))
    app = service.app(workers=service.workers())
    server = GracefulServer(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False)
    )
    serving = asyncio.create_task(server.serve())
    await _until(lambda: _now(server.started))
    port = server.servers[0].sockets[0].getsockname()[1]
    lags: list[float] = []
    polls: list[asyncio.Task[None]] = []
    versions = dict.fromkeys((f"order-{k}" for k in range(ORDERS)), 1)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            await _until(lambda: _status(http, "/health/ready", 200))
            await _seed(feed)
            await _until(lambda: _has_events(http))

            async def poll(key: str, version: int, written: float) -> None:
                url = f"/v1/streams/orders/entities/{key}/history"
                while True:
                    r = await http.get(url, params={"from_version": version, "limit": 1})
                    if r.status_code == 200 and r.json()["events"]:
                        lags.append((time.perf_counter() - written) * 1000)
                        return
                    await asyncio.sleep(0.001)

            def on_write(i: int, key: str, written: float) -> None:
                versions[key] += 1
                if i % SAMPLE_EVERY == 0:
                    polls.append(asyncio.create_task(poll(key, versions[key], written)))

            await _paced_writes(feed, on_write)
            await asyncio.wait_for(asyncio.gather(*polls), timeout=30)
    finally:
        server.should_exit = True
        await serving
    return lags


def lag_rows(label: str, lags: list[float], floor: list[float]) -> list[Row]:
    """p50 and p99 of `lags` (ms) next to the floor's, the p99 held to the target."""
    rows = []
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        value, base = _pct(lags, q), _pct(floor, q)
        rows.append(
            Row(
                f"{label.format(name=name)} ({RATE:.0f} changes/s)",
                value,
                "ms",
                base,
                value / base if base else None,
                f"p99 <= {TARGET_P99_MS:.0f} ms" if name == "p99" else "-",
                value <= TARGET_P99_MS if name == "p99" else None,
            )
        )
    return rows


def floor_row(floor: list[float]) -> Row:
    """The floor's p50, for information."""
    return Row(
        "  floor: write -> bare change-stream consumer (p50)",
        statistics.median(floor),
        "ms",
        None,
        None,
        "-",
        None,
    )


async def run() -> list[Row]:
    floor = await floor_lags()
    lags = await service_lags()
    return [
        *lag_rows("end-to-end lag {name}: write -> history endpoint", lags, floor),
        floor_row(floor),
    ]


if __name__ == "__main__":
    import sys

    from tests.benchmarks.harness import print_table

    print_table(asyncio.run(run()), sys.stdout)
