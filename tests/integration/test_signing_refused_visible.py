"""A refused signature (the tree does not extend what the key signed: rollback or fork) is shown.

Capture goes on (the events are stored; only the signature is withheld), so the capture
worker keeps its state and reports the refusal as a standing problem: `last_error` in
`/v1/workers`, `eventstore_worker_problem{worker} 1` in `/metrics`, until a checkpoint is
signed again.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx

from api import create_app
from api.metrics import Metrics
from eventstore.capture_worker import CaptureWorker
from eventstore.checkpointing import Checkpointer
from eventstore.clock import FakeClock
from eventstore.ingester import Ingester
from eventstore.memory.store import MemoryStore
from eventstore.notes import Signer
from eventstore.signing import SignerState, write_state
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.simulator import Simulator
from eventstore.supervisor import Supervisor
from eventstore.tree import LogTree
from eventstore.worker_state import STOPPED
from tests.integration.ingest_helpers import ROLE, settings, start_from_the_beginning
from tests.supervision import metric


async def test_a_refused_signature_is_the_capture_workers_standing_problem(tmp_path: Path) -> None:
    clock = FakeClock()
    feed = MemoryChangeFeed(clock=clock)
    await Simulator(feed, seed=3, clock=clock).run(orders=4, changes=20, rate=0)
    store = MemoryStore()
    await start_from_the_beginning(store)
    state = str(tmp_path / "state")
    # This key once signed a far bigger tree: the store was rolled back since.
    write_state(state, SignerState(origin="eventstore/test", size=10_000, root="A" * 43 + "="))
    checkpointer = Checkpointer(
        LogTree(store.merkle, store.events),
        origin="eventstore/test",
        clock=clock,
        signer=Signer.generate("log.test"),
        state_path=state,
    )
    ing = Ingester(
        store=store,
        source=feed.source(["orders"], batch_size=10, max_await=0.01),
        settings=settings(batch_size=10),
        clock=clock,
        owner="here",
        checkpointer=checkpointer,
    )
    metrics = Metrics()
    sup = Supervisor(clock=clock, instance="here", lease_seconds=10, rng_seed=4, metrics=metrics)
    worker = CaptureWorker(ing, follow=False)
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
        os.remove(state)
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
