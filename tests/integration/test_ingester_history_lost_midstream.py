"""History lost while streaming: the gap starts after the last change recorded.

An outside tester found the gap's `from` at the checkpoint of when the stream opened:
every change recorded since was then inside a gap, and states that are certain were
answered `uncertain`; a restart before the loss moved the gap, so the recorded history
depended on when the process had restarted.
"""

from __future__ import annotations

from eventstore.clock import FakeClock
from eventstore.history import History
from eventstore.model import GAP, ChangeBatch
from eventstore.ports import ChangeSource, ChangeStream, HistoryLost, Store
from eventstore.sources.memory import MemoryChangeFeed
from tests.integration.ingest_helpers import ROLE, assert_log_intact, ingester
from tests.integration.wrapped_sources import WrappedSource


class LosingHistory(WrappedSource):
    """The memory feed's source whose first stream fails with history lost (error 286)
    after `batches` batches, as a server whose oplog rolled past a slow reader."""

    def __init__(self, inner: ChangeSource, batches: int) -> None:
        super().__init__(inner)
        self.batches = batches
        self.lost = False

    def wrap(self, stream: ChangeStream) -> ChangeStream:
        return _Losing(self, stream)


class _Losing:
    def __init__(self, source: LosingHistory, inner: ChangeStream) -> None:
        self.source = source
        self.inner = inner

    async def next_batch(self) -> ChangeBatch | None:
        if not self.source.lost and self.source.batches == 0:
            self.source.lost = True
            raise HistoryLost("resume point is no longer in the history")
        batch = await self.inner.next_batch()
        if batch is not None and batch.changes:
            self.source.batches -= 1
        return batch


async def test_the_gap_starts_at_the_last_change_the_stream_recorded(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 1, "status": "pending", "updatedBy": "alice"})
    await ingester(store, feed, clock).run(until_idle=True)
    opened = await store.checkpoints.get(ROLE)
    assert opened is not None and opened.last_cluster_time is not None
    # Three batches of changes recorded by the next run, then its stream loses history.
    for n in range(2, 8):
        clock.advance(1)
        await orders.insert_one({"_id": n, "status": "pending"})
    source = LosingHistory(feed.source(["orders"], batch_size=2, max_await=0.01), batches=3)
    run = ingester(store, feed, clock, batch_size=2)
    run.source = source
    stats = await run.run(until_idle=True)

    events = await assert_log_intact(store)
    assert stats.gaps == 1 and source.lost
    (gap,) = [e for e in events if e.type == GAP]
    recorded = [e for e in events if e.seq < gap.seq and e.type == "created"]
    assert [e.entity_id for e in recorded] == list(range(2, 8))  # 1 came by the snapshot
    last = recorded[-1].cluster_time
    assert last is not None and last > opened.last_cluster_time
    assert gap.document is not None and gap.document["from"] == last
    assert gap.id == f"gap:orders:{last.time}.{last.inc}"
    # A state at the time of a change recorded before the last one is certain (before the
    # gap, whose bounds are included); the old gap, from the opening checkpoint, held it.
    state = await History(store).state("orders", "6", at=recorded[-2].occurred_at)
    assert state.exists and not state.uncertain and state.gap is None
