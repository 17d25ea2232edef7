"""An `_id` is one entity by its value, as MongoDB holds it (eventstore.keys.typed_key).

MongoDB compares numbers by value, in its unique `_id` index too: an order deleted as
`_id: 1` and inserted again as `_id: 1.0` by another client (or `Decimal128("1")`) is the
same `_id` there, and one entity here, whose versions go on, on both adapters. On a
server, the log's unique (stream, entity_id, version) index compares the same way: two
entities there would have collided at version 1 and stopped capture.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bson import Decimal128, Int64

from eventstore.clock import FakeClock
from eventstore.ingester import Ingester
from eventstore.keys import typed_key
from eventstore.mongo.store import MongoStore
from eventstore.ports import Store
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.ndjson import NdjsonChangeSource
from eventstore.verification import verify_entity, verify_stream
from tests.integration.ingest_helpers import (
    all_events,
    assert_log_intact,
    ingester,
    settings,
    start_from_the_beginning,
)


async def test_an_id_written_as_int_double_and_decimal_is_one_entity(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 1, "status": "new"})
    await orders.delete_one({"_id": 1})
    await orders.insert_one({"_id": 1.0, "status": "again"})
    await orders.update_one({"_id": 1.0}, {"$set": {"status": "paid"}})
    await orders.insert_one({"_id": Int64(2), "status": "other"})
    await ingester(store, feed, clock).run(until_idle=True)
    await check_one_entity(store, [int, int, float, float, Int64])


async def check_one_entity(store: Store, types: list[type]) -> None:
    """Order 1's events are one entity's, versions 1-4 then order 2's, both chains intact."""
    events = await assert_log_intact(store)  # both chains verify
    assert [(typed_key(e.entity_id), e.version, e.type) for e in events] == [
        ("int:1", 1, "created"),
        ("int:1", 2, "deleted"),
        ("int:1", 3, "created"),
        ("int:1", 4, "updated"),
        ("int:2", 1, "created"),
    ]
    # each event keeps the `_id` as it was written, and one key
    assert [type(e.entity_id) for e in events] == types
    assert [e.entity_key for e in events] == ["1", "1", "1", "1", "2"]
    # A server compares Decimal128 with other numbers by value; mongomock compares it with
    # none, so there reads by `_id` neither find a Decimal128-written version nor find by one.
    mock = isinstance(store, MongoStore)
    if not (mock and Decimal128 in types):
        for value in (1, 1.0) if mock else (1, 1.0, Decimal128("1")):
            history = await store.events.read_entity("orders", value)
            assert [e.version for e in history] == [1, 2, 3, 4]
            verdict = await verify_entity(store.events, "orders", value)
            assert verdict is not None and verdict.valid and verdict.events_checked == 4
    stream = await verify_stream(store.events, "orders")
    assert stream.valid and stream.entities_checked == 2
    (stats,) = await store.events.streams()
    assert (stats.entities, stats.events) == (2, 5)
    listed = await store.events.entities("orders", limit=10)
    assert [(typed_key(e.entity_id), e.version, e.exists) for e in listed] == [
        ("int:2", 1, True),
        ("int:1", 4, True),
    ]
    assert len(await all_events(store)) == 5


def change(n: int, op: str, key: dict[str, str], doc: dict[str, Any] | None = None) -> str:
    line: dict[str, Any] = {
        "_id": {"_data": f"{n:04d}"},
        "operationType": op,
        "clusterTime": {"$timestamp": {"t": 1770000000 + n, "i": 1}},
        "ns": {"db": "shop", "coll": "orders"},
        "documentKey": {"_id": key},
    }
    if op == "insert":
        line["fullDocument"] = {"_id": key, **(doc or {})}
    if op == "update":
        line["updateDescription"] = {"updatedFields": doc, "removedFields": []}
    return json.dumps(line)


async def test_a_file_of_changes_naming_the_id_as_int_double_and_decimal_is_one_entity(
    store: Store, tmp_path: Path
) -> None:
    """Decimal128 `_id`s come from a file (the memory feed's collections cannot hold one)."""
    one, double, decimal = {"$numberInt": "1"}, {"$numberDouble": "1.0"}, {"$numberDecimal": "1.00"}
    path = tmp_path / "changes.ndjson"
    lines = [
        change(1, "insert", one, {"status": "new"}),
        change(2, "delete", double),
        change(3, "insert", decimal, {"status": "again"}),
        change(4, "update", double, {"status": "paid"}),
        change(5, "insert", {"$numberLong": "2"}, {"status": "other"}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    s = settings(source=f"ndjson:{path}")
    source = NdjsonChangeSource(path, collections=s.collections, batch_size=2)
    await Ingester(store=store, source=source, settings=s, clock=FakeClock()).run(until_idle=True)
    await check_one_entity(store, [int, float, Decimal128, float, Int64])


async def test_a_file_read_to_its_end_is_idle_its_capture_lag_zero(
    store: Store, tmp_path: Path
) -> None:
    # The README: capture's lag_seconds is 0 while idle. A file's changes are of 2026-02;
    # read to its end, capture reported now minus that (308 days) for as long as it ran.
    path = tmp_path / "changes.ndjson"
    path.write_text(change(1, "insert", {"$numberInt": "1"}, {"status": "new"}) + "\n")
    s = settings(source=f"ndjson:{path}")
    clock = FakeClock()
    clock.advance(86_400 * 400)
    source = NdjsonChangeSource(path, collections=s.collections)
    capture = Ingester(store=store, source=source, settings=s, clock=clock)
    await capture.run()  # a finite source: the run ends with the file
    assert capture.last_cluster_time is not None
    assert (capture.idle, capture.lag_seconds(clock.now())) == (True, 0.0)
