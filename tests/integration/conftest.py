"""Fixtures of the integration suites: a Store of each adapter, indexes created."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient

from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.mongo.store import MongoStore
from eventstore.ports import Store
from tests.helpers import LogBuilder

ADAPTERS = ["memory", "mongo"]


async def open_test_store(kind: str) -> Store:
    """A fresh, empty store: `memory`, or `mongo` over mongomock-motor."""
    store: Store
    if kind == "memory":
        store = MemoryStore()
    else:
        # mongomock-motor stands in for PyMongo's async client (TEST_DOUBLES.md)
        client: Any = AsyncMongoMockClient()
        mongo = MongoStore(client, "eventstore_test", owns_client=True)
        await mongo.detect()
        store = mongo
    await store.events.ensure_indexes()
    return store


@pytest.fixture(params=ADAPTERS)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """A fresh store of each adapter."""
    opened = await open_test_store(request.param)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def log() -> LogBuilder:
    """A builder of valid, sealed events."""
    return LogBuilder()


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when told to."""
    return FakeClock()
