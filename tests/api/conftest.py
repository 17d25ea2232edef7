"""The API under test: an app over a log written by the ingester from the memory feed.

`audit_log` is built once per adapter kind and session (the log is only read by
the API tests; tests that write use `fresh_app`). It holds:
- 40 simulated orders and 200 more changes (seed 7; created, updated, replaced,
  deleted, re-created ids), ObjectId `_id`s;
- `42` (int) and `"42"` (str): one bare key naming two entities (409);
- `"a/b"`: an `_id` with a slash (`a%2Fb` in URLs);
- `ORD-X`: a string id with 4 versions at known times (created, paid, shipped,
  email changed), actor `alice` then `bob`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from api.app import EventStoreApp
from eventstore.clock import FakeClock
from eventstore.model import Event
from eventstore.ports import Store
from eventstore.settings import Settings
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.simulator import Simulator
from tests.integration.conftest import open_test_store
from tests.integration.ingest_helpers import all_events, ingester, start_from_the_beginning

ADMIN_KEY = "admin-secret-key"
READ_KEY = "read-secret-key"


@dataclass
class AuditLog:
    """A populated store and what the tests need to know about it."""

    kind: str
    store: Store
    feed: MemoryChangeFeed
    clock: FakeClock
    events: list[Event] = field(default_factory=list)
    times: dict[str, datetime] = field(default_factory=dict)

    def of(self, key: str, stream: str = "orders") -> list[Event]:
        """One entity's events, by entity_key (the first entity with that key)."""
        return [e for e in self.events if e.stream == stream and e.entity_key == key]


async def build_log(kind: str, *, orders: int = 40, changes: int = 200) -> AuditLog:
    clock = FakeClock()
    store = await open_test_store(kind)
    await store.snapshots.ensure_indexes()
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    coll = feed.collection("orders")
    times: dict[str, datetime] = {}
    sim = Simulator(feed, seed=7, clock=clock)
    await sim.run(orders=orders, changes=changes, rate=0)
    clock.advance(60)
    await coll.insert_one({"_id": 42, "status": "pending", "updatedBy": "carol"})
    clock.advance(1)
    await coll.insert_one({"_id": "42", "status": "pending", "updatedBy": "carol"})
    clock.advance(1)
    await coll.insert_one({"_id": "a/b", "status": "pending", "updatedBy": "carol"})
    clock.advance(60)
    times["x1"] = clock.now()
    await coll.insert_one(
        {
            "_id": "ORD-X",
            "number": "ORD-X",
            "status": "pending",
            "customer": {"id": "C-X", "name": "Xavier", "email": "x@example.com"},
            "updatedBy": "alice",
        }
    )
    for step, update in (
        ("x2", {"status": "paid", "updatedBy": "alice"}),
        ("x3", {"status": "shipped", "updatedBy": "bob"}),
        ("x4", {"customer.email": "xavier@example.com", "updatedBy": "bob"}),
    ):
        clock.advance(60)
        times[step] = clock.now()
        await coll.update_one({"_id": "ORD-X"}, {"$set": update})
    ing = ingester(store, feed, clock, batch_size=100)
    await ing.run(until_idle=True)
    return AuditLog(
        kind=kind,
        store=store,
        feed=feed,
        clock=clock,
        events=await all_events(store),
        times=times,
    )


def settings(**kw: Any) -> Settings:
    base: dict[str, Any] = {"uri": "memory://", "source": "simulator", "lease_seconds": 5.0}
    base.update(kw)
    return Settings(**base)


_LOGS: dict[str, AuditLog] = {}


@pytest.fixture(params=["memory"])
async def audit_log(request: pytest.FixtureRequest) -> AuditLog:
    """The shared read-only log (memory adapters); built once per test session."""
    kind = request.param
    if kind not in _LOGS:
        _LOGS[kind] = await build_log(kind)
    return _LOGS[kind]


AppFactory = Callable[..., EventStoreApp]


@pytest.fixture
def make_app() -> AppFactory:
    """`make_app(store, **settings)`: an app over a given store with test settings."""

    def build(store: Store, **kw: Any) -> EventStoreApp:
        clock = kw.pop("clock", None)
        return create_app(settings(**kw), store=store, clock=clock)

    return build


@pytest.fixture
async def client(audit_log: AuditLog, make_app: AppFactory) -> AsyncIterator[AsyncTestClient[Any]]:
    """A client of an app over the shared log, without keys."""
    async with AsyncTestClient(make_app(audit_log.store)) as c:
        yield c


@pytest.fixture
async def app_log(make_app: AppFactory) -> AsyncIterator[tuple[AsyncTestClient[Any], AuditLog]]:
    """A client of an app with the admin key over a small log of its own (it may change it)."""
    log = await build_log("memory", orders=3, changes=6)
    try:
        async with AsyncTestClient(make_app(log.store, admin_key=ADMIN_KEY)) as client:
            yield client, log
    finally:
        await log.store.close()
