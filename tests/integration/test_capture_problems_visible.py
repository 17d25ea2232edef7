"""Problems capture runs on through are shown: a refused signature, an unwritable listings' index.

A refused signature (the tree does not extend what the key signed: rollback or fork) and
a listings' index that cannot be written (MongoDB) do not stop capture: the events are
stored, only the signature is withheld or the listings read the log instead. The capture
worker keeps its state and reports each as a standing problem: `last_error` in
`/v1/workers`, `eventstore_worker_problem{worker} 1` in `/metrics`, until it is over.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from mongomock_motor import AsyncMongoMockClient

from api import create_app
from api.metrics import Metrics
from eventstore.capture_worker import CaptureWorker
from eventstore.checkpointing import Checkpointer
from eventstore.clock import FakeClock
from eventstore.ingester import Ingester
from eventstore.memory.store import MemoryStore
from eventstore.mongo.eventlog import MongoEventLog
from eventstore.mongo.store import MongoStore
from eventstore.notes import Signer
from eventstore.ports import Store
from eventstore.signing import SignerState, write_state
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.simulator import Simulator
from eventstore.supervisor import Supervisor
from eventstore.tree import LogTree
from eventstore.worker_state import STOPPED
from tests.integration.ingest_helpers import (
    ROLE,
    ingester,
    settings,
    start_from_the_beginning,
)
from tests.supervision import metric


def refusing_checkpointer(store: Store, clock: FakeClock, tmp_path: Path) -> Checkpointer:
    """A checkpointer whose key once signed a far bigger tree (the store was rolled back)."""
    state = str(tmp_path / "state")
    write_state(state, SignerState(origin="eventstore/test", size=10_000, root="A" * 43 + "="))
    return Checkpointer(
        LogTree(store.merkle, store.events),
        origin="eventstore/test",
        clock=clock,
        signer=Signer.generate("log.test"),
        state_path=state,
    )


def served(
    store: Store, ing: Ingester, clock: FakeClock, *, follow: bool = False
) -> tuple[Supervisor, CaptureWorker, Any]:
    """The ingester as a supervised capture worker (a finite run unless `follow`, as `run`
    does), and the API over them."""
    metrics = Metrics()
    sup = Supervisor(clock=clock, instance="here", lease_seconds=10, rng_seed=4, metrics=metrics)
    worker = CaptureWorker(ing, follow=follow)
    sup.add(worker)
    app = create_app(
        settings(),
        store=store,
        clock=clock,
        supervisor=sup,
        capture=worker.name,
        caught_up=worker.caught_up,
        metrics=metrics,
    )
    return sup, worker, app


async def test_a_refused_signature_is_the_capture_workers_standing_problem(tmp_path: Path) -> None:
    clock = FakeClock()
    feed = MemoryChangeFeed(clock=clock)
    await Simulator(feed, seed=3, clock=clock).run(orders=4, changes=20, rate=0)
    store = MemoryStore()
    await start_from_the_beginning(store)
    checkpointer = refusing_checkpointer(store, clock, tmp_path)
    ing = Ingester(
        store=store,
        source=feed.source(["orders"], batch_size=10, max_await=0.01),
        settings=settings(batch_size=10),
        clock=clock,
        owner="here",
        checkpointer=checkpointer,
    )
    sup, worker, app = served(store, ing, clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await sup.start()
        await asyncio.wait_for(sup.wait(worker.name), 10)
        # Capture went on: every change is stored, no checkpoint was signed or stored.
        assert (await store.events.head()).seq > 0
        assert await store.merkle.checkpoint() is None
        await sup.publish()
        [listed] = (await client.get("/v1/workers")).json()
        assert listed["name"] == ROLE and listed["state"] == STOPPED  # a finite run ended
        assert listed["last_error"] == (
            "checkpoint signing refused: this key signed a tree of 10000 events and the log"
            " now has fewer: the log was rolled back; refusing to sign"
        )
        page = (await client.get("/metrics")).text
        assert metric(page, "eventstore_worker_problem", worker=ROLE) == 1

        # The operator settles it (here: a state this tree extends): the next checkpoint is
        # signed and the problem is over.
        os.remove(tmp_path / "state")
        clock.advance(checkpointer.interval)  # a refused signature is tried once an interval
        await checkpointer.idle()
        latest = await store.merkle.checkpoint()
        assert latest is not None and latest.signed
        await sup.publish()
        [listed] = (await client.get("/v1/workers")).json()
        assert listed["last_error"] is None
        page = (await client.get("/metrics")).text
        assert metric(page, "eventstore_worker_problem", worker=ROLE) == 0
        await sup.stop()


async def test_an_unwritable_listings_index_is_a_standing_problem_beside_a_refused_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    feed = MemoryChangeFeed(clock=clock)
    mongo_client: Any = AsyncMongoMockClient()  # mongomock-motor for PyMongo's async client
    store = MongoStore(mongo_client, "eventstore_test", owns_client=True)
    await store.events.ensure_indexes()
    events = store.events
    assert isinstance(events, MongoEventLog)
    await start_from_the_beginning(store)
    orders = feed.collection("orders")
    checkpointer = refusing_checkpointer(store, clock, tmp_path)
    ing = ingester(store, feed, clock, owner="here")
    ing.checkpointer = checkpointer
    working = events.index_listings

    async def broken(*_: Any, **__: Any) -> int:
        raise OSError("no route to host")

    monkeypatch.setattr(events, "index_listings", broken)
    sup, worker, app = served(store, ing, clock)
    index_problem = (
        "the listings' index could not be written (OSError: no route to host);"
        " the stream and entity listings read the log meanwhile"
    )
    signing_problem = (
        "checkpoint signing refused: this key signed a tree of 10000 events and the log"
        " now has fewer: the log was rolled back; refusing to sign"
    )

    async def shown() -> tuple[str | None, float | None]:
        await sup.publish()
        [listed] = (await client.get("/v1/workers")).json()
        page = (await client.get("/metrics")).text
        return listed["last_error"], metric(page, "eventstore_worker_problem", worker=ROLE)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for n in range(3):
            await orders.insert_one({"_id": n, "status": "new"})
        await sup.start()
        await asyncio.wait_for(sup.wait(worker.name), 10)
        assert (await events.head()).seq == 3  # captured all the same
        assert await events.index.watermark() == 0
        # Both at once, each named: the index failed at start, the signature after the batch.
        assert await shown() == (f"{index_problem}; {signing_problem}", 1)

        # The signature is settled: the index's problem stands alone.
        os.remove(tmp_path / "state")
        clock.advance(checkpointer.interval)
        await checkpointer.idle()
        assert await shown() == (index_problem, 1)

        # The index is written again at the next batch: no problem is left.
        monkeypatch.setattr(events, "index_listings", working)
        await orders.insert_one({"_id": 3, "status": "new"})
        await ing.run(until_idle=True)
        assert await events.index.watermark() == 4
        assert await shown() == (None, 0)
        await sup.stop()
