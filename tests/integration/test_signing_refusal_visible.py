"""A refused signature is visible beyond `/v1/workers`: readiness, `/metrics`, `/v1/checkpoint`.

The signer state shows the log does not extend what the key signed (here: a far bigger
tree, the log was rolled back), so capture runs on and signs nothing. Readiness stays
200, as for every standing problem capture runs on through, and its answer says why;
`eventstore_signing_refused` reads 1; the checkpoint 404 says signing is refused and why,
not only that none has been made yet. Once settled, all three say so.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import httpx

from api import create_app
from api.metrics import Metrics
from eventstore.capture_worker import CaptureWorker, signing_refusal
from eventstore.checkpointing import Checkpointer
from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.notes import Signer
from eventstore.signing import SignerState, write_state
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.supervisor import Supervisor
from eventstore.tree import LogTree
from eventstore.worker_state import CAPTURE, PROJECTION, RUNNING, STALE, WorkerRecord
from tests.integration.ingest_helpers import (
    ROLE,
    ingester,
    settings,
    start_from_the_beginning,
    wait_until,
)
from tests.integration.test_capture_problems_visible import served
from tests.supervision import metric

REASON = (
    "this key signed a tree of 10000 events and the log now has fewer:"
    " the log was rolled back; refusing to sign"
)


async def test_a_refused_signature_shows_in_readiness_metrics_and_the_checkpoint_404(
    tmp_path: Path,
) -> None:
    clock = FakeClock(advance_on_sleep=False)  # time moves only when this test says
    feed = MemoryChangeFeed(clock=clock)
    store = MemoryStore()
    await start_from_the_beginning(store)
    state = tmp_path / "state"
    write_state(str(state), SignerState(origin="eventstore/test", size=10_000, root="A" * 43 + "="))
    checkpointer = Checkpointer(
        LogTree(store.merkle, store.events),
        origin="eventstore/test",
        clock=clock,
        signer=Signer.generate("log.test"),
        state_path=str(state),
    )
    ing = ingester(store, feed, clock, owner="here")
    ing.checkpointer = checkpointer
    sup, worker, app = served(store, ing, clock, follow=True)
    for n in range(3):
        await feed.collection("orders").insert_one({"_id": n, "status": "new"})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await sup.start()
        try:
            await wait_until(lambda: worker.caught_up() and checkpointer.refused is not None)
            assert (await store.events.head()).seq == 3  # capture went on

            r = await client.get("/health/ready")
            assert r.status_code == 200
            assert r.json() == {
                "status": "ready",
                "detail": f"ready, but {ROLE} runs on with a problem:"
                f" checkpoint signing refused: {REASON}",
            }
            page = (await client.get("/metrics")).text
            assert metric(page, "eventstore_signing_refused") == 1
            assert metric(page, "eventstore_worker_problem", worker=ROLE) == 1
            r = await client.get("/v1/checkpoint")
            assert r.status_code == 404
            assert r.json()["detail"] == (
                f"no checkpoint has been made yet: {ROLE} on here:"
                f" checkpoint signing refused: {REASON}"
            )

            # Settled by the operator: the next try (an interval later) signs.
            os.remove(state)
            clock.advance(checkpointer.interval)
            await wait_until(lambda: checkpointer.refused is None)
            r = await client.get("/health/ready")
            assert r.json() == {"status": "ready", "detail": "ready"}
            page = (await client.get("/metrics")).text
            assert metric(page, "eventstore_signing_refused") == 0
            assert (await client.get("/v1/checkpoint")).status_code == 200
        finally:
            await sup.stop()


async def test_without_a_signing_key_there_is_no_signing_gauge() -> None:
    clock = FakeClock(advance_on_sleep=False)
    store = MemoryStore()
    ing = ingester(store, MemoryChangeFeed(clock=clock), clock, owner="here")
    ing.checkpointer = Checkpointer(
        LogTree(store.merkle, store.events), origin="eventstore/test", clock=clock
    )
    metrics = Metrics()
    sup = Supervisor(clock=clock, instance="here", lease_seconds=10, metrics=metrics)
    sup.add(CaptureWorker(ing))
    app = create_app(settings(), store=store, clock=clock, supervisor=sup, metrics=metrics)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        page = (await client.get("/metrics")).text
    assert "eventstore_up 1.0" in page  # the page is there
    assert metric(page, "eventstore_signing_refused") is None


def record(**kw: object) -> WorkerRecord:
    base: dict[str, object] = {
        "name": ROLE,
        "kind": CAPTURE,
        "instance": "other",
        "state": RUNNING,
        "since": datetime(2026, 1, 1, tzinfo=UTC),
        "updated_at": datetime(2026, 1, 1, tzinfo=UTC),
        "last_error": f"checkpoint signing refused: {REASON}",
    }
    base.update(kw)
    return WorkerRecord(**base)  # type: ignore[arg-type]


def test_the_refusal_is_read_from_any_instances_live_capture_record() -> None:
    refused = record()
    assert signing_refusal([record(kind=PROJECTION), refused]) == (
        f"{ROLE} on other: checkpoint signing refused: {REASON}"
    )
    # Beside the listings' index problem, the whole standing problem is quoted.
    both = record(last_error=f"the listings' index could not be written; {refused.last_error}")
    assert signing_refusal([both]) == f"{ROLE} on other: {both.last_error}"
    # Gone (stale), not capture, or another error: no refusal known.
    assert signing_refusal([record(state=STALE)]) is None
    assert signing_refusal([record(kind=PROJECTION)]) is None
    assert signing_refusal([record(last_error="ConnectionFailure: no primary")]) is None
    assert signing_refusal([]) is None
