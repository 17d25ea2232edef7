"""The Merkle tree and its checkpoints kept by the capturing ingester, on every store adapter."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import pytest

from eventstore import checkpointing
from eventstore.checkpointing import Checkpointer
from eventstore.clock import FakeClock
from eventstore.merkle import (
    EMPTY_ROOT,
    ProofError,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from eventstore.model import Event
from eventstore.notes import Signer, Verifier, open_note, parse_checkpoint
from eventstore.ports import Store
from eventstore.signing import SignerState, read_state, write_state
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.simulator import Simulator
from eventstore.tree import (
    LogTree,
    consistency_proof,
    event_leaf,
    inclusion_proof,
    leaf_and_inclusion,
    root_at,
)
from tests.helpers import LogBuilder
from tests.integration.ingest_helpers import all_events, ingester, start_from_the_beginning


def checkpointer(store: Store, clock: FakeClock, **kw: object) -> Checkpointer:
    return Checkpointer(
        LogTree(store.merkle, store.events, page=7),
        origin="eventstore/test",
        clock=clock,
        **kw,  # type: ignore[arg-type]
    )


async def capture(store: Store, clock: FakeClock, cp: Checkpointer, changes: int = 60) -> None:
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    await Simulator(feed, seed=5, clock=clock).run(orders=6, changes=changes, rate=0)
    ing = ingester(store, feed, clock, batch_size=9)
    ing.checkpointer = cp
    await ing.run(until_idle=True)


def counted_reads(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The `after_seq` of every page the log is read from, from now on."""
    reads: list[int] = []
    real = store.events.read

    async def counted(*, after_seq: int = 0, limit: int = 1000) -> list[Event]:
        reads.append(after_seq)
        return await real(after_seq=after_seq, limit=limit)

    monkeypatch.setattr(store.events, "read", counted)
    return reads


