"""Changes that cannot be interpreted, through the ingester: BAD_INPUT=stop and =record, per source.

`stop`: what came before is stored and checkpointed, nothing after; a fixed input
resumes exactly there. `record`: a `rejected` stream event in the change's place,
de-duplicated on re-reading, chained like any other event; verify stays valid.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bson import Timestamp, json_util

from eventstore.badinput import BadChange, raw_sha256
from eventstore.clock import FakeClock
from eventstore.ingester import Ingester
from eventstore.model import (
    REJECTED,
    SOURCE_STREAM,
    STREAM_ENTITY_ID,
    STREAM_KEY,
    ChangeBatch,
    Checkpoint,
    EventQuery,
    ResumePoint,
)
from eventstore.ports import ChangeSource, ChangeStream, Store
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.sources.ndjson import NdjsonChangeSource
from eventstore.verification import verify_entity, verify_log, verify_stream
from projections.orders import ORDER_PROJECTIONS
from projections.runner import ProjectionRunner
from tests.integration.ingest_helpers import ROLE, all_events, assert_log_intact, settings
from tests.integration.wrapped_sources import WrappedSource

WHEN = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def token(n: int) -> dict[str, Any]:
    return {"_data": f"82{n:032X}"}


def change(n: int) -> dict[str, Any]:
    """Change n: an insert of order n (odd n) or an update of order n - 1 (even n)."""
    doc: dict[str, Any] = {
        "_id": token(n),
        "clusterTime": Timestamp(1_770_000_000, n),
        "wallTime": WHEN,
        "ns": {"db": "shop", "coll": "orders"},
    }
    if n % 2:
        doc |= {
            "operationType": "insert",
            "documentKey": {"_id": n},
            "fullDocument": {"_id": n, "status": "pending", "updatedBy": "alice"},
        }
    else:
        doc |= {
            "operationType": "update",
            "documentKey": {"_id": n - 1},
            "updateDescription": {"updatedFields": {"status": "paid"}, "removedFields": []},
        }
    return doc


def line(n: int) -> str:
    return json_util.dumps(change(n), json_options=json_util.RELAXED_JSON_OPTIONS)


# Change 52 (an update) without its updateDescription; it keeps its resume token.
NO_UPDATE_DESCRIPTION = json_util.dumps(
    {k: v for k, v in change(52).items() if k != "updateDescription"},
    json_options=json_util.RELAXED_JSON_OPTIONS,
)
NOT_JSON = '{"_id": {"_data": "82zz"}, "operationType": "insert", oops'


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def ndjson_ingester(store: Store, path: Path, *, policy: str, batch_size: int = 7) -> Ingester:
    s = settings(source=f"ndjson:{path}", bad_input=policy, batch_size=batch_size)
    source = NdjsonChangeSource(path, collections=s.collections, batch_size=batch_size)
    return Ingester(store=store, source=source, settings=s, clock=FakeClock(WHEN))


async def rejected_events(store: Store) -> list[Any]:
    return await store.events.query(EventQuery(types=(REJECTED,)), limit=100)


# -- ndjson -----------------------------------------------------------------------------------


async def test_stop_records_the_lines_before_a_bad_one_and_a_fixed_file_resumes_there(
    store: Store, tmp_path: Path
) -> None:
    lines = [line(n) for n in range(1, 101)]
    lines[50] = NOT_JSON  # line 51
    path = write(tmp_path / "changes.ndjson", lines)

    with pytest.raises(BadChange) as raised:
        await ndjson_ingester(store, path, policy="stop").run(until_idle=True)
    assert str(raised.value).startswith("ndjson: line 51: not valid JSON (")
    assert (raised.value.source, raised.value.position) == ("ndjson", "line 51")
    assert [e.id for e in await all_events(store)] == [token(n)["_data"] for n in range(1, 51)]
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None and cp.token == token(50)  # the last good line, not past the bad one
    assert await store.leases.get(ROLE) is None  # released: a fixed file may resume at once

    # Run again unfixed: the same error, nothing recorded twice, nothing after it.
    with pytest.raises(BadChange, match=r"^ndjson: line 51: "):
        await ndjson_ingester(store, path, policy="stop").run(until_idle=True)
    assert len(await all_events(store)) == 50

    lines[50] = line(51)
    write(path, lines)
    await ndjson_ingester(store, path, policy="stop").run(until_idle=True)
    events = await assert_log_intact(store)
    assert [e.id for e in events] == [token(n)["_data"] for n in range(1, 101)]


async def test_stop_at_the_first_line_of_a_batch_keeps_the_position_of_the_batch_before(
    store: Store, tmp_path: Path
) -> None:
    lines = [line(n) for n in range(1, 61)]
    lines[49] = NOT_JSON  # line 50: the first of the eighth batch of 7, so nothing is kept of it
    path = write(tmp_path / "changes.ndjson", lines)
    with pytest.raises(BadChange, match=r"^ndjson: line 50: not valid JSON \("):
        await ndjson_ingester(store, path, policy="stop").run(until_idle=True)
    assert [e.id for e in await all_events(store)] == [token(n)["_data"] for n in range(1, 50)]
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None
    # Still the position of line 49, the last good one: a restart reads line 50 again.
    assert (cp.token, cp.last_cluster_time) == (token(49), Timestamp(1_770_000_000, 49))
    assert cp.invalidated is False


async def test_a_rejected_change_last_in_its_batch_moves_the_position_past_it(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "changes.ndjson", [line(1), NO_UPDATE_DESCRIPTION])
    capture = ndjson_ingester(store, path, policy="record")
    with caplog.at_level(logging.WARNING, logger="eventstore.ingester"):
        stats = await capture.run(until_idle=True)
    assert (stats.recorded, stats.rejected) == (2, 1)
    # The operator's log names the change and why it was rejected.
    assert [r.getMessage() for r in caplog.records if r.name == "eventstore.ingester"] == [
        "rejected a change that cannot be interpreted: "
        "ndjson: line 2: update without updateDescription"
    ]
    # The rejected update (change 52) keeps its token and its cluster time: both are the
    # checkpoint's now, and capture's lag is measured from it.
    rejected = (await all_events(store))[-1]
    assert rejected.type == REJECTED and rejected.cluster_time == Timestamp(1_770_000_000, 52)
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None
    assert (cp.token, cp.last_cluster_time) == (token(52), Timestamp(1_770_000_000, 52))
    assert cp.invalidated is False
    assert capture.last_cluster_time == Timestamp(1_770_000_000, 52)


async def test_stop_on_the_first_line_records_nothing(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "changes.ndjson", ["[1]", line(1)])
    with pytest.raises(BadChange, match=r"^ndjson: line 1: not a JSON object$"):
        await ndjson_ingester(store, path, policy="stop").run(until_idle=True)
    assert await all_events(store) == []
    assert await store.checkpoints.get(ROLE) is None


async def test_record_puts_a_rejected_event_in_the_place_of_each_bad_line(
    store: Store, tmp_path: Path
) -> None:
    lines = [line(n) for n in range(1, 101)]
    lines[51] = NO_UPDATE_DESCRIPTION
    lines.insert(20, NOT_JSON)  # line 21; change n is on line n + 1 from here on
    lines.append('{"operationType": "insert", "ns": {"db": "shop", "coll": "orders"}}')  # 102
    path = write(tmp_path / "changes.ndjson", lines)

    stats = await ndjson_ingester(store, path, policy="record").run(until_idle=True)
    assert stats.rejected == 3

    events = await assert_log_intact(store)
    assert len(events) == 102  # 99 good changes and 3 rejected, each in its place
    rejected = [e for e in events if e.type == REJECTED]
    assert [e.seq for e in rejected] == [21, 53, 102]
    by_line = {e.document["position"]: e for e in rejected if e.document is not None}
    not_json, no_ud, no_token = by_line["line 21"], by_line["line 53"], by_line["line 102"]
    assert not_json.stream == SOURCE_STREAM and no_ud.stream == no_token.stream == "orders"
    for e, text in ((not_json, NOT_JSON), (no_ud, NO_UPDATE_DESCRIPTION), (no_token, lines[-1])):
        assert e.id == f"rejected:{sha(text)}:{e.document['position']}"  # type: ignore[index]
        assert e.entity_key == STREAM_KEY and e.entity_id is None and e.is_stream_event
        assert e.document is not None and set(e.document) == {
            "source",
            "position",
            "reason",
            "sha256",
        }
        assert e.document["source"] == "ndjson" and e.document["sha256"] == sha(text)
    assert not_json.document is not None and not_json.document["reason"].startswith(
        "not valid JSON ("
    )
    assert no_ud.document == {
        "source": "ndjson",
        "position": "line 53",
        "reason": "update without updateDescription",
        "sha256": sha(NO_UPDATE_DESCRIPTION),
    }
    assert no_token.document is not None
    assert no_token.document["reason"] == "no resume token (_id._data)"
    # The bad update's own cluster time and wall time place it; the tokenless one the reader's.
    assert no_ud.cluster_time == Timestamp(1_770_000_000, 52) and no_ud.occurred_at == WHEN
    assert [e.version for e in rejected if e.stream == "orders"] == [1, 2]
    # The good changes around them are all there, in file order.
    good = [e.id for e in events if e.type != REJECTED]
    assert good == [token(n)["_data"] for n in range(1, 101) if n != 52]
    # The position advanced past the rejected update (its token); the tokenless last
    # line leaves it at line 101's.
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None and cp.token == token(100)

    # verify: the log, each stream (the $stream pseudo-entities included), one entity.
    head = await store.events.head()
    log_verdict = await verify_log(store.events, head)
    assert log_verdict.valid and log_verdict.events_checked == 102
    for stream in ("orders", SOURCE_STREAM):
        verdict = await verify_stream(store.events, stream)
        assert verdict.valid and verdict.invalid == []
    entity = await verify_entity(store.events, "orders", STREAM_ENTITY_ID)
    assert entity is not None and entity.valid and entity.events_checked == 2


async def test_rereading_the_same_file_records_each_rejected_line_once(
    store: Store, tmp_path: Path
) -> None:
    lines = [line(n) for n in range(1, 31)]
    lines[9] = NOT_JSON
    lines.append("not json at the end")  # the last line: the checkpoint stays before it
    path = write(tmp_path / "changes.ndjson", lines)
    await ndjson_ingester(store, path, policy="record").run(until_idle=True)
    first = await all_events(store)
    assert len(first) == 31

    # The same file again from the checkpoint: the last (tokenless) line is read again.
    stats = await ndjson_ingester(store, path, policy="record").run(until_idle=True)
    assert stats.recorded == 0 and stats.duplicates_skipped == 1
    # And from the very start (a lost checkpoint): every line read again, nothing recorded.
    await store.checkpoints.put(Checkpoint(name=ROLE, head=(await store.events.head())))
    stats = await ndjson_ingester(store, path, policy="record", batch_size=4).run(until_idle=True)
    assert stats.recorded == 0 and stats.duplicates_skipped == 31
    assert await assert_log_intact(store) == first
    assert len(await rejected_events(store)) == 2


async def test_a_line_repeated_within_one_batch_is_recorded_once(
    store: Store, tmp_path: Path
) -> None:
    # An export concatenated with an overlap: change 2 twice in a row, in the same batch.
    path = write(tmp_path / "changes.ndjson", [line(1), line(2), line(2), line(3)])
    stats = await ndjson_ingester(store, path, policy="record").run(until_idle=True)
    assert (stats.recorded, stats.duplicates_skipped) == (3, 1)
    events = await assert_log_intact(store)
    assert [(e.id, e.version) for e in events] == [
        (token(1)["_data"], 1),
        (token(2)["_data"], 2),
        (token(3)["_data"], 1),
    ]


async def test_a_rename_without_a_target_or_a_wall_time_is_recorded(
    store: Store, tmp_path: Path
) -> None:
    bare = json_util.dumps(
        {
            "_id": token(2),
            "operationType": "rename",
            "ns": {"db": "shop", "coll": "orders"},
            "clusterTime": Timestamp(1_770_000_000, 2),
        }
    )
    path = write(tmp_path / "changes.ndjson", [line(1), bare])
    await ndjson_ingester(store, path, policy="stop").run(until_idle=True)
    events = await assert_log_intact(store)
    assert [e.type for e in events] == ["created", "deleted", "renamed"]
    renamed = events[2]
    assert (renamed.id, renamed.stream) == ("renamed:" + token(2)["_data"], "orders")
    assert renamed.document == {"to": None}  # MongoDB names the target; this source did not
    # without a wallTime, the time of its cluster time
    assert renamed.occurred_at == datetime.fromtimestamp(1_770_000_000, UTC)


async def test_a_rename_without_its_cluster_time_is_bad_input(store: Store, tmp_path: Path) -> None:
    # Its inferred deletions are marked by its cluster time, as a drop's are.
    bare = json_util.dumps(
        {"_id": token(2), "operationType": "rename", "ns": {"db": "shop", "coll": "orders"}}
    )
    path = write(tmp_path / "changes.ndjson", [line(1), bare])
    with pytest.raises(BadChange, match="rename without a clusterTime timestamp"):
        await ndjson_ingester(store, path, policy="stop").run(until_idle=True)
    events = await assert_log_intact(store)
    assert [e.type for e in events] == ["created"]  # what came before it is stored


async def test_projections_ignore_rejected_events(store: Store, tmp_path: Path) -> None:
    lines = [line(n) for n in range(1, 11)]
    lines[3] = NOT_JSON  # order 3's update
    lines[5] = "[]"  # order 5's update
    path = write(tmp_path / "changes.ndjson", lines)
    await ndjson_ingester(store, path, policy="record").run(until_idle=True)
    summary = next(p for p in ORDER_PROJECTIONS if p.name == "order_summary")
    runner = ProjectionRunner(store, summary, clock=FakeClock(WHEN), batch_size=3)
    await runner.run(until_caught_up=True)
    rows = await store.read_models.query(summary.collection, filters={}, limit=100)
    # Every order has its row; the rejected events touched none and stopped nothing.
    assert sorted(r["_id"] for r in rows) == [f"int:{n}" for n in (1, 3, 5, 7, 9)]
    status = {r["_id"]: r["status"] for r in rows}
    assert status == {
        "int:1": "paid",
        "int:3": "pending",
        "int:5": "pending",
        "int:7": "paid",
        "int:9": "paid",
    }
    assert await runner.position() == (await store.events.head()).seq


# -- the memory feed (simulator) --------------------------------------------------------------


class Corrupting(WrappedSource):
    """The memory feed's source with one change broken on the way (as a buggy server might)."""

    def __init__(
        self,
        inner: ChangeSource,
        broken_token: dict[str, Any],
        field: str,
        *,
        batch_tokens: bool = True,
        copies: int = 1,
    ) -> None:
        super().__init__(inner)
        self.broken_token = broken_token
        self.field = field
        # False: batches carry no resume token, as from a server without postBatchResumeToken.
        self.batch_tokens = batch_tokens
        self.copies = copies  # the broken change, sent this many times in a row
        self.sent: dict[str, Any] | None = None

    def wrap(self, stream: ChangeStream) -> ChangeStream:
        return _CorruptingStream(self, stream)


