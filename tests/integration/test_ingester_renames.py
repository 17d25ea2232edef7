"""Renames of and into captured collections keep the log equal to what each collection holds.

- Renamed away: the collection no longer holds its documents. As for a drop, each live
  entity gets an inferred deletion at the rename, then `renamed {to}` (lifecycle tests).
- Renamed into (`$out` into an existing collection, a swap with `dropTarget`): the target's
  documents were dropped (inferred deletions and `dropped`, when it had any), and it now
  holds documents no event of its stream created. A source that can be read again records a
  `gap` (with the reason) on every captured stream and re-snapshots, as for lost history;
  a file of changes cannot, and records a `gap` at the rename on the target.
Before this, a rename into a captured collection was filtered out: the old documents stayed
live for ever and the new ones' updates folded onto nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from bson import Timestamp, json_util

from eventstore.clock import FakeClock
from eventstore.fold import apply_event
from eventstore.ingester import Ingester
from eventstore.model import STREAM_KEY, Checkpoint, Event
from eventstore.ports import Store
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.ndjson import NdjsonChangeSource
from tests.integration.ingest_helpers import (
    ROLE,
    RecordedCheckpoints,
    all_events,
    assert_log_intact,
    ingester,
    settings,
)

REASON = "shop.orders_tmp was renamed to shop.orders"


def state_of(events: list[Event], stream: str, key: str) -> dict[str, Any] | None:
    """An entity's state after all its events (the fold, as every reader applies it)."""
    state: dict[str, Any] | None = None
    for e in events:
        if e.stream == stream and e.entity_key == key:
            state = apply_event(state, e)
    return state


