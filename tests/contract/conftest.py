"""Contract tests: PyMongo Async against mockupdb, a scripted MongoDB wire-protocol server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from mockupdb import MockupDB
from pymongo import AsyncMongoClient

from tests.contract.wire import WAIT, Wire, housekeeping, stop_quickly

SERVER_SELECTION_MS = 2000


@pytest.fixture
def mockup() -> Iterator[MockupDB]:
    """A running mockupdb server that looks like a replica-set primary; always stopped."""
    server = MockupDB(request_timeout=WAIT)
    server.autoresponds(housekeeping)
    server.run()
    try:
        yield server
    finally:
        stop_quickly(server)


@pytest.fixture
def wire(mockup: MockupDB) -> Wire:
    """The test's side of the wire."""
    return Wire(mockup)


@pytest.fixture
async def client(mockup: MockupDB) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    """A PyMongo Async client connected straight to the mockupdb server."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mockup.uri,
        directConnection=True,
        serverSelectionTimeoutMS=SERVER_SELECTION_MS,
        tz_aware=True,
    )
    try:
        yield client
    finally:
        await client.close()