class _CorruptingStream:
    def __init__(self, source: Corrupting, inner: ChangeStream) -> None:
        self.source = source
        self.inner = inner

    async def next_batch(self) -> ChangeBatch | None:
        batch = await self.inner.next_batch()
        if batch is None:
            return None
        changes = []
        for c in batch.changes:
            if c["_id"] == self.source.broken_token:
                c = {k: v for k, v in c.items() if k != self.source.field}
                self.source.sent = c
                changes.extend([c] * (self.source.copies - 1))
            changes.append(c)
        return ChangeBatch(
            changes=changes,
            resume_token=batch.resume_token if self.source.batch_tokens else None,
            cluster_time=batch.cluster_time,
        )


async def feed_with_orders(clock: FakeClock) -> tuple[MemoryChangeFeed, list[dict[str, Any]]]:
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    for n in range(1, 4):
        await orders.insert_one({"_id": n, "status": "pending"})
        await orders.update_one({"_id": n}, {"$set": {"status": "paid"}})
    tokens = [feed.entry_at(p).event["_id"] for p in range(1, feed.position + 1)]  # type: ignore[union-attr]
    return feed, tokens


def memory_ingester(store: Store, source: ChangeSource, clock: FakeClock, policy: str) -> Ingester:
    return Ingester(
        store=store,
        source=source,
        settings=settings(bad_input=policy, batch_size=100),
        clock=clock,
    )


