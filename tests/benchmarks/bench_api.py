"""HTTP throughput and latency of the history and state endpoints next to a bare endpoint.

One server process (uvicorn on loopback, a free port, logging as `eventstore
serve` does) serves the API over a memory store whose order `ORD-BENCH` has
50 events (written through the memory change feed and ingested), plus two bare
Litestar endpoints in the same app that return the very bytes the real
endpoints answer (captured from them at start and checked over HTTP). The bare
endpoints share the app's wrapper (access log, metrics, parameter check): the
ratio isolates what the endpoint itself costs.

The client (this process, asyncio, one keep-alive HTTP/1.1 connection per
concurrent client) sends a warm-up, then a fixed number of requests per round;
rounds alternate real and bare endpoints so both see the same machine. Target:
the real endpoint serves >= 0.5 of the bare endpoint's requests/s.

Run the server alone: `python -m tests.benchmarks.bench_api serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from bson import ObjectId
from litestar import Response, get

from tests.benchmarks.harness import Row, ratio

ROOT: Final = Path(__file__).resolve().parents[2]
KEY: Final = "ORD-BENCH"
EVENTS: Final = 50
OTHER_ORDERS: Final = 200
CLIENTS: Final = 32
WARMUP: Final = 500
REQUESTS: Final = 3000  # per endpoint and round
ROUNDS: Final = 3
TARGET: Final = 0.5
ENTITY = f"/v1/streams/orders/entities/{KEY}"
ENDPOINTS: Final = {
    "history": (f"{ENTITY}/history", "/bare/history"),
    "state": (f"{ENTITY}/state", "/bare/state"),
}


# -- the server (a subprocess) -----------------------------------------------------------------
# What the bare endpoints answer: the real endpoints' bytes, captured when the server starts.
BODIES: dict[str, bytes] = {}


@get("/bare/{name:str}", include_in_schema=False)
async def bare(name: str) -> Response[bytes]:
    """No work: bytes already made."""
    return Response(BODIES[name], media_type="application/json")


async def _store() -> Any:
    """A memory store: ORD-BENCH with EVENTS events, OTHER_ORDERS other orders."""
    from eventstore.clock import FakeClock
    from eventstore.memory.store import MemoryStore
    from eventstore.sources.memory import MemoryChangeFeed
    from tests.benchmarks.workload import ACTORS, order
    from tests.integration.ingest_helpers import ingester, start_from_the_beginning

    clock = FakeClock()
    store = MemoryStore()
    await store.events.ensure_indexes()
    await store.snapshots.ensure_indexes()
    await start_from_the_beginning(store)
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    rng = random.Random(11)
    for n in range(OTHER_ORDERS):
        await orders.insert_one(order(rng, n, ObjectId(), clock.now()))
        clock.advance(1)
    await orders.insert_one({**order(rng, 99_999, ObjectId(), clock.now()), "_id": KEY})
    for n in range(1, EVENTS):
        clock.advance(60)
        await orders.update_one(
            {"_id": KEY},
            {
                "$set": {
                    "status": ["paid", "shipped", "delivered"][n % 3],
                    "items.0.qty": rng.randint(1, 9),
                    "updatedAt": clock.now() + timedelta(milliseconds=n),
                    "updatedBy": rng.choice(ACTORS),
                }
            },
        )
    await ingester(store, feed, clock, batch_size=500).run(until_idle=True)
    return store


async def _serve() -> None:
    import uvicorn
    from litestar.testing import AsyncTestClient

    from api import create_app
    from api.server import GracefulServer
    from eventstore.cli.logs import logging_config
    from eventstore.cli.serve import bind
    from eventstore.settings import Settings

    store = await _store()
    app = create_app(Settings(uri="memory://"), store=store, extra_routes=[bare])
    async with AsyncTestClient(app) as client:  # the real endpoints' bytes, in process
        for name, (real, _) in ENDPOINTS.items():
            answer = await client.get(real)
            assert answer.status_code == 200, answer.text
            BODIES[name] = answer.content
    sock = bind("127.0.0.1", 0)
    config = uvicorn.Config(
        app, log_config=logging_config(), access_log=False, lifespan="on", log_level="warning"
    )
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    await GracefulServer(config).serve(sockets=[sock])


# -- the client (this process) -----------------------------------------------------------------
@dataclass
class Measured:
    rps: float
    latencies: list[float]  # seconds
    client_cpu: float  # this process's CPU seconds per wall second


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def fetch(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        status, body = await _get(reader, writer, _request(port, path))
        assert status == 200, (path, status, body[:300])
        return body
    finally:
        writer.close()


def _request(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


async def load(port: int, path: str, total: int, clients: int = CLIENTS) -> Measured:
    """`total` GETs of `path` over `clients` keep-alive connections; every answer must be 200."""
    request = _request(port, path)
    latencies: list[float] = []
    left = total

    async def client() -> None:
        nonlocal left
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while left > 0:
                left -= 1
                started = time.perf_counter()
                status, _ = await _get(reader, writer, request)
                latencies.append(time.perf_counter() - started)
                assert status == 200, (path, status)
        finally:
            writer.close()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - wall
    return Measured(total / wall, latencies, (time.process_time() - cpu) / wall)


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


@contextlib.contextmanager
def _server() -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.benchmarks.bench_api", "serve"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("EVENTSTORE_")},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # one access line per request: not kept
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the bench server did not start: {line!r}")
        yield int(line.split()[1])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _wait_live(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            await fetch(port, "/health/live")
            return
        except (OSError, asyncio.IncompleteReadError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def _rows(name: str, size: int, real: list[Measured], bare: list[Measured]) -> list[Row]:
    real_rps = statistics.median(m.rps for m in real)
    bare_rps = statistics.median(m.rps for m in bare)
    real_lat = [x for m in real for x in m.latencies]
    bare_lat = [x for m in bare for x in m.latencies]
    share = ratio(real_rps, bare_rps)
    label = f"GET {name} ({size / 1024:.1f} KiB, {CLIENTS} clients)"
    rows = [
        Row(
            f"{label}: requests/s",
            real_rps,
            "req/s",
            bare_rps,
            share,
            f">= {TARGET} of bare",
            share is not None and share >= TARGET,
        ),
        Row(
            f"bare endpoint, same bytes as {name}: requests/s",
            bare_rps,
            "req/s",
            None,
            None,
            "-",
            None,
        ),
    ]
    for p in (0.5, 0.99):
        r, b = _pct(real_lat, p) * 1e3, _pct(bare_lat, p) * 1e3
        tag = f"p{round(p * 100)}"
        rows.append(Row(f"{label}: {tag} latency", r, "ms", b, ratio(r, b), "-", None))
        rows.append(
            Row(f"bare endpoint ({name} bytes): {tag} latency", b, "ms", None, None, "-", None)
        )
    cpu = max(m.client_cpu for m in bare)
    rows.append(
        Row(
            f"client CPU during bare {name} (1.0 = client-bound)",
            cpu,
            "cpu s/s",
            None,
            None,
            "-",
            None,
        )
    )
    return rows


async def run() -> list[Row]:
    """Both endpoints and their bare twins, alternating, in one server process."""
    rows: list[Row] = []
    with _server() as port:
        await _wait_live(port)
        for name, (real_path, bare_path) in ENDPOINTS.items():
            real_body, bare_body = await fetch(port, real_path), await fetch(port, bare_path)
            assert real_body == bare_body, f"{name}: the bare endpoint must answer the same bytes"
            if name == "history":
                assert real_body.count(b'"seq":') == EVENTS, "the order has 50 events"
            await load(port, real_path, WARMUP)
            await load(port, bare_path, WARMUP)
            real: list[Measured] = []
            bare: list[Measured] = []
            for _ in range(ROUNDS):
                real.append(await load(port, real_path, REQUESTS))
                bare.append(await load(port, bare_path, REQUESTS))
            rows += _rows(name, len(real_body), real, bare)
    return rows


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        asyncio.run(_serve())
    else:
        from tests.benchmarks.harness import print_table

        print_table(asyncio.run(run()), sys.stdout)