async def test_a_rename_into_a_captured_collection_drops_its_documents_and_resnapshots(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    orders, tmp = feed.collection("orders"), feed.collection("orders_tmp")
    await orders.insert_one({"_id": 1, "status": "paid"})
    await orders.insert_one({"_id": 2, "status": "new"})
    await ingester(store, feed, clock).run(until_idle=True)  # snapshot: 1 and 2
    # `$out` into orders: a collection built aside, renamed over the target.
    await tmp.insert_one({"_id": 2, "status": "rebuilt"})
    await tmp.insert_one({"_id": 5, "status": "new"})
    await feed.rename_collection("orders_tmp", "orders", drop_target=True)
    rename = feed_change(feed, "rename")
    with caplog.at_level(logging.ERROR, logger="eventstore.ingester"):
        stats = await ingester(store, feed, clock).run(until_idle=True)
    assert stats.gaps == 1
    assert f"{REASON}: its documents were never recorded as created" in caplog.text
    events = await assert_log_intact(store)
    at = rename["clusterTime"]
    assert [(e.entity_key, e.version, e.type, e.inferred) for e in events[2:]] == [
        ("1", 2, "deleted", True),  # the target's documents were dropped with it
        ("2", 2, "deleted", True),
        (STREAM_KEY, 1, "dropped", False),
        (STREAM_KEY, 2, "gap", False),
        ("2", 3, "snapshot", False),  # what orders holds now, read again
        ("5", 1, "snapshot", False),
    ]
    assert [e.id for e in events[2:5]] == [
        f"inferred:{at.time}.{at.inc}:orders:int:1",
        f"inferred:{at.time}.{at.inc}:orders:int:2",
        "dropped:" + rename["_id"]["_data"],
    ]
    gap = events[5]
    assert gap.document is not None and gap.document["reason"] == REASON
    assert state_of(events, "orders", "2") == {"_id": 2, "status": "rebuilt"}
    assert state_of(events, "orders", "5") == {"_id": 5, "status": "new"}
    assert state_of(events, "orders", "1") is None

    # Capture goes on from the new snapshot: the moved documents' updates fold onto them.
    await orders.update_one({"_id": 5}, {"$set": {"status": "paid"}})
    await ingester(store, feed, clock).run(until_idle=True)
    events = await assert_log_intact(store)
    assert [(e.entity_key, e.version, e.type) for e in events[8:]] == [("5", 2, "updated")]
    assert state_of(events, "orders", "5") == {"_id": 5, "status": "paid"}


async def test_a_rename_into_an_empty_target_records_no_drop(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    await ingester(store, feed, clock).run(until_idle=True)
    await feed.collection("orders_tmp").insert_one({"_id": 7})
    await feed.rename_collection("orders_tmp", "orders")
    await ingester(store, feed, clock).run(until_idle=True)
    events = await assert_log_intact(store)
    assert [(e.entity_key, e.type) for e in events] == [(STREAM_KEY, "gap"), ("7", "snapshot")]


async def test_a_rename_between_captured_collections_ends_one_and_resnapshots_the_other(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    both = ["orders", "archive"]
    await feed.collection("orders").insert_one({"_id": 1, "n": 1})
    await feed.collection("archive").insert_one({"_id": 9, "n": 9})
    await ingester(store, feed, clock, collections=both).run(until_idle=True)
    await feed.rename_collection("orders", "archive", drop_target=True)
    await ingester(store, feed, clock, collections=both).run(until_idle=True)
    events = await assert_log_intact(store)
    assert sorted((e.stream, e.entity_key, e.version, e.type) for e in events[2:]) == [
        ("archive", "$stream", 1, "dropped"),
        ("archive", "$stream", 2, "gap"),
        ("archive", "1", 1, "snapshot"),  # order 1 is archive's now
        ("archive", "9", 2, "deleted"),
        ("orders", "$stream", 1, "renamed"),
        ("orders", "$stream", 2, "gap"),
        ("orders", "1", 2, "deleted"),
    ]
    assert state_of(events, "archive", "1") == {"_id": 1, "n": 1}
    assert state_of(events, "orders", "1") is None


async def test_a_crash_between_the_drop_and_the_gap_records_each_once(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    await feed.collection("orders").insert_one({"_id": 1})
    await ingester(store, feed, clock).run(until_idle=True)
    await feed.collection("orders_tmp").insert_one({"_id": 2})
    await feed.rename_collection("orders_tmp", "orders", drop_target=True)
    checkpoints = RecordedCheckpoints(store)
    # The batch up to the rename is stored and checkpointed before the rename; the gap is
    # stored, but the snapshot phase's checkpoint is lost with the connection.
    checkpoints.fail_on = 2
    with pytest.raises(ConnectionError):
        await ingester(store, feed, clock).run(until_idle=True)
    stored = [(e.entity_key, e.type) for e in await all_events(store)]
    assert stored[1:] == [("1", "deleted"), (STREAM_KEY, "dropped"), (STREAM_KEY, "gap")]
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None and cp.phase == "streaming"  # still before the rename: read again
    await ingester(store, feed, clock).run(until_idle=True)
    events = await assert_log_intact(store)
    assert [(e.entity_key, e.type) for e in events] == [
        ("1", "snapshot"),
        ("1", "deleted"),
        (STREAM_KEY, "dropped"),
        (STREAM_KEY, "gap"),
        ("2", "snapshot"),
    ]


async def test_a_file_renaming_into_a_captured_collection_records_a_gap_at_the_rename(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def line(n: int, body: dict[str, Any]) -> str:
        change = {"_id": {"_data": f"82{n:032X}"}, "clusterTime": Timestamp(1_770_000_000, n)}
        return json_util.dumps({**change, **body})

    orders = {"db": "shop", "coll": "orders"}
    lines = [
        line(1, {"operationType": "insert", "ns": orders, "documentKey": {"_id": 1},
                 "fullDocument": {"_id": 1, "status": "paid"}}),
        line(2, {"operationType": "rename", "ns": {"db": "shop", "coll": "orders_tmp"},
                 "to": orders}),
        line(3, {"operationType": "update", "ns": orders, "documentKey": {"_id": 5},
                 "updateDescription": {"updatedFields": {"status": "shipped"},
                                       "removedFields": []}}),
    ]  # fmt: skip
    path = tmp_path / "changes.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def from_file() -> Ingester:
        s = settings(source=f"ndjson:{path}")
        source = NdjsonChangeSource(path, collections=s.collections, batch_size=2)
        return Ingester(store=store, source=source, settings=s, clock=FakeClock())

    with caplog.at_level(logging.WARNING, logger="eventstore.ingester"):
        stats = await from_file().run(until_idle=True)
    assert stats.gaps == 1
    assert f"{REASON}: its documents were never recorded as created" in caplog.text
    events = await assert_log_intact(store)
    assert [(e.entity_key, e.version, e.type, e.inferred) for e in events] == [
        ("1", 1, "created", False),
        ("1", 2, "deleted", True),
        (STREAM_KEY, 1, "dropped", False),
        (STREAM_KEY, 2, "gap", False),
        ("5", 1, "updated", False),  # onto a document the file never showed (a finding)
    ]
    gap = events[3]
    at = Timestamp(1_770_000_000, 2)
    assert gap.id == f"gap:orders:{at.time}.{at.inc}"
    assert gap.document is not None
    assert (gap.document["from"], gap.document["to"], gap.document["reason"]) == (at, at, REASON)
    # Read again from the start (a lost checkpoint): every change is found stored, nothing
    # is recorded twice.
    await store.checkpoints.put(Checkpoint(name=ROLE, head=await store.events.head()))
    stats = await from_file().run(until_idle=True)
    assert (stats.recorded, stats.duplicates_skipped) == (0, 2)
    assert len(await all_events(store)) == 5


def feed_change(feed: MemoryChangeFeed, op: str) -> Any:
    """The feed's last change of this operation type."""
    entries = [feed.entry_at(p) for p in range(feed.horizon + 1, feed.position + 1)]
    return [e.event for e in entries if e and e.event["operationType"] == op][-1]