# The types logged from `feed_with_orders` when its fourth change is rejected under "record".
ONE_REJECTED = ["created", "updated", "created", REJECTED, "created", "updated"]


@pytest.mark.parametrize("field", ["updateDescription", "documentKey"])
async def test_the_memory_feed_under_record(store: Store, clock: FakeClock, field: str) -> None:
    feed, tokens = await feed_with_orders(clock)
    await store.checkpoints.put(Checkpoint(name=ROLE, start_at=Timestamp(1, 0)))
    source = Corrupting(feed.source(["orders"], max_await=0.01), tokens[3], field)
    await memory_ingester(store, source, clock, "record").run(until_idle=True)

    events = await assert_log_intact(store)
    assert [e.type for e in events] == ONE_REJECTED
    rejected = events[3]
    assert source.sent is not None
    position = f"after resume token {tokens[2]['_data']}"
    assert rejected.id == f"rejected:{raw_sha256(source.sent)}:{position}"
    reason = "update without updateDescription" if field != "documentKey" else "no documentKey"
    assert rejected.document == {
        "source": "memory",
        "position": position,
        "reason": reason,
        "sha256": raw_sha256(source.sent),
    }
    assert rejected.stream == "orders"
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None and cp.token == tokens[-1]


async def test_under_record_a_rejected_change_last_in_a_batch_without_its_token_gives_its_own(
    store: Store, clock: FakeClock
) -> None:
    feed, tokens = await feed_with_orders(clock)
    await store.checkpoints.put(Checkpoint(name=ROLE, start_at=Timestamp(1, 0)))
    source = Corrupting(
        feed.source(["orders"], max_await=0.01), tokens[-1], "updateDescription", batch_tokens=False
    )
    await memory_ingester(store, source, clock, "record").run(until_idle=True)
    events = await assert_log_intact(store)
    assert [e.type for e in events][-2:] == ["created", REJECTED]
    # No batch token to fall back on: the position is the rejected change's own token.
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None and cp.token == tokens[-1]
    # Restarted from there, nothing is read or recorded again.
    stats = await memory_ingester(store, source, clock, "record").run(until_idle=True)
    assert (stats.recorded, stats.duplicates_skipped) == (0, 0)


