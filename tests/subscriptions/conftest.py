"""Fixtures of the subscription tests: a real Redis server and a webhook receiver per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.realsinks import Receiver, RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real `redis-server` on a free port, in a temporary directory (stopped after)."""
    server = RedisServer(tmp_path / "redis")
    server.directory.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on loopback, verifying every delivery with `standardwebhooks`."""
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()
