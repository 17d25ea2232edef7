"""The ndjson change source: Extended JSON lines, filtering, batches, malformed lines, resuming, stdin."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bson import Decimal128, Int64, ObjectId, Timestamp, json_util
from bson.json_util import CANONICAL_JSON_OPTIONS, RELAXED_JSON_OPTIONS

from eventstore.badinput import DEEPER_THAN_MONGODB, MAX_CHANGE_DEPTH, deeper_than
from eventstore.clock import FakeClock
from eventstore.ingester import Ingester
from eventstore.memory.store import MemoryStore
from eventstore.model import ChangeEvent, ResumePoint
from eventstore.ports import ChangeStream, HistoryLost, SourceError
from eventstore.sources.ndjson import DUPLICATE_KEY, NdjsonChangeSource
from tests.integration.ingest_helpers import settings

WHEN = datetime(2026, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)
OID = ObjectId("65f0c0ffee0000000000abcd")


def change(n: int, coll: str = "orders", op: str = "insert", db: str = "legacy") -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": {"_data": f"82{n:032X}"},
        "operationType": op,
        "clusterTime": Timestamp(1_700_000_000, n),
        "wallTime": WHEN,
        "ns": {"db": db, "coll": coll},
        "documentKey": {"_id": n},
    }
    if op == "insert":
        doc["fullDocument"] = {"_id": n, "total": Decimal128("9.99"), "big": Int64(2**40)}
    return doc


def lines(*changes: dict[str, Any], canonical: bool = False) -> str:
    options = CANONICAL_JSON_OPTIONS if canonical else RELAXED_JSON_OPTIONS
    return "".join(json_util.dumps(c, json_options=options) + "\n" for c in changes)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "changes.ndjson"
    path.write_text(text, encoding="utf-8")
    return path


async def batches(stream: ChangeStream) -> list[list[dict[str, Any]]]:
    out = []
    while (batch := await stream.next_batch()) is not None:
        out.append(batch.changes)
    return out


def keys(changes: list[dict[str, Any]]) -> list[Any]:
    return [c["documentKey"]["_id"] for c in changes]


@pytest.mark.parametrize("canonical", [True, False])
async def test_canonical_and_relaxed_extended_json_parse_to_bson_values(
    tmp_path: Path, canonical: bool
) -> None:
    first = change(1)
    first["fullDocument"]["ref"] = OID
    path = write(tmp_path, lines(first, canonical=canonical))
    async with NdjsonChangeSource(path, collections=["orders"]).watch(None) as stream:
        [[got]] = await batches(stream)
    assert got == first
    assert isinstance(got["clusterTime"], Timestamp)
    assert got["wallTime"] == WHEN and got["wallTime"].tzinfo is not None
    assert isinstance(got["fullDocument"]["total"], Decimal128)
    assert got["fullDocument"]["big"] == 2**40
    assert ChangeEvent.from_bson(got).token_id == f"82{1:032X}"


async def test_batches_skip_blank_lines_and_end_with_none(tmp_path: Path) -> None:
    text = "\n" + lines(change(1), change(2)) + "   \n\n" + lines(change(3), change(4), change(5))
    source = NdjsonChangeSource(write(tmp_path, text), collections=["orders"], batch_size=2)
    async with source.watch(None) as stream:
        first = await stream.next_batch()
        assert first is not None and first.resume_token == first.changes[-1]["_id"]
        rest = await batches(stream)
    assert [keys(first.changes)] + [keys(b) for b in rest] == [[1, 2], [3, 4], [5]]


async def test_only_captured_collections_and_database_events_pass(tmp_path: Path) -> None:
    text = lines(
        change(1),
        change(2, coll="carts"),
        change(3, op="drop"),
        {
            "_id": {"_data": "82" + "0" * 31 + "4"},
            "operationType": "dropDatabase",
            "ns": {"db": "legacy"},
        },
        {"_id": {"_data": "82" + "0" * 31 + "5"}, "operationType": "invalidate"},
        {"_id": {"_data": "82" + "0" * 31 + "6"}, "operationType": "futureThing"},
    )
    source = NdjsonChangeSource(write(tmp_path, text), collections=["orders"])
    async with source.watch(None) as stream:
        batch = await stream.next_batch()
        assert batch is not None
        assert await stream.next_batch() is None
    ops = [c["operationType"] for c in batch.changes]
    assert ops == ["insert", "drop", "dropDatabase", "invalidate"]
    # The position moved past the filtered last line.
    assert batch.resume_token == {"_data": "82" + "0" * 31 + "6"}


INT64 = "not a change: an integer beyond 64 bits, which MongoDB does not hold"


@pytest.mark.parametrize(
    ("bad", "unreadable"),
    [
        ("{not json", "not valid JSON (Expecting property name enclosed in double quotes"),
        ("[1, 2]", "not a JSON object"),
        ('{"a": {"$oid": "zz"}}', "not valid Extended JSON"),
        # past the JSON decoder's recursion limit, and past MongoDB's 100 levels within it
        ('{"a": ' + "[" * 5000 + "]" * 5000 + "}", DEEPER_THAN_MONGODB),
        ('{"a": ' + "[" * 150 + "]" * 150 + "}", DEEPER_THAN_MONGODB),
        ('{"operationType": "insert"}', None),
        ('{"_id": {"_data": 5}, "operationType": "insert"}', None),
        # which of the two the change meant cannot be told (nor is the key named)
        ('{"operationType": "insert", "operationType": "delete"}', DUPLICATE_KEY),
        ('{"fullDocument": {"zz": 1, "zz": 2}}', DUPLICATE_KEY),
        # What no BSON document holds (it would have failed the event's hash, and capture,
        # after the lines before it): beyond int64, a NUL in a key, a bare NaN or Infinity.
        ('{"fullDocument": {"total": 99999999999999999999}}', INT64),
        ('{"fullDocument": {"total": 9223372036854775808}}', INT64),
        ('{"fullDocument": {"total": -9223372036854775809}}', INT64),
        ('{"fullDocument": {"total": ' + "9" * 5000 + "}}", INT64),
        ('{"fullDocument": {"total": {"$numberLong": "99999999999999999999"}}}', INT64),
        ('{"fullDocument": {"z\\u0000z": 1}}', "not a change: a key with a NUL character"),
        ('{"fullDocument": {"total": NaN}}', "not a change: NaN is not JSON"),
        ('{"fullDocument": {"total": -Infinity}}', "not a change: -Infinity is not JSON"),
        # int64's ends and a NUL inside a string are BSON's
        ('{"fullDocument": {"a": 9223372036854775807, "b": -9223372036854775808}}', None),
        ('{"fullDocument": {"a": "z\\u0000z"}}', None),
    ],
)
async def test_a_malformed_line_is_passed_on_in_its_place_with_its_line_and_hash(
    tmp_path: Path, bad: str, unreadable: str | None
) -> None:
    text = lines(change(1), change(2), change(3)) + "\n" + bad + "\r\n" + lines(change(9))
    source = NdjsonChangeSource(write(tmp_path, text), collections=["orders"], batch_size=2)
    async with source.watch(None) as stream:
        first, second, third = [await stream.next_batch() for _ in range(3)]
        assert await stream.next_batch() is None
    assert first is not None and second is not None and third is not None
    assert keys(first.changes) == [1, 2]
    assert [o.position for o in first.origins or []] == ["line 1", "line 2"]
    assert keys(second.changes[:1]) == [3] and keys(third.changes) == [9]
    origin = (second.origins or [])[1]
    # Line 4 is blank: the bad line is line 5, hashed without its line ending.
    assert origin.position == "line 5"
    assert origin.sha256 == hashlib.sha256(bad.encode()).hexdigest()
    if unreadable is None:
        assert origin.unreadable is None and second.changes[1] == json.loads(bad)
    else:
        assert origin.unreadable is not None and origin.unreadable.startswith(unreadable)
        assert second.changes[1] == {}
        assert "zz" not in origin.unreadable  # the reason never repeats the input
    # The position only moves with readable tokens: the bad line leaves it at line 3's.
    assert second.resume_token == {"_data": f"82{3:032X}"}


def nested(levels: int) -> dict[str, Any]:
    """A document of exactly `levels` levels, alternating documents and arrays."""
    doc: Any = 1
    for level in range(levels - 1):
        doc = {"n": doc} if level % 2 else [doc]
    return {"_id": 1, "deep": doc}


async def test_the_deepest_change_mongodb_can_send_is_read(tmp_path: Path) -> None:
    """Documents of 100 levels (MongoDB's most), inserted, and one set inside another."""
    insert = {**change(1), "fullDocument": nested(100)}
    update = {**change(2, op="update"), "documentKey": {"_id": 1}}
    update["updateDescription"] = {"updatedFields": {"deep": nested(99)}, "removedFields": []}
    text = lines(insert, update)
    async with NdjsonChangeSource(write(tmp_path, text), collections=["orders"]).watch(
        None
    ) as stream:
        batch = await stream.next_batch()
    assert batch is not None and batch.origins is not None
    assert [o.unreadable for o in batch.origins] == [None, None]
    assert batch.changes[0]["fullDocument"] == nested(100)
    # The update leaves a document of 100 levels; as a change event it has 102.
    assert deeper_than(batch.changes[1], 101) and not deeper_than(batch.changes[1], 102)
    assert MAX_CHANGE_DEPTH >= 102


def test_deeper_than_counts_documents_and_arrays_alike() -> None:
    assert not deeper_than(1, 0) and not deeper_than("x" * 10, 0)
    assert deeper_than({}, 0) and not deeper_than({}, 1)
    for levels in (1, 2, 3, 100, 111):
        assert not deeper_than(nested(levels), levels), levels
        assert deeper_than(nested(levels), levels - 1), levels
    # a deep branch anywhere counts, not only the first
    wide = {"a": 1, "b": [1, 2, {"c": 3}], "d": {"e": nested(10)}}
    assert deeper_than(wide, 11) and not deeper_than(wide, 12)
    # bounded work on input far past the limit (and past Python's own recursion limit)
    assert deeper_than(nested(50_000), MAX_CHANGE_DEPTH)


async def test_a_line_that_is_not_utf8_is_one_unreadable_line(tmp_path: Path) -> None:
    raw = b'{"x": "\xff\xfe"}'
    path = tmp_path / "changes.ndjson"
    path.write_bytes(lines(change(1)).encode() + raw + b"\n" + lines(change(2)).encode())
    async with NdjsonChangeSource(path, collections=["orders"]).watch(None) as stream:
        batch = await stream.next_batch()
    assert batch is not None and batch.origins is not None
    assert [o.unreadable for o in batch.origins] == [None, "not valid UTF-8", None]
    assert batch.origins[1].sha256 == hashlib.sha256(raw).hexdigest()
    assert keys([batch.changes[0], batch.changes[2]]) == [1, 2]


async def test_lines_of_other_collections_are_filtered_whatever_their_shape(
    tmp_path: Path,
) -> None:
    other = {"operationType": "insert", "ns": {"db": "legacy", "coll": "carts"}}
    no_coll = {"_id": {"_data": "8209"}, "operationType": "update", "ns": {"db": "legacy"}}
    text = lines(change(1), other, no_coll, change(2))
    async with NdjsonChangeSource(write(tmp_path, text), collections=["orders"]).watch(
        None
    ) as stream:
        batch = await stream.next_batch()
    assert batch is not None
    # The carts line is not ours; the update without ns.coll is passed on for the ingester.
    assert batch.changes == [change(1), no_coll, change(2)]
    assert [o.position for o in batch.origins or []] == ["line 1", "line 3", "line 4"]


async def test_resume_skips_bad_lines_before_the_token_line(tmp_path: Path) -> None:
    text = "oops\n" + lines(change(1), change(2)) + "[]\n" + lines(change(3))
    source = NdjsonChangeSource(write(tmp_path, text), collections=["orders"])
    async with source.watch(ResumePoint(resume_after={"_data": f"82{1:032X}"})) as stream:
        batch = await stream.next_batch()
    assert batch is not None
    assert [o.position for o in batch.origins or []] == ["line 3", "line 4", "line 5"]
    assert [o.unreadable for o in batch.origins or []] == [None, "not a JSON object", None]


async def test_resume_skips_through_the_token_line(tmp_path: Path) -> None:
    path = write(tmp_path, lines(*(change(n) for n in range(1, 6))))
    source = NdjsonChangeSource(path, collections=["orders"])
    for resume in (
        ResumePoint(resume_after={"_data": f"82{3:032X}"}),
        ResumePoint(start_after={"_data": f"82{3:032X}"}),
        ResumePoint(start_at_operation_time=Timestamp(1_700_000_000, 4)),
    ):
        async with source.watch(resume) as stream:
            assert [keys(b) for b in await batches(stream)] == [[4, 5]]


def fragments(n: int) -> list[dict[str, Any]]:
    """Change n split in two, as $changeStreamSplitLargeEvent sends it (tokens n and n + 1)."""
    whole = change(n)
    first = {k: v for k, v in whole.items() if k != "fullDocument"}
    return [
        {**first, "splitEvent": {"fragment": 1, "of": 2}},
        {
            "_id": {"_data": f"82{n + 1:032X}"},
            "splitEvent": {"fragment": 2, "of": 2},
            "fullDocument": whole["fullDocument"],
        },
    ]


async def test_a_split_event_is_one_change_whose_position_is_before_it_until_whole(
    tmp_path: Path,
) -> None:
    # Lines: change 1, change 2 in two fragments (tokens 2 and 3), change 4.
    text = lines(change(1), *fragments(2), change(4))
    source = NdjsonChangeSource(write(tmp_path, text), collections=["orders"], batch_size=1)
    async with source.watch(None) as stream:
        got = [await stream.next_batch() for _ in range(3)]
    assert [b.changes if b else None for b in got] == [
        [change(1)],
        [{**change(2), "_id": {"_data": f"82{3:032X}"}}],
        [change(4)],
    ]
    assert [b.resume_token if b else None for b in got] == [
        {"_data": f"82{n:032X}"} for n in (1, 3, 4)
    ]
    assert [o.position for b in got if b for o in b.origins or []] == [
        "line 1",
        "lines 2-3",
        "line 4",
    ]


async def test_resume_after_a_split_event_skips_all_its_lines(tmp_path: Path) -> None:
    path = write(tmp_path, lines(change(1), *fragments(2), change(4), *fragments(5)))
    source = NdjsonChangeSource(path, collections=["orders"])
    for resume in (
        ResumePoint(resume_after={"_data": f"82{3:032X}"}),  # the split event's own token
        ResumePoint(start_at_operation_time=Timestamp(1_700_000_000, 3)),  # after its time
    ):
        async with source.watch(resume) as stream:
            assert [keys(b) for b in await batches(stream)] == [[4, 5]]


async def test_resume_token_not_in_the_file_is_history_lost(tmp_path: Path) -> None:
    source = NdjsonChangeSource(write(tmp_path, lines(change(1))), collections=["orders"])
    async with source.watch(ResumePoint(resume_after={"_data": "82FF"})) as stream:
        with pytest.raises(HistoryLost):
            await stream.next_batch()


async def test_dash_reads_standard_input() -> None:
    stdin = io.StringIO(lines(change(1), change(2, coll="carts"), change(3)))
    source = NdjsonChangeSource("-", collections=["orders"], stdin=stdin)
    async with source.watch(None) as stream:
        assert [keys(b) for b in await batches(stream)] == [[1, 3]]


async def test_a_pipes_lines_come_as_they_arrive_and_a_stop_ends_the_wait() -> None:
    # A writer that keeps the pipe open: each line is a batch as it comes (not once 512
    # lines or the end are there), and the ingester, waiting on the open pipe, stops.
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, encoding="utf-8") as reader, os.fdopen(write_fd, "w") as writer:
        source = NdjsonChangeSource("-", collections=["orders"], stdin=reader, batch_size=50)
        async with source.watch(None) as stream:
            for n in (1, 3):
                writer.write(lines(change(n)) + "\n")
                writer.flush()
                batch = await asyncio.wait_for(stream.next_batch(), 10)
                assert batch is not None and keys(batch.changes) == [n]
            writer.write(lines(change(5), change(7)) + "\n")
            writer.flush()
            batch = await asyncio.wait_for(stream.next_batch(), 10)
            assert batch is not None
            if keys(batch.changes) == [5]:  # both lines in one chunk, unless the read split
                batch = await asyncio.wait_for(stream.next_batch(), 10)
                assert batch is not None and keys(batch.changes) == [7]
            else:
                assert keys(batch.changes) == [5, 7]
        # The ingester opens the source again: the same reader goes on with the pipe.
        store = MemoryStore()
        s = settings(source="ndjson:-")
        ingester = Ingester(store=store, source=source, settings=s, clock=FakeClock())
        stop = asyncio.Event()
        running = asyncio.ensure_future(ingester.run(stop=stop))
        writer.write(lines(change(9)) + "\n")
        writer.flush()
        assert await store.events.wait_for_append(0, timeout=10)
        stop.set()  # the reader is blocked on the open pipe: the run ends all the same
        await asyncio.wait_for(running, 10)
    assert [e.entity_id for e in await store.events.read(after_seq=0, limit=10)] == [9]


async def test_missing_file_is_a_source_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.ndjson"
    with pytest.raises(SourceError, match=r"nope\.ndjson"):
        async with NdjsonChangeSource(missing, collections=["orders"]).watch(None):
            pass


async def test_a_file_cannot_be_snapshotted(tmp_path: Path) -> None:
    source = NdjsonChangeSource(write(tmp_path, ""), collections=["orders"])
    assert source.finite and not source.can_snapshot
    with pytest.raises(SourceError, match="snapshot"):
        await source.cluster_time()
    with pytest.raises(SourceError, match="snapshot"):
        async for _ in source.scan("orders"):
            pass
    async with source.watch(None) as stream:
        assert await stream.next_batch() is None