async def test_under_record_a_tokenless_change_sent_twice_in_a_row_is_rejected_once(
    store: Store, clock: FakeClock
) -> None:
    feed, tokens = await feed_with_orders(clock)
    await store.checkpoints.put(Checkpoint(name=ROLE, start_at=Timestamp(1, 0)))
    # Without its token, both copies stand at the same position with the same bytes: one id.
    source = Corrupting(feed.source(["orders"], max_await=0.01), tokens[3], "_id", copies=2)
    stats = await memory_ingester(store, source, clock, "record").run(until_idle=True)
    assert (stats.rejected, stats.duplicates_skipped) == (1, 1)
    events = await assert_log_intact(store)
    assert [e.type for e in events] == ONE_REJECTED


async def test_the_memory_feed_under_stop(store: Store, clock: FakeClock) -> None:
    feed, tokens = await feed_with_orders(clock)
    await store.checkpoints.put(Checkpoint(name=ROLE, start_at=Timestamp(1, 0)))
    source = Corrupting(feed.source(["orders"], max_await=0.01), tokens[3], "updateDescription")
    with pytest.raises(BadChange) as raised:
        await memory_ingester(store, source, clock, "stop").run(until_idle=True)
    assert str(raised.value) == (
        f"memory: after resume token {tokens[2]['_data']}: update without updateDescription"
    )
    assert [e.id for e in await all_events(store)] == [t["_data"] for t in tokens[:3]]
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None and cp.token == tokens[2]
    # The fault gone (the source delivers the change whole again), capture resumes exactly there.
    await memory_ingester(store, feed.source(["orders"], max_await=0.01), clock, "stop").run(
        until_idle=True
    )
    assert [e.id for e in await assert_log_intact(store)] == [t["_data"] for t in tokens]