async def test_capture_keeps_the_tree_and_every_proof_matches_the_events(
    store: Store, clock: FakeClock
) -> None:
    cp = checkpointer(store, clock)
    await capture(store, clock, cp)
    events = await all_events(store)
    leaves = [event_leaf(e) for e in events]
    n = len(events)
    assert n >= 60 and await store.merkle.size() == n
    assert await root_at(store.merkle, n) == root_of(leaves)
    for size in (1, 9, 33, n):
        root = root_of(leaves[:size])
        for index in {0, size // 2, size - 1}:
            before = store.merkle.queries
            proof = await inclusion_proof(store.merkle, index, size)
            assert store.merkle.queries == before + 1
            verify_inclusion(leaves[index], index, size, proof, root)
        if size > 1:
            proof = await consistency_proof(store.merkle, size - 1, n)
            verify_consistency(size - 1, n, root_of(leaves[: size - 1]), root_of(leaves), proof)
    with pytest.raises(ProofError):
        await inclusion_proof(store.merkle, 0, n + 1)
    # The last batch before idling was checkpointed, unsigned.
    latest = await store.merkle.checkpoint()
    assert latest is not None and latest.size == n and not latest.signed
    assert parse_checkpoint(latest.note) == ("eventstore/test", n, root_of(leaves))


async def test_checkpoints_are_made_at_most_every_interval(store: Store, clock: FakeClock) -> None:
    cp = checkpointer(store, clock, interval=3600.0)
    await capture(store, clock, cp)
    n = len(await all_events(store))
    made = [s for s in range(1, n + 1) if await store.merkle.checkpoint(s) is not None]
    # The first batch (the interval starts there) and the idle one; no more within the hour.
    assert made == [9, n]


async def test_a_log_written_before_the_tree_gets_it_built_at_start_with_progress(
    store: Store,
    log: LogBuilder,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = [log.next(f"o{i % 5}") for i in range(40)]
    await store.events.append(events)
    seen: list[tuple[int, int]] = []
    tree = LogTree(store.merkle, store.events, page=16, progress=lambda a, b: seen.append((a, b)))
    beats: list[int] = []

    async def heartbeat() -> None:
        beats.append(tree.size)

    reads = counted_reads(store, monkeypatch)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="eventstore.tree"):
        assert await tree.open(heartbeat) == 40
    assert seen == [(16, 40), (32, 40), (40, 40)]
    assert beats == [16, 32, 40]  # the ingester keeps its lease through a long build
    assert reads == [0, 16, 32]  # each page read once, nothing past the head
    assert [r.getMessage() for r in caplog.records] == [
        "building the Merkle tree: 0 of 40 events",
        "building the Merkle tree: 16 of 40 events",
        "building the Merkle tree: 32 of 40 events",
        "building the Merkle tree: 40 of 40 events",
        "Merkle tree built: 40 events added, size 40",
    ]
    monkeypatch.undo()
    caplog.clear()
    assert await root_at(store.merkle, 40) == root_of([event_leaf(e) for e in events])
    # A restart continues from the stored frontier: nothing is rebuilt.
    more = [log.next("o9") for _ in range(3)]
    await store.events.append(more)
    again = LogTree(store.merkle, store.events, progress=lambda a, b: seen.append((a, b)))
    with caplog.at_level(logging.INFO, logger="eventstore.tree"):
        await again.open()
    assert caplog.records[-1].getMessage() == "Merkle tree built: 3 events added, size 43"
    assert seen[-1] == (43, 43) and again.root() == root_of([event_leaf(e) for e in events + more])


async def test_roots_and_proofs_at_the_edges_of_the_stored_tree(
    store: Store, log: LogBuilder
) -> None:
    events = [log.next(f"o{i % 3}") for i in range(5)]
    await store.events.append(events)
    await LogTree(store.merkle, store.events).open()
    leaves = [event_leaf(e) for e in events]
    assert await root_at(store.merkle, 0) == EMPTY_ROOT
    assert await root_at(store.merkle, 1) == leaves[0]  # one leaf: the root is its leaf hash
    assert await root_at(store.merkle, 5) == root_of(leaves)
    with pytest.raises(ProofError, match=r"^a tree size is not negative$"):
        await root_at(store.merkle, -1)
    with pytest.raises(ProofError, match=r"^tree size 6 is beyond the stored tree$"):
        await root_at(store.merkle, 6)
    with pytest.raises(ProofError, match=r"^tree size 7 is beyond the stored tree$"):
        await leaf_and_inclusion(store.merkle, 0, 7)
    with pytest.raises(ProofError, match=r"^tree size 6 is beyond the stored tree$"):
        await consistency_proof(store.merkle, 2, 6)
    with pytest.raises(ProofError, match=r"^tree size 8 is beyond the stored tree$"):
        await inclusion_proof(store.merkle, 0, 8)
    leaf, proof = await leaf_and_inclusion(store.merkle, 4, 5)
    assert leaf == leaves[4]
    verify_inclusion(leaf, 4, 5, proof, root_of(leaves))


async def test_a_failed_node_write_forgets_the_frontier_and_the_next_batch_reloads_it(
    store: Store, log: LogBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = LogTree(store.merkle, store.events)
    first = [log.next("o1") for _ in range(3)]
    await store.events.append(first)
    await tree.extend(first)
    assert tree.size == 3
    put_nodes = store.merkle.put_nodes

    async def refused(*args: object, **kw: object) -> None:
        raise ConnectionError("the store is away")

    second = [log.next("o2") for _ in range(2)]
    await store.events.append(second)
    monkeypatch.setattr(store.merkle, "put_nodes", refused)
    with pytest.raises(ConnectionError):
        await tree.extend(second)
    # the frontier ran ahead of the store: forgotten, not kept
    assert (tree.size, tree.root()) == (0, EMPTY_ROOT)
    monkeypatch.setattr(store.merkle, "put_nodes", put_nodes)
    third = [log.next("o1")]
    await store.events.append(third)
    await tree.extend(third)  # reloads size 3 from the store and catches up from the log
    events = first + second + third
    assert (tree.size, await store.merkle.size()) == (6, 6)
    assert await root_at(store.merkle, 6) == root_of([event_leaf(e) for e in events])


async def test_a_batch_that_continues_the_tree_is_added_from_itself_without_reading_the_log(
    store: Store, log: LogBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a batch that skips ahead of the tree (after a failed tree write) reads the log."""
    tree = LogTree(store.merkle, store.events)
    await tree.open()
    reads = counted_reads(store, monkeypatch)
    events = [log.next(f"o{i % 3}") for i in range(12)]

    async def extend(first: int, last: int, *, stored: int | None = None) -> None:
        if stored is not None:
            await store.events.append(events[(await store.events.head()).seq : stored])
        await tree.extend(events[first - 1 : last])

    await extend(1, 1, stored=1)  # one event
    await extend(2, 4, stored=4)
    await extend(3, 5, stored=5)  # overlaps the tree by two: 5 is added
    await extend(5, 6, stored=6)  # begins at the tree's last event: 6 is added
    await extend(1, 6)  # all known already: nothing to do
    await extend(7, 7, stored=7)
    assert (tree.size, reads) == (7, [])
    await extend(10, 12, stored=12)  # 8 and 9 never reached the tree: read from the log
    assert (tree.size, reads) == (12, [7])
    assert await root_at(store.merkle, 12) == root_of([event_leaf(e) for e in events])
    with pytest.raises(ValueError) as refused:  # a batch with a hole inside
        await tree.extend([log.next("o1"), log.next("o1"), log.next("o2")][::2])
    assert str(refused.value) == "the batch does not continue the tree of size 12"


async def test_a_tree_reopened_on_its_own_log_is_not_taken_for_one_ahead_of_it(
    store: Store, log: LogBuilder, caplog: pytest.LogCaptureFixture
) -> None:
    events = [log.next(f"o{i % 3}") for i in range(6)]
    await store.events.append(events)
    await LogTree(store.merkle, store.events).open()
    caplog.clear()  # the first build
    with caplog.at_level(logging.INFO, logger="eventstore.tree"):
        assert await LogTree(store.merkle, store.events).open() == 6
    assert caplog.records == []  # nothing cut back, nothing built


async def test_signed_checkpoints_verify_and_remember_the_signer_state(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    signer = Signer.generate("log.test")
    state = str(tmp_path / "state")
    cp = checkpointer(store, clock, signer=signer, state_path=state)
    await capture(store, clock, cp)
    latest = await store.merkle.checkpoint()
    assert latest is not None and latest.signed
    text = open_note(latest.note, Verifier.parse(signer.verifier_key()))
    _, size, root = parse_checkpoint(text)
    assert read_state(state) == SignerState(
        origin="eventstore/test", size=size, root=base64.b64encode(root).decode()
    )
    assert os.stat(state).st_mode & 0o077 == 0


async def test_a_tree_that_does_not_extend_the_signed_state_is_not_signed(
    store: Store, clock: FakeClock, tmp_path: Path, log: LogBuilder
) -> None:
    signer = Signer.generate("log.test")
    state = str(tmp_path / "state")
    # This key once signed a bigger tree with another root: the store was rolled back.
    write_state(state, SignerState(origin="eventstore/test", size=10_000, root="A" * 43 + "="))
    await store.events.append([log.next("a") for _ in range(5)])
    cp = checkpointer(store, clock, signer=signer, state_path=state)
    await cp.open()
    await cp.idle()
    assert await store.merkle.checkpoint() is None
    assert cp.refused is not None and "rolled back" in cp.refused
    # Same size, other root: a fork (tried again once the interval has passed).
    write_state(state, SignerState(origin="eventstore/test", size=3, root="A" * 43 + "="))
    clock.advance(cp.interval)
    await cp.idle()
    assert await store.merkle.checkpoint() is None
    assert cp.refused is not None and "does not extend" in cp.refused


async def test_a_refusal_is_tried_once_an_interval_and_logged_when_it_starts_then_each_minute(
    store: Store,
    clock: FakeClock,
    tmp_path: Path,
    log: LogBuilder,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Capture polls `idle` many times a second: the refusal must not flood the log."""
    state = str(tmp_path / "state")
    write_state(state, SignerState(origin="eventstore/test", size=10_000, root="A" * 43 + "="))
    await store.events.append([log.next("a") for _ in range(5)])
    cp = checkpointer(store, clock, signer=Signer.generate("log.test"), state_path=state)
    reasons: list[str | None] = []
    cp.on_refused = reasons.append
    await cp.open()
    reads: list[str] = []
    real_read = read_state

    def counting(path: str) -> SignerState | None:
        reads.append(path)
        return real_read(path)

    monkeypatch.setattr(checkpointing, "read_state", counting)
    with caplog.at_level(logging.ERROR, logger="eventstore.checkpointing"):
        for _ in range(200):  # 10 s of idle polls, 50 ms apart
            await cp.idle()
            clock.advance(0.05)
        assert len(reads) == 10  # one attempt per second (the interval), not 200

        def lines() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.name == checkpointing.log.name]

        assert lines() == [f"checkpoint not signed: {cp.refused}"]
        # The log grows while refused: the reason names no growing size, so the
        # worker's standing problem is told once.
        for _ in range(3):
            event = log.next("a")
            await store.events.append([event])
            await cp.after_batch([event])
            clock.advance(cp.interval)
            await cp.idle()
        assert reasons == [cp.refused]
        assert cp.refused is not None and "10000" in cp.refused and "rolled back" in cp.refused
        assert len(lines()) == 1
        clock.advance(checkpointing.REMIND_SECONDS)
        await cp.idle()
        assert lines()[1:] == [f"checkpoint still not signed (tree of 8 events): {cp.refused}"]
    # Settled by the operator: the next attempt signs, and the problem is over.
    os.remove(state)
    clock.advance(cp.interval)
    await cp.idle()
    latest = await store.merkle.checkpoint()
    assert latest is not None and latest.signed and latest.size == 8
    assert reasons == [reasons[0], None]


async def test_a_signer_state_that_cannot_be_read_or_written_refuses_signing_not_the_tree(
    store: Store, clock: FakeClock, tmp_path: Path, log: LogBuilder
) -> None:
    signer = Signer.generate("log.test")
    await store.events.append([log.next("a") for _ in range(5)])
    # The state's directory is gone: nothing durable to remember a signature by.
    cp = checkpointer(store, clock, signer=signer, state_path=str(tmp_path / "gone" / "state"))
    await cp.open()
    await cp.idle()
    assert await store.merkle.checkpoint() is None
    assert cp.refused is not None and "cannot be written" in cp.refused
    assert await store.merkle.size() == 5  # the tree itself is fine and kept
    # Spoiled (both slots): what this key signed is unknown, so nothing is signed.
    spoiled = tmp_path / "spoiled"
    spoiled.write_bytes(b"x" * 8192)
    cp = checkpointer(store, clock, signer=signer, state_path=str(spoiled))
    await cp.open()
    await cp.idle()
    assert await store.merkle.checkpoint() is None
    assert cp.refused is not None and "cannot be read" in cp.refused
    # A good state again: signed, and the refusal is over.
    cp.state_path = str(tmp_path / "state")
    clock.advance(cp.interval)  # a refused signature is tried once an interval
    await cp.idle()
    latest = await store.merkle.checkpoint()
    assert latest is not None and latest.signed and cp.refused is None
