"""Publishing signed checkpoints to directories, URLs and witnesses built from the specs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from eventstore.clock import FakeClock
from eventstore.notes import Verifier, open_note, split_note, verify_cosignature
from eventstore.publishing import Publisher, PublisherWorker, Witness
from eventstore.settings import Settings
from eventstore.supervisor import Supervisor
from eventstore.worker_state import RETRYING, RUNNING
from tests.merkle_helpers import Signed, signed_log
from tests.witness import SpecWitness


class Net:
    """Routes POSTs to the witness; other URLs answer `status` (a list: one per call)."""

    def __init__(self, witness: SpecWitness, statuses: list[int] | None = None) -> None:
        self.witness = witness
        self.statuses = statuses or []
        self.posts: list[tuple[str, bytes]] = []

    async def post(self, url: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        self.posts.append((url, body))
        if url.startswith("https://witness.test/"):
            return self.witness.add_checkpoint(body)
        return (self.statuses.pop(0) if self.statuses else 200), b""


@pytest.fixture
async def signed(tmp_path: Path) -> Signed:
    return await signed_log(tmp_path, sizes=(5, 13, 21))


def publisher(signed: Signed, net: Net, tmp_path: Path, witness: SpecWitness) -> Publisher:
    return Publisher(
        signed.store.merkle,
        targets=(f"dir:{tmp_path / 'pub'}", "https://mirror.test/cp"),
        witnesses=[Witness("https://witness.test/", witness.key)],
        post=net.post,
        clock=FakeClock(),
    )


async def offer(p: Publisher, signed: Signed, size: int) -> None:
    cp = await signed.store.merkle.checkpoint(size)
    assert cp is not None
    await p.offer(cp)


async def test_every_target_gets_the_checkpoint_and_the_witness_cosigns(
    signed: Signed, tmp_path: Path
) -> None:
    witness = SpecWitness("witness.test", signed.signer.verifier_key())
    net = Net(witness)
    p = publisher(signed, net, tmp_path, witness)
    await offer(p, signed, 5)
    assert await p.deliver()
    await offer(p, signed, 21)
    assert await p.deliver()

    pub = tmp_path / "pub"
    assert sorted(x.name for x in pub.iterdir()) == ["21", "5", "latest"]
    assert (pub / "latest").read_text() == (pub / "21").read_text()
    assert "\n5\n" in (pub / "5").read_text()
    assert [u for u, _ in net.posts].count("https://mirror.test/cp") == 2
    # The second witness request carries the consistency proof from 5 to 21.
    second = witness.requests[-1].decode()
    assert second.startswith("old 5\n") and len(second.split("\n\n")[0].split("\n")) > 1
    assert witness.latest["eventstore/test"][0] == 21
    assert [s.delivered for s in p.status()] == [21, 21, 21]

    app = create_app(Settings(uri="memory://", source="simulator"), store=signed.store)
    async with AsyncTestClient(app) as client:
        served = (await client.get("/v1/checkpoint")).text
    text = open_note(served, Verifier.parse(signed.signer.verifier_key()))
    _, sigs = split_note(served)
    assert len(sigs) == 2
    cosig = served.strip().split("\n")[-1]
    assert verify_cosignature(text, cosig, Verifier.parse(witness.key)) == witness.now


async def test_a_witness_further_along_names_its_size_and_is_answered_from_there(
    signed: Signed, tmp_path: Path
) -> None:
    witness = SpecWitness("witness.test", signed.signer.verifier_key())
    net = Net(witness)
    p = publisher(signed, net, tmp_path, witness)
    await offer(p, signed, 13)
    assert await p.deliver()
    p.witnesses[0].size = 0  # the log forgot (a restart): the witness answers 409 "13"
    await offer(p, signed, 21)
    assert await p.deliver()
    assert [r.decode().split("\n")[0] for r in witness.requests] == ["old 0", "old 0", "old 13"]


async def test_failures_are_retried_and_visible_without_blocking(
    signed: Signed, tmp_path: Path
) -> None:
    witness = SpecWitness("witness.test", signed.signer.verifier_key())
    net = Net(witness, statuses=[503, 503])
    p = publisher(signed, net, tmp_path, witness)
    await offer(p, signed, 21)
    assert not await p.deliver()
    mirror = next(s for s in p.status() if s.target == "https://mirror.test/cp")
    assert (mirror.failures, mirror.delivered) == (1, 0) and "503" in str(mirror.last_error)
    stop = asyncio.Event()
    worker = asyncio.create_task(p.run(stop))
    for _ in range(200):
        if mirror.delivered == 21:
            break
        await asyncio.sleep(0.005)
    stop.set()
    await asyncio.wait_for(worker, 1)
    assert mirror.delivered == 21 and mirror.failures == 2 and mirror.last_error is None


async def test_a_witness_refuses_a_proof_that_does_not_hold(signed: Signed) -> None:
    witness = SpecWitness("witness.test", signed.signer.verifier_key())
    cp5 = await signed.store.merkle.checkpoint(5)
    cp21 = await signed.store.merkle.checkpoint(21)
    assert cp5 is not None and cp21 is not None
    assert witness.add_checkpoint(f"old 0\n\n{cp5.note}".encode())[0] == 200
    bogus = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    assert witness.add_checkpoint(f"old 5\n{bogus}\n{cp21.note}".encode())[0] == 422
    assert witness.add_checkpoint(f"old 3\n\n{cp21.note}".encode()) == (409, b"5\n")
    assert (
        witness.add_checkpoint(f"old 0\n\n{cp21.note.split(chr(10) * 2)[0]}\n".encode())[0] == 403
    )


async def test_the_supervised_publisher_runs_on_showing_a_failing_target_until_it_catches_up(
    signed: Signed, tmp_path: Path
) -> None:
    witness = SpecWitness("witness.test", signed.signer.verifier_key())
    net = Net(witness, statuses=[503, 503])
    p = publisher(signed, net, tmp_path, witness)
    seen: list[tuple[str, str | None]] = []
    supervisor = Supervisor(
        clock=FakeClock(),
        instance="test",
        lease_seconds=1.0,
        first_delay=0.01,
        max_delay=0.02,
        on_change=lambda r: seen.append((r.state, r.last_error)),  # every change
    )
    supervised = supervisor.add(PublisherWorker(p, "eventstore/test"))
    await supervisor.start()
    try:
        await offer(p, signed, 21)
        for _ in range(400):
            mirror = next(s for s in p.status() if s.target == "https://mirror.test/cp")
            if mirror.delivered == 21 and supervised.problem is None:
                break
            await asyncio.sleep(0.005)
    finally:
        await supervisor.stop(1.0)
    # The failing mirror is the worker's standing problem; the worker itself runs on.
    problem = "checkpoint not delivered to https://mirror.test/cp: POST answered 503"
    assert (RUNNING, problem) in seen
    assert all(state != RETRYING for state, _ in seen)
    assert mirror.delivered == 21 and mirror.failures == 2 and supervised.restarts == 0
    assert seen[-2] == (RUNNING, None)  # the problem went once the mirror took it
    assert supervised.worker.name == "publish:eventstore/test"