async def test_under_record_a_batch_of_only_a_tokenless_bad_line_is_stored(
    store: Store, tmp_path: Path
) -> None:
    # Batches of 7: the eighth line, alone in the second batch, carries no token, so the
    # batch's position is the first batch's: only its rejected event makes it worth storing.
    path = write(tmp_path / "changes.ndjson", [*(line(n) for n in range(1, 8)), "not json"])
    stats = await ndjson_ingester(store, path, policy="record").run(until_idle=True)
    assert (stats.recorded, stats.rejected, stats.batches) == (8, 1, 2)
    assert stats.caught_up is True  # the file's end
    events = await assert_log_intact(store)
    assert [e.type for e in events] == [*(["created", "updated"] * 3), "created", REJECTED]
    assert events[-1].document is not None and events[-1].document["position"] == "line 8"
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None and cp.token == token(7) and cp.head.seq == 8


async def test_under_stop_an_invalidate_before_a_bad_change_in_one_batch_is_handled_first(
    store: Store, clock: FakeClock
) -> None:
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 1, "status": "pending"})
    await feed.drop_database()  # drop, dropDatabase, invalidate
    await orders.insert_one({"_id": 2, "status": "pending"})
    await orders.update_one({"_id": 2}, {"$set": {"status": "paid"}})
    tokens = [feed.entry_at(p).event["_id"] for p in range(1, feed.position + 1)]  # type: ignore[union-attr]
    await store.checkpoints.put(Checkpoint(name=ROLE, start_at=Timestamp(1, 0)))
    source = Corrupting(feed.source(["orders"], max_await=0.01), tokens[-1], "updateDescription")
    # One batch holds all: up to the invalidate it is stored, then the stream restarts after
    # it and stops at the bad update with the change's own error.
    with pytest.raises(BadChange) as raised:
        await memory_ingester(store, source, clock, "stop").run(until_idle=True)
    assert str(raised.value) == (
        f"memory: after resume token {tokens[-2]['_data']}: update without updateDescription"
    )
    events = await assert_log_intact(store)
    assert [(e.entity_key, e.type) for e in events] == [
        ("1", "created"),
        ("1", "deleted"),
        (STREAM_KEY, "dropped"),
        ("2", "created"),
    ]
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None and (cp.token, cp.invalidated) == (tokens[-2], False)


