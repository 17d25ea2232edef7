"""The tree is written after its batch, outside the batch's transaction: the log is the truth.

Invariant: the stored tree is always a prefix of the log's tree (its nodes are only
written for stored events, its size only raised after them), and whatever the
tree lacks is rebuilt from the log's events: by the next batch in the same process,
or on start-up after a crash. Faults are injected between the batch append and the
tree write, and between the nodes and the size that covers them. A tree ahead of the
log (the log lost events) is cut back to it; a damaged one is rebuilt from it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from eventstore.checkpointing import Checkpointer
from eventstore.clock import FakeClock
from eventstore.memory.eventlog import MemoryEventLog
from eventstore.merkle import ProofError, root_of, verify_inclusion
from eventstore.model import Event
from eventstore.ports import Store
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.simulator import Simulator
from eventstore.tree import LogTree, event_leaf, inclusion_proof, root_at
from tests.helpers import LogBuilder
from tests.integration.ingest_helpers import all_events, ingester, start_from_the_beginning


class Crash(BaseException):
    """The process dies here (not an error capture could handle)."""


def checkpointer(store: Store, clock: FakeClock) -> Checkpointer:
    return Checkpointer(LogTree(store.merkle, store.events), origin="eventstore/test", clock=clock)


async def run_capture(store: Store, feed: MemoryChangeFeed, clock: FakeClock) -> None:
    ing = ingester(store, feed, clock, batch_size=7)
    ing.checkpointer = checkpointer(store, clock)
    await ing.run(until_idle=True)


async def assert_tree_is_the_logs(store: Store, *, checkpointed: bool = True) -> None:
    events = await all_events(store)
    leaves = [event_leaf(e) for e in events]
    n = len(events)
    assert await store.merkle.size() == n
    assert await root_at(store.merkle, n) == root_of(leaves)
    for size in range(1, n + 1, 5):
        root = root_of(leaves[:size])
        for index in {0, size // 2, size - 1}:
            verify_inclusion(
                leaves[index], index, size, await inclusion_proof(store.merkle, index, size), root
            )
    if checkpointed:
        latest = await store.merkle.checkpoint()
        assert latest is not None and latest.size == n


async def feed_with_changes(store: Store, clock: FakeClock, changes: int) -> MemoryChangeFeed:
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    await Simulator(feed, seed=11, clock=clock).run(orders=5, changes=changes, rate=0)
    return feed


@pytest.mark.parametrize("nodes_written", [False, True], ids=["before-nodes", "before-size"])
async def test_a_crash_between_the_batch_and_its_tree_is_repaired_from_the_log_on_restart(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, nodes_written: bool
) -> None:
    feed = await feed_with_changes(store, clock, changes=40)
    real = store.merkle.put_nodes
    calls: list[int] = []

    async def dies(nodes: Sequence[tuple[int, int, bytes]], *, size: int) -> None:
        calls.append(size)
        if len(calls) < 3:
            await real(nodes, size=size)
            return
        if nodes_written:  # the nodes reached the store, the size that covers them did not
            await real(nodes, size=await store.merkle.size())
        raise Crash

    monkeypatch.setattr(store.merkle, "put_nodes", dies)
    with pytest.raises(Crash):
        await run_capture(store, feed, clock)
    stored = len(await all_events(store))
    # The third batch is in the log; the tree stopped at the second.
    assert await store.merkle.size() == calls[1] < stored == calls[2]
    monkeypatch.undo()

    # Restart: the tree is caught up from the log before capture goes on.
    await run_capture(store, feed, clock)
    assert len(await all_events(store)) > stored  # capture went on past the crash
    await assert_tree_is_the_logs(store)


async def test_a_failed_tree_write_in_a_running_capture_is_caught_up_by_the_next_batch(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed = await feed_with_changes(store, clock, changes=40)
    real = store.merkle.put_nodes
    calls: list[int] = []

    async def fails_once(nodes: Sequence[tuple[int, int, bytes]], *, size: int) -> None:
        calls.append(size)
        if len(calls) == 2:
            raise ConnectionError("the store went away for a moment")
        await real(nodes, size=size)

    monkeypatch.setattr(store.merkle, "put_nodes", fails_once)
    await run_capture(store, feed, clock)  # capture is never failed by the tree
    assert len(calls) >= 3
    await assert_tree_is_the_logs(store)


async def test_a_tree_ahead_of_the_log_is_cut_back_to_it_and_follows_the_new_events(
    store: Store, log: LogBuilder
) -> None:
    # The tree held 30 events; the log was restored to its first 20, then went on
    # with other events 21..26.
    before = [log.next(f"o{i % 3}") for i in range(30)]
    await LogTree(store.merkle, await _log_of(before)).open()
    assert await store.merkle.size() == 30
    other = LogBuilder()
    kept = [other.next(f"o{i % 3}") for i in range(20)]
    assert [e.hash for e in kept] == [e.hash for e in before[:20]]
    await store.events.append(kept + [other.next("new") for _ in range(6)])
    tree = LogTree(store.merkle, store.events)
    assert await tree.open() == 26
    await assert_tree_is_the_logs(store, checkpointed=False)
    with pytest.raises(ProofError):  # the old tree of 30 is gone, not served
        await inclusion_proof(store.merkle, 0, 30)


async def test_a_tree_ahead_of_the_log_keeps_the_prefix_it_shares_checked_page_by_page(
    store: Store, log: LogBuilder, caplog: pytest.LogCaptureFixture
) -> None:
    """Only the leaves past the shared 20 events are rebuilt, and a long check keeps the lease."""
    before = [log.next(f"o{i % 3}") for i in range(30)]
    await LogTree(store.merkle, await _log_of(before)).open()
    other = LogBuilder()
    kept = [other.next(f"o{i % 3}") for i in range(20)]
    await store.events.append(kept + [other.next("new") for _ in range(6)])
    progress: list[tuple[int, int]] = []
    beats: list[int] = []

    async def heartbeat() -> None:
        beats.append(await store.merkle.size())

    tree = LogTree(store.merkle, store.events, page=3, progress=lambda *p: progress.append(p))
    caplog.clear()  # the first tree's build
    with caplog.at_level(logging.ERROR, logger="eventstore.tree"):
        assert await tree.open(heartbeat) == 26
    assert [r.getMessage() for r in caplog.records] == [
        "the stored Merkle tree has 30 events but the log only 26: cutting the tree"
        " back to the 20 events it shares with the log"
    ]
    # the check of the shared prefix beats after each whole page of 3 that agrees (up to 18),
    # then the catch-up adds only events 21..26, a page of 3 at a time, beating after each
    assert beats == [30] * 6 + [23, 26]
    assert progress == [(23, 26), (26, 26)]
    await assert_tree_is_the_logs(store, checkpointed=False)


async def test_a_tree_ahead_of_a_log_that_differs_from_its_first_event_is_rebuilt_whole(
    store: Store, log: LogBuilder, caplog: pytest.LogCaptureFixture
) -> None:
    await LogTree(store.merkle, await _log_of([log.next("o1") for _ in range(8)])).open()
    other = LogBuilder()  # another history altogether: no leaf is shared
    await store.events.append([other.next("other") for _ in range(5)])
    caplog.clear()  # the first tree's build
    with caplog.at_level(logging.ERROR, logger="eventstore.tree"):
        assert await LogTree(store.merkle, store.events, page=2).open() == 5
    assert caplog.records[0].getMessage().endswith("back to the 0 events it shares with the log")
    await assert_tree_is_the_logs(store, checkpointed=False)


async def test_a_damaged_tree_is_rebuilt_from_the_log(store: Store, log: LogBuilder) -> None:
    events = [log.next(f"o{i % 3}") for i in range(30)]
    await store.events.append(events)
    await LogTree(store.merkle, await _log_of(events[:20])).open()
    await store.merkle.put_nodes([], size=30)  # the size says 30, nodes past 20 are missing
    assert await LogTree(store.merkle, store.events).open() == 30
    await assert_tree_is_the_logs(store, checkpointed=False)


async def test_a_tree_whose_nodes_are_lost_is_rebuilt_in_pages_and_never_claims_a_lost_node(
    store: Store, log: LogBuilder, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [log.next(f"o{i % 3}") for i in range(10)]
    await store.events.append(events)
    await store.merkle.put_nodes([], size=10)  # the size says 10, no node is there

    async def refused(nodes: Sequence[tuple[int, int, bytes]], *, size: int) -> None:
        raise ConnectionError("the store went away")

    monkeypatch.setattr(store.merkle, "put_nodes", refused)
    with pytest.raises(ConnectionError):
        await LogTree(store.merkle, store.events, page=4).open()
    # cut back to nothing before the rebuild: the size never covers a node that is not there
    assert await store.merkle.size() == 0
    monkeypatch.undo()
    await store.merkle.put_nodes([], size=10)  # lost again
    caplog.clear()
    beats: list[int] = []

    async def heartbeat() -> None:
        beats.append(await store.merkle.size())

    with caplog.at_level(logging.ERROR, logger="eventstore.tree"):
        assert await LogTree(store.merkle, store.events, page=4).open(heartbeat) == 10
    assert [r.getMessage() for r in caplog.records] == [
        "the stored Merkle tree of 10 events lacks node (3, 0): rebuilding it from the log"
    ]
    assert beats == [4, 8, 10]  # the lease is kept through a long rebuild
    await assert_tree_is_the_logs(store, checkpointed=False)


async def _log_of(events: list[Event]) -> MemoryEventLog:
    """Another log holding `events` (what the tree was built from)."""
    memory = MemoryEventLog()
    await memory.append(events)
    return memory
