"""A change delivered again inside one open stream is skipped, not a fatal conflict.

A driver resumes a change stream by itself when a getMore fails with a resumable error;
an outside tester's server (as a router or proxy may) then sent the last change again.
The ingester had stopped looking up stored ids after the stream's first new change, so
the store refused the batch and capture failed as "another writer changed the log".
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from eventstore.clock import FakeClock
from eventstore.model import ChangeBatch
from eventstore.ports import ChangeStream, Store
from eventstore.sources.memory import MemoryChangeFeed
from tests.integration.ingest_helpers import ROLE, assert_log_intact, ingester
from tests.integration.wrapped_sources import WrappedSource


class Repeating(WrappedSource):
    """The memory feed's source whose streams send each batch's last change again at the
    start of the next batch (once per stream), as after a driver's own resume."""

    def wrap(self, stream: ChangeStream) -> ChangeStream:
        return _Repeating(stream)


class _Repeating:
    def __init__(self, inner: ChangeStream) -> None:
        self.inner = inner
        self.last: dict[str, Any] | None = None
        self.repeated = 0

    async def next_batch(self) -> ChangeBatch | None:
        batch = await self.inner.next_batch()
        if batch is None or not batch.changes:
            return batch
        changes = list(batch.changes)
        if self.last is not None:
            changes.insert(0, self.last)
            self.repeated += 1
        self.last = batch.changes[-1]
        return ChangeBatch(changes=changes, resume_token=batch.resume_token)


async def test_a_change_sent_again_within_one_stream_is_skipped_and_capture_goes_on(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 0, "status": "pending"})
    await ingester(store, feed, clock).run(until_idle=True)  # the snapshot; streaming next
    for n in range(1, 8):
        clock.advance(1)
        await orders.insert_one({"_id": n, "status": "pending"})
        await orders.update_one({"_id": n}, {"$set": {"status": "paid"}})
    run = ingester(store, feed, clock, batch_size=3)
    run.source = Repeating(feed.source(["orders"], batch_size=3, max_await=0.01))

    with caplog.at_level(logging.WARNING, logger="eventstore.ingester"):
        stats = await run.run(until_idle=True)

    events = await assert_log_intact(store)
    assert (stats.recorded, stats.changes_seen - stats.duplicates_skipped) == (14, 14)
    assert stats.duplicates_skipped == 4  # 14 changes in batches of 3: sent again 4 times
    assert [(e.entity_id, e.version, e.type) for e in events[1:]] == [
        (n, v, t) for n in range(1, 8) for v, t in ((1, "created"), (2, "updated"))
    ]
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None and cp.head == await store.events.head()
    assert any("already holds part of a batch" in r.getMessage() for r in caplog.records)
