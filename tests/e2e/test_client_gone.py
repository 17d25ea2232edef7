"""A client that hangs up mid-request, through a real HTTP server (uvicorn): 499, and the work stops.

The store is memory://, whose reads never wait: the server notices the hang-up only
because the app gives the loop a turn between pages and between a stream's parts.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import pytest

import eventstore.history
from api import create_app
from api.routes import events as event_routes
from eventstore.memory.store import MemoryStore
from eventstore.settings import Settings
from tests.e2e.processes import InProcessServer, serving, wait_for
from tests.helpers import LogBuilder
from tests.supervision import metric

EVENTS: Final = 10_000
PAGE: Final = 100  # of verify and of the export: 100 pages each


class Served:
    """The server, and how many pages its store was asked for (read: verify; query: exports)."""

    def __init__(self, server: InProcessServer, pages: dict[str, int]) -> None:
        self.server = server
        self.pages = pages


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    pages = {"read": 0, "query": 0}

    async def build() -> Any:
        store = MemoryStore()
        log = LogBuilder()
        await store.events.append([log.next(i % 50) for i in range(EVENTS)])
        for name in pages:
            real = getattr(store.events, name)

            def counting(real: Any = real, name: str = name) -> Any:
                async def counted(*args: Any, **kwargs: Any) -> Any:
                    pages[name] += 1
                    # Work that holds the loop, as a large page does (and never waits), so
                    # the whole log takes half a second: longer than hanging up takes.
                    time.sleep(0.005)  # noqa: ASYNC251 (on purpose: it holds the loop)
                    return await real(*args, **kwargs)

                return counted

            setattr(store.events, name, counting())
        return create_app(Settings(uri="memory://", source="simulator"), store=store)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(eventstore.history, "_PAGE", PAGE)
        patch.setattr(event_routes, "EXPORT_PAGE", PAGE)
        with serving(build) as server:
            yield Served(server, pages)


def hang_up(served: Served, request: str, when: Callable[[socket.socket], None]) -> None:
    """Send `request` on a fresh connection, then close it once `when(sock)` returns."""
    url = urlsplit(served.server.base)
    with socket.create_connection((url.hostname or "", url.port or 80), timeout=10) as sock:
        sock.sendall(request.encode())
        when(sock)


def closed_requests(served: Served, route: str) -> float | None:
    page = httpx.get(f"{served.server.base}/metrics", timeout=10).text
    return metric(page, "eventstore_http_requests_total", method="GET", route=route, status="499")


def settled(served: Served, name: str) -> int:
    """The page count once it stops moving (the work was stopped, or ended)."""
    before = -1
    while before != served.pages[name]:
        before = served.pages[name]
        time.sleep(0.2)
    return before


def test_verify_whose_client_hangs_up_is_cancelled_and_counted_499(served: Served) -> None:
    start = served.pages["read"]

    def once_it_reads(sock: socket.socket) -> None:
        deadline = time.monotonic() + 10
        while served.pages["read"] == start and time.monotonic() < deadline:
            time.sleep(0.001)

    hang_up(served, "GET /v1/verify HTTP/1.1\r\nHost: t\r\n\r\n", once_it_reads)
    wait_for(lambda: closed_requests(served, "/v1/verify") == 1)
    read = settled(served, "read") - start
    assert 1 <= read < EVENTS // PAGE // 2, read  # it stopped: most of the log was never read


def test_an_export_whose_client_hangs_up_stops_streaming_and_is_counted_499(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="asyncio")
    start = served.pages["query"]

    def after_the_first_part(sock: socket.socket) -> None:
        assert sock.recv(1024).startswith(b"HTTP/1.1 200 OK")

    request = "GET /v1/events HTTP/1.1\r\nHost: t\r\nAccept: text/csv\r\n\r\n"
    hang_up(served, request, after_the_first_part)
    wait_for(lambda: closed_requests(served, "/v1/events") == 1)
    queried = settled(served, "query") - start
    assert 1 <= queried < EVENTS // PAGE // 2, queried
    # Nothing was written to the closed connection (asyncio warns of each such write).
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