async def test_unknown_change_types_stay_skipped_under_stop(store: Store, tmp_path: Path) -> None:
    future = {
        "_id": token(3),
        "operationType": "reshardEverything",
        "ns": {"db": "shop", "coll": "orders"},
        "documentKey": "whatever",
    }
    lines = [line(1), line(2), json_util.dumps(future), line(5)]
    path = write(tmp_path / "changes.ndjson", lines)
    stats = await ndjson_ingester(store, path, policy="stop").run(until_idle=True)
    assert stats.unknown_skipped == 1 and stats.rejected == 0
    assert [e.id for e in await all_events(store)] == [token(n)["_data"] for n in (1, 2, 5)]


async def test_a_restarted_ingester_chains_a_rejected_event_after_the_streams_stored_ones(
    store: Store, clock: FakeClock
) -> None:
    # A fresh ingester has no `$stream` head cached: the rejection's stream head is loaded
    # from the store, so the rejected event is the stream's version 2 (after the drop).
    feed = MemoryChangeFeed(clock=clock)
    await store.checkpoints.put(Checkpoint(name=ROLE, start_at=Timestamp(1, 0)))
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 1, "status": "pending"})
    await feed.drop_collection("orders")
    plain = feed.source(["orders"], max_await=0.01)
    await memory_ingester(store, plain, clock, "record").run(until_idle=True)
    await orders.insert_one({"_id": 2, "status": "pending"})
    broken = feed.entry_at(feed.position).event["_id"]  # type: ignore[union-attr]
    source = Corrupting(feed.source(["orders"], max_await=0.01), broken, "fullDocument")
    await memory_ingester(store, source, clock, "record").run(until_idle=True)
    events = await assert_log_intact(store)
    assert [(e.entity_key, e.type, e.version) for e in events] == [
        ("1", "created", 1),
        ("1", "deleted", 2),
        (STREAM_KEY, "dropped", 1),
        (STREAM_KEY, REJECTED, 2),
    ]
    assert events[-1].document is not None
    assert events[-1].document["reason"] == "insert without fullDocument"


# -- a source that sends raw batches as they are ------------------------------------------------


class Scripted:
    """A finite source sending these batches of raw changes, without origins or batch tokens
    (a server gone wrong): each change is placed by what came before it."""

    def __init__(self, batches: list[list[dict[str, Any]]]) -> None:
        self.batches = batches

    @property
    def name(self) -> str:
        return "scripted"

    @property
    def can_snapshot(self) -> bool:
        return False

    @property
    def finite(self) -> bool:
        return True

    async def cluster_time(self) -> Timestamp:
        raise AssertionError("a scripted source is never snapshotted")

    def scan(self, collection: str, *, batch_size: int) -> AsyncIterator[list[dict[str, Any]]]:
        raise AssertionError("a scripted source is never snapshotted")

    def watch(self, resume: ResumePoint | None) -> AbstractAsyncContextManager[ChangeStream]:
        return self._watch()

    @asynccontextmanager
    async def _watch(self) -> AsyncIterator[ChangeStream]:
        yield _ScriptedStream(list(self.batches))


