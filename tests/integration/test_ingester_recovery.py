"""Kill the ingester at many points of a backlog and restart it: exactly-once effect.

A fault is injected at the N-th write (event batch or checkpoint), either before
it reaches the store or right after it did (the batch stored, its checkpoint
not). The restarted ingester must produce the very log an uninterrupted run
produces: same events, same seq, same versions, same hashes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast

import pytest

from eventstore.clock import FakeClock
from eventstore.model import Checkpoint, Event
from eventstore.ports import Checkpoints, EventLog, Store
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.simulator import Simulator
from tests.integration.conftest import open_test_store
from tests.integration.ingest_helpers import (
    assert_log_intact,
    feed_changes,
    ingester,
    start_from_the_beginning,
)

BATCH = 16


class Crash(Exception):
    """The process died here."""


class Faults:
    """Counts writes and crashes at the chosen one, before or after it is performed."""

    def __init__(self, at: int | None, after: bool) -> None:
        self.at = at
        self.after = after
        self.writes = 0

    async def write(self, perform: Any) -> Any:
        self.writes += 1
        if self.writes == self.at and not self.after:
            raise Crash(f"before write {self.writes}")
        result = await perform()
        if self.writes == self.at and self.after:
            raise Crash(f"after write {self.writes}")
        return result


class FaultyEvents:
    def __init__(self, inner: EventLog, faults: Faults) -> None:
        self._inner = inner
        self._faults = faults

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def append(self, events: Sequence[Event], *, session: Any = None) -> int:
        return int(await self._faults.write(lambda: self._inner.append(events, session=session)))


class FaultyCheckpoints:
    def __init__(self, inner: Checkpoints, faults: Faults) -> None:
        self._inner = inner
        self._faults = faults

    async def get(self, name: str) -> Checkpoint | None:
        return await self._inner.get(name)

    async def put(self, checkpoint: Checkpoint, *, session: Any = None) -> None:
        await self._faults.write(lambda: self._inner.put(checkpoint, session=session))


class FaultyStore:
    """The same store, with a fault at one write."""

    def __init__(self, inner: Store, faults: Faults) -> None:
        self.events = FaultyEvents(inner.events, faults)
        self.checkpoints = FaultyCheckpoints(inner.checkpoints, faults)
        self.leases = inner.leases
        self.erasures = inner.erasures
        self.snapshots = inner.snapshots
        self._inner = inner

    @property
    def transactions(self) -> bool:
        return self._inner.transactions

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        return self._inner.transaction()

    async def close(self) -> None:
        await self._inner.close()


@asynccontextmanager
async def backlog(seed: int = 11) -> AsyncIterator[tuple[MemoryChangeFeed, FakeClock]]:
    clock = FakeClock()
    feed = MemoryChangeFeed(clock=clock)
    sim = Simulator(feed, seed=seed, clock=clock)
    await sim.run(orders=30, changes=230, rate=0)
    # lifecycle in the middle of the backlog: a drop of a second captured collection
    await feed.collection("refunds").insert_one({"_id": 1, "updatedBy": "ops"})
    await feed.drop_collection("refunds")
    await sim.run(orders=0, changes=20, rate=0)
    yield feed, clock


async def capture(
    kind: str, feed: MemoryChangeFeed, clock: FakeClock, plan: list[tuple[int, bool]]
) -> list[Event]:
    """Run with crashes at each planned point (restarting after each), then to the end."""
    store = await open_test_store(kind)
    await start_from_the_beginning(store)
    for at, after in plan:
        faults = Faults(at, after)
        with pytest.raises(Crash):
            await ingester(
                cast(Store, FaultyStore(store, faults)),  # the ports the ingester uses
                feed,
                clock,
                batch_size=BATCH,
                collections=("orders", "refunds"),
            ).run(until_idle=True)
    await ingester(store, feed, clock, batch_size=BATCH, collections=("orders", "refunds")).run(
        until_idle=True
    )
    events = await assert_log_intact(store)
    await store.close()
    return events


def fingerprint(events: list[Event]) -> list[tuple[str, int, str, int, str, str, str]]:
    """What must be identical: ids, positions, versions, types and both hashes (which cover the rest)."""
    return [(e.id, e.seq, e.entity_key, e.version, e.type, e.hash, e.log_hash) for e in events]


STOP_POINTS = [(n, after) for n in range(1, 26) for after in (False, True)]  # 50 stop points


async def test_crash_at_each_of_50_points_of_a_backlog_changes_nothing() -> None:
    async with backlog() as (feed, clock):
        reference = await capture("memory", feed, clock, [])
        changes = feed_changes(feed, ("orders", "refunds"))
        assert len(changes) >= 250
        assert [e.id for e in reference if not e.id.startswith(("inferred:", "dropped:"))] == [
            c["_id"]["_data"] for c in changes
        ]
        assert any(e.type == "dropped" for e in reference)
        for point in STOP_POINTS:
            assert await capture("memory", feed, clock, [point]) == reference, point


async def test_repeated_crashes_and_the_mongo_adapter_give_the_same_log() -> None:
    async with backlog(seed=12) as (feed, clock):
        reference = await capture("memory", feed, clock, [])
        # several crashes in a row, each on the restarted ingester
        assert (
            await capture("memory", feed, clock, [(3, True), (2, False), (5, True), (1, True)])
            == reference
        )
        for point in [(2, True), (7, False), (9, True)]:
            got = await capture("mongo", feed, clock, [point])
            assert fingerprint(got) == fingerprint(reference), point


class SessionStore(FaultyStore):
    """The same store, whose transaction hands out a session: which writes ran inside it."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner, Faults(None, after=False))
        self.session = object()
        self.writes: list[tuple[str, Any]] = []
        append, put = self.events.append, self.checkpoints.put

        async def logged_append(events: Sequence[Event], *, session: Any = None) -> int:
            self.writes.append(("append", session))
            return await append(events)

        async def logged_put(checkpoint: Checkpoint, *, session: Any = None) -> None:
            self.writes.append(("put", session))
            await put(checkpoint)

        self.events.append = logged_append  # type: ignore[method-assign]
        self.checkpoints.put = logged_put  # type: ignore[method-assign]

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        yield self.session

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        return self._transaction()


async def test_each_batch_and_its_checkpoint_are_written_in_one_transaction() -> None:
    async with backlog(seed=13) as (feed, clock):
        inner = await open_test_store("memory")
        await start_from_the_beginning(inner)
        store = SessionStore(inner)
        await ingester(cast(Store, store), feed, clock, batch_size=BATCH).run(until_idle=True)
        appends = [i for i, (kind, _) in enumerate(store.writes) if kind == "append"]
        assert len(appends) >= 10
        for i in appends:  # the batch, then its checkpoint, both in the transaction's session
            assert store.writes[i] == ("append", store.session)
            assert store.writes[i + 1] == ("put", store.session)
        await inner.close()
