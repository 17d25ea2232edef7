"""Database commands per ingested event under a 10,000-change backlog, on the `mongo` adapters.

Counted on the wire: PyMongo's AsyncMongoClient talks to mockupdb (a scripted
MongoDB server answering every command), and a command listener counts what
the service sends. The baseline, measured in the same run on the same server,
is the seed tutorial's loop: one insert and one token save per change.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from bson import Timestamp
from mockupdb import MockupDB, Request
from pymongo import AsyncMongoClient, monitoring

from eventstore.clock import SystemClock
from eventstore.ingester import Ingester
from eventstore.model import ChangeBatch, ResumePoint
from eventstore.mongo.store import MongoStore
from eventstore.ports import ChangeStream
from eventstore.settings import Settings
from tests.benchmarks.harness import Row, ratio
from tests.benchmarks.workload import changes
from tests.contract.wire import HELLO, stop_quickly

BACKLOG = 10_000
BASELINE_CHANGES = 1_000
_QUIET = {"hello", "ismaster", "endsessions"}


class Counter(monitoring.CommandListener):
    """Counts the commands the code under test sends (not the driver's handshakes)."""

    def __init__(self) -> None:
        self.by_name: dict[str, int] = {}

    @property
    def total(self) -> int:
        return sum(self.by_name.values())

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name.lower()
        if name not in _QUIET:
            self.by_name[name] = self.by_name.get(name, 0) + 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def answer(request: Request) -> bool:
    """A server that accepts every write and finds nothing: a fresh deployment under a backlog."""
    name = (request.command_name or "").lower()
    doc = request.doc
    if name in ("hello", "ismaster"):
        return bool(request.replies(HELLO))
    if name in ("find", "aggregate"):
        return bool(
            request.replies({"cursor": {"id": 0, "ns": f"{request.namespace}.x", "firstBatch": []}})
        )
    if name == "findandmodify":
        value = {"_id": doc["query"]["_id"], **doc["update"].get("$set", {})}
        return bool(
            request.replies({"value": value, "lastErrorObject": {"n": 1, "updatedExisting": True}})
        )
    if name == "insert":
        return bool(request.replies({"n": len(doc.get("documents", []))}))
    if name in ("update", "delete"):
        return bool(request.replies({"n": 1, "nModified": 1}))
    return bool(request.replies())


class ListSource:
    """A change source over prebuilt changes (the backlog), in batches."""

    name = "list"
    can_snapshot = False
    finite = True

    def __init__(self, items: list[dict[str, Any]], batch_size: int) -> None:
        self._items = items
        self._batch = batch_size

    async def cluster_time(self) -> Timestamp:
        raise NotImplementedError

    async def scan(
        self, collection: str, *, batch_size: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        raise NotImplementedError
        yield []

    @contextlib.asynccontextmanager
    async def watch(self, resume: ResumePoint | None) -> AsyncIterator[ChangeStream]:
        yield _ListStream(self._items, self._batch)


class _ListStream:
    def __init__(self, items: list[dict[str, Any]], batch_size: int) -> None:
        self._items = items
        self._batch = batch_size
        self._at = 0

    async def next_batch(self) -> ChangeBatch | None:
        if self._at >= len(self._items):
            return None
        chunk = self._items[self._at : self._at + self._batch]
        self._at += len(chunk)
        return ChangeBatch(changes=chunk, resume_token=chunk[-1]["_id"])


async def _service(uri: str, backlog: list[dict[str, Any]]) -> tuple[int, dict[str, int], bool]:
    counter = Counter()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri, directConnection=True, event_listeners=[counter], tz_aware=True
    )
    store = MongoStore(client, "eventstore")
    await store.detect()
    counter.by_name.clear()
    settings = Settings(uri="mongodb://bench", source="mongo")
    stats = await Ingester(
        store=store,
        source=ListSource(backlog, settings.batch_size),
        settings=settings,
        clock=SystemClock(),
    ).run()
    await client.close()
    assert stats.recorded == len(backlog), stats
    return counter.total, dict(counter.by_name), store.transactions


async def _tutorial_loop(uri: str, backlog: list[dict[str, Any]]) -> int:
    counter = Counter()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri, directConnection=True, event_listeners=[counter], tz_aware=True
    )
    db = client["eventstore"]
    for change in backlog:
        await db["events"].insert_one({"_id": change["_id"]["_data"], "change": change})
        await db["checkpoints"].update_one(
            {"_id": "tutorial"}, {"$set": {"token": change["_id"]}}, upsert=True
        )
    await client.close()
    return counter.total


async def run() -> list[Row]:
    """Both loops against the same scripted server."""
    server = MockupDB(request_timeout=5)
    server.autoresponds(answer)
    server.run()
    try:
        backlog = changes(BACKLOG)
        total, by_name, txn = await _service(server.uri, backlog)
        baseline = await _tutorial_loop(server.uri, backlog[:BASELINE_CHANGES]) / BASELINE_CHANGES
    finally:
        stop_quickly(server)
    per_event = total / BACKLOG
    detail = ", ".join(f"{k} {v}" for k, v in sorted(by_name.items()))
    print(f"commands for {BACKLOG:,} changes (transactions {'on' if txn else 'off'}): {detail}")
    return [
        Row(
            "db commands per ingested event (10k backlog)",
            per_event,
            "cmd/event",
            baseline,
            ratio(per_event, baseline),
            "<= 0.005",
            per_event <= 0.005,
        ),
    ]