class _ScriptedStream:
    def __init__(self, batches: list[list[dict[str, Any]]]) -> None:
        self.batches = batches

    async def next_batch(self) -> ChangeBatch | None:
        if not self.batches:
            return None
        return ChangeBatch(changes=self.batches.pop(0), resume_token=None)


T1, T2, T3 = (Timestamp(1_770_000_000, n) for n in (1, 2, 3))


async def test_tokenless_changes_are_placed_by_the_cluster_time_before_them(
    store: Store, clock: FakeClock
) -> None:
    # No resume token yet: the first is at the start, the second after the first's cluster
    # time, the third (readable by the checks, not as a change) after the second's. A
    # wallTime that is not a date is not taken: the rejected event occurred at clusterTime.
    orders = {"db": "shop", "coll": "orders"}
    first = {"operationType": "insert", "ns": orders, "clusterTime": T1, "wallTime": "today"}
    second = {"operationType": "delete", "ns": orders, "clusterTime": T2}
    # A drop is not type-checked field by field; its txnNumber cannot be read as a number.
    third = {"_id": token(3), "operationType": "drop", "ns": orders, "clusterTime": T3}
    third["txnNumber"] = "seven"
    await store.checkpoints.put(Checkpoint(name=ROLE, start_at=Timestamp(1, 0)))
    source = Scripted([[first, second], [third]])
    ing = Ingester(store=store, source=source, settings=settings(bad_input="record"), clock=clock)
    stats = await ing.run(until_idle=True)
    assert stats.rejected == 3
    events = await assert_log_intact(store)
    assert [(e.stream, e.entity_key, e.type, e.version) for e in events] == [
        ("orders", STREAM_KEY, REJECTED, 1),
        ("orders", STREAM_KEY, REJECTED, 2),
        (SOURCE_STREAM, STREAM_KEY, REJECTED, 1),  # not judged as the stream's change
    ]
    documents = [e.document for e in events]
    assert documents == [
        {
            "source": "scripted",
            "position": "at the start of the stream",
            "reason": "no resume token (_id._data)",
            "sha256": raw_sha256(first),
        },
        {
            "source": "scripted",
            "position": "after cluster time 1770000000.1",
            "reason": "no resume token (_id._data)",
            "sha256": raw_sha256(second),
        },
        {
            "source": "scripted",
            "position": "after cluster time 1770000000.2",
            "reason": "cannot be read as a change event (ValueError)",
            "sha256": raw_sha256(third),
        },
    ]
    second_of_2026 = datetime.fromtimestamp(1_770_000_000, UTC)
    assert [e.occurred_at for e in events] == [second_of_2026] * 3
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None and cp.token == token(3)


@pytest.mark.parametrize("policy", ["stop", "record"])
async def test_a_value_bson_cannot_hold_is_bad_input_not_a_failed_capture(
    store: Store, tmp_path: Path, policy: str
) -> None:
    # An integer beyond 64 bits failed the event's hash (BSON) at sealing: capture failed
    # with a traceback and the good lines of its batch before it were lost.
    big = change(3)
    big["fullDocument"]["total"] = 2**70
    lines = [line(1), line(2), json_util.dumps(big), line(4), line(5), line(6)]
    path = write(tmp_path / "changes.ndjson", lines)
    if policy == "stop":
        with pytest.raises(BadChange, match=r"^ndjson: line 3: not a change: an integer beyond"):
            await ndjson_ingester(store, path, policy=policy).run(until_idle=True)
        events = await assert_log_intact(store)
        assert [e.id for e in events] == [token(1)["_data"], token(2)["_data"]]
    else:
        await ndjson_ingester(store, path, policy=policy).run(until_idle=True)
        events = await assert_log_intact(store)
        kinds = ["created", "updated", "rejected", "updated", "created", "updated"]
        assert [e.type for e in events] == kinds
        assert events[2].document is not None
        assert events[2].document["position"] == "line 3"
