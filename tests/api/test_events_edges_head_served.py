"""A HEAD is whole once its headers are sent: logged and counted as its status, never as 499.

Through a real server (uvicorn on a loopback port), with a client that hangs up as soon
as it has the headers, as `curl -I` does. The live tail's HEAD sent its end after a
turn of the server's worker threads (Litestar's SSE iterator starts with one): a
client gone in the meantime made a complete answer a 499 "client closed request".
Idle, that lost a race now and then (from 1 in 50 to 1 in 4, by the machine's load);
with the worker threads busy (a webhook's DNS lookup, a checkpoint being written:
both run there), every time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Final

import pytest
import uvicorn

from api import create_app
from api.app import EventStoreApp
from eventstore.memory.store import MemoryStore
from eventstore.settings import Settings
from tests.e2e.processes import free_port
from tests.helpers import LogBuilder

ACCESS: Final = "eventstore.access"
LIVE: Final = "/v1/events/live"
SSE: Final = "text/event-stream; charset=utf-8"
# (target, extra request headers, route template, the answer's content type)
HEADS: Final = [
    (LIVE, "", LIVE, SSE),
    (f"{LIVE}?after=3", "", LIVE, SSE),
    ("/v1/events", "Accept: text/csv\r\n", "/v1/events", "text/csv; charset=utf-8"),
    ("/v1/events", "Accept: application/x-ndjson\r\n", "/v1/events", "application/x-ndjson"),
]


class Served:
    """An app served by uvicorn on its own thread, and the access-log lines it wrote.

    The server's loop has one worker thread (its default executor), so a test can keep
    it busy.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.app: EventStoreApp | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.lines: list[dict[str, Any]] = []
        self._server: uvicorn.Server | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
        store = MemoryStore()
        log = LogBuilder()
        await store.events.append([log.next(i % 5) for i in range(20)])
        self.app = create_app(Settings(uri="memory://", source="simulator"), store=store)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_config=None, lifespan="on", ws="none"
        )
        self._server = uvicorn.Server(config)
        await self._server.serve()

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not (self._server is not None and self._server.started):
            assert self._thread.is_alive() and time.monotonic() < deadline, "no server"
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(timeout=15)

    def counted(self, route: str, status: int) -> float:
        """The app's request counter for `route` and `status` (this server takes only HEADs).

        Whatever the method label says: a HEAD runs as a GET inside the app.
        """
        assert self.app is not None
        return sum(
            x.value
            for family in self.app.services.metrics.requests.collect()
            for x in family.samples
            if x.name == "eventstore_http_requests_total"
            and (x.labels["route"], x.labels["status"]) == (route, str(status))
        )


class _Lines(logging.Handler):
    def __init__(self, into: list[dict[str, Any]]) -> None:
        super().__init__(logging.INFO)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(json.loads(record.getMessage()))


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    server = Served()
    access = logging.getLogger(ACCESS)
    handler, level = _Lines(server.lines), access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        access.removeHandler(handler)
        access.setLevel(level)


@contextmanager
def worker_threads_busy(served: Served) -> Iterator[None]:
    """The server's worker thread held by a job of its own until the block ends."""
    assert served.loop is not None
    running, release = threading.Event(), threading.Event()

    def hold() -> None:
        running.set()
        release.wait(30)

    served.loop.call_soon_threadsafe(served.loop.run_in_executor, None, hold)
    assert running.wait(10), "the worker thread never took the job"
    try:
        yield
    finally:
        release.set()


def head_and_hang_up(port: int, target: str, headers: str = "") -> bytes:
    """HEAD `target`, read up to the end of the headers, and close at once (as `curl -I`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"HEAD {target} HTTP/1.1\r\nHost: t\r\n{headers}\r\n".encode())
        got = b""
        while b"\r\n\r\n" not in got:
            part = sock.recv(4096)
            assert part, got
            got += part
    return got.split(b"\r\n\r\n", 1)[0]


def logged(served: Served, path: str, times: int) -> list[int]:
    """The statuses logged for `path`, once `times` of them are in (the log line comes last)."""
    deadline = time.monotonic() + 20
    while True:
        statuses = [line["status"] for line in served.lines if line["path"] == path]
        if len(statuses) >= times or time.monotonic() > deadline:
            return statuses
        time.sleep(0.01)


def assert_heads_are_200(
    served: Served, target: str, headers: str, route: str, content_type: str, times: int
) -> None:
    """`times` HEADs, each closed once its headers are in: each logged and counted 200."""
    path = target.split("?")[0]
    before = {status: served.counted(route, status) for status in (200, 499)}
    seen = len(logged(served, path, 0))
    for _ in range(times):
        got = head_and_hang_up(served.port, target, headers)
        assert got.startswith(b"HTTP/1.1 200 OK\r\n"), got
        assert f"\r\ncontent-type: {content_type}\r\n".encode() in got.lower(), got
    assert logged(served, path, seen + times)[seen:] == [200] * times
    assert served.counted(route, 200) - before[200] == times
    assert served.counted(route, 499) == before[499]


@pytest.mark.parametrize(("target", "headers", "route", "content_type"), HEADS)
def test_a_head_whose_client_leaves_after_the_headers_is_logged_and_counted_200(
    served: Served, target: str, headers: str, route: str, content_type: str
) -> None:
    assert_heads_are_200(served, target, headers, route, content_type, times=60)


@pytest.mark.parametrize(("target", "headers", "route", "content_type"), HEADS)
def test_so_it_is_while_the_servers_worker_threads_are_busy(
    served: Served, target: str, headers: str, route: str, content_type: str
) -> None:
    with worker_threads_busy(served):
        assert_heads_are_200(served, target, headers, route, content_type, times=10)
