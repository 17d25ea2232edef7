"""Each witness is retried on its own: one that fails never holds back another's cosignatures.

Two witnesses, one cosigning, one answering a cosignature its configured key does not
verify. The healthy one cosigns every checkpoint as it is offered and its cosignature
is served; the failing one is retried on its own back-off (a new checkpoint does not cut
it short), refused every time, and shown: the publisher worker's standing problem
(`last_error`, `eventstore_worker_problem`) and its own delivery series in `/metrics`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from api import create_app
from api.metrics import Metrics
from eventstore.clock import FakeClock
from eventstore.notes import Verifier, open_note, split_note, verify_cosignature
from eventstore.publishing import BACKOFF, Publisher, PublisherWorker, Witness
from eventstore.supervisor import Supervisor
from eventstore.worker_state import RUNNING
from tests.integration.ingest_helpers import settings, wait_until
from tests.merkle_helpers import Signed, signed_log
from tests.supervision import metric
from tests.witness import SpecWitness

GOOD = "https://good.test/add-checkpoint"
BAD = "https://bad.test/add-checkpoint"
WORKER = "publish:eventstore/test"


class Witnesses:
    """Routes each POST to the witness of its host."""

    def __init__(self, good: SpecWitness, bad: SpecWitness) -> None:
        self.good = good
        self.bad = bad

    async def post(self, url: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        witness = self.good if url == GOOD else self.bad
        assert url in (GOOD, BAD)
        return witness.add_checkpoint(body)


async def test_a_failing_witness_does_not_hold_back_the_healthy_ones_cosignatures(
    tmp_path: Path,
) -> None:
    signed: Signed = await signed_log(tmp_path, sizes=(5, 13, 21))
    log_key = signed.signer.verifier_key()
    good = SpecWitness("good.test", log_key)
    bad = SpecWitness("bad.test", log_key)
    impostor = SpecWitness("bad.test", log_key)  # the key configured for `bad`: not its own
    clock = FakeClock(advance_on_sleep=False)  # time moves only when this test says
    publisher = Publisher(
        signed.store.merkle,
        targets=(),
        witnesses=[
            Witness("https://good.test", good.key),
            Witness("https://bad.test", impostor.key),
        ],
        post=Witnesses(good, bad).post,
        clock=clock,
    )
    metrics = Metrics()
    sup = Supervisor(clock=clock, instance="here", lease_seconds=10, rng_seed=1, metrics=metrics)
    supervised = sup.add(PublisherWorker(publisher, "eventstore/test"))
    app = create_app(settings(), store=signed.store, clock=clock, supervisor=sup, metrics=metrics)

    async def offer(size: int) -> None:
        checkpoint = await signed.store.merkle.checkpoint(size)
        assert checkpoint is not None
        await publisher.offer(checkpoint)

    def cosigned() -> int:
        return good.latest.get("eventstore/test", (0, b""))[0]

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

        async def series(name: str, target: str) -> float | None:
            return metric((await client.get("/metrics")).text, name, target=target)

        await sup.start()
        try:
            await offer(5)
            await wait_until(lambda: cosigned() == 5 and len(bad.requests) == 1)
            # The bad witness is in back-off: each new checkpoint reaches the good one at once.
            await offer(13)
            await wait_until(lambda: cosigned() == 13)
            await offer(21)
            await wait_until(lambda: cosigned() == 21)
            assert len(good.requests) == 3 and len(bad.requests) == 1

            # The latest checkpoint is served with the good witness's cosignature.
            served = (await client.get("/v1/checkpoint")).text
            text = open_note(served, Verifier.parse(log_key))
            assert text.split("\n")[1] == "21"
            _, signatures = split_note(served)
            assert len(signatures) == 2
            cosignature = served.strip().split("\n")[-1]
            assert verify_cosignature(text, cosignature, Verifier.parse(good.key)) == good.now

            # The worker runs on; the failing witness is its standing problem, and its own series.
            problem = (
                f"checkpoint not delivered to {BAD}: the witness answered no valid cosignature"
            )
            assert (supervised.state, supervised.restarts) == (RUNNING, 0)
            assert supervised.problem == supervised.last_error == problem
            page = (await client.get("/metrics")).text
            assert metric(page, "eventstore_worker_problem", worker=WORKER) == 1
            assert metric(page, "eventstore_checkpoint_delivery_failing", target=BAD) == 1
            assert metric(page, "eventstore_checkpoint_delivery_failing", target=GOOD) == 0
            assert metric(page, "eventstore_checkpoint_delivered_size", target=GOOD) == 21
            assert metric(page, "eventstore_checkpoint_delivered_size", target=BAD) == 0
            assert metric(page, "eventstore_checkpoint_delivery_failures_total", target=BAD) == 1
            [bad_status] = [s for s in publisher.status() if s.target == BAD]
            assert (bad_status.failures, bad_status.failing) == (1, 1)

            # Its back-off passes: tried again (with the newest checkpoint), refused again,
            # and its next back-off is longer; the good one is left alone.
            clock.advance(BACKOFF[0])
            await wait_until(lambda: bad_status.failing == 2)
            # (It kept 5 although its cosignature was refused: its 409 names 5, asked again.)
            assert [r.decode().split("\n")[0] for r in bad.requests] == ["old 0", "old 0", "old 5"]
            assert "\n21\n" in bad.requests[-1].decode()
            assert len(good.requests) == 3
            assert await series("eventstore_checkpoint_delivery_failures_total", BAD) == 2
            clock.advance(BACKOFF[1] - 0.1)
            await offer(21)  # nothing new: no request either
            await asyncio.sleep(0.05)
            assert len(bad.requests) == 3

            # Its key is put right: at its next try it cosigns, and the problem is over.
            publisher.witnesses[1].verifier = Verifier.parse(bad.key)
            clock.advance(0.1)
            await wait_until(lambda: bad_status.delivered == 21)
            await wait_until(lambda: supervised.problem is None)
            assert supervised.last_error is None
            assert await series("eventstore_checkpoint_delivery_failing", BAD) == 0
            latest = await signed.store.merkle.checkpoint(21)
            assert latest is not None and len(latest.cosignatures) == 2
        finally:
            await sup.stop(1.0)
