"""Events over 16 MB arrive split into fragments: captured whole, once, and never resumed inside.

Through the ingester with the ndjson source (a file of what a change stream sent,
fragments included); the wire side of the production source is in
tests/contract/test_mongo_change_source.py.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bson import Timestamp, json_util

from eventstore.badinput import BadChange
from eventstore.clock import FakeClock
from eventstore.history import History
from eventstore.ingester import Ingester
from eventstore.model import REJECTED, Checkpoint, EventQuery
from eventstore.ports import Store
from eventstore.sources.ndjson import NdjsonChangeSource
from tests.integration.ingest_helpers import ROLE, all_events, assert_log_intact, settings

WHEN = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
BIG = "x" * 2000  # stands for megabytes: the fragments are cut by field, whatever the size


def token(n: int) -> dict[str, Any]:
    return {"_data": f"82{n:032X}"}


def insert(n: int, order: int) -> dict[str, Any]:
    return {
        "_id": token(n),
        "operationType": "insert",
        "clusterTime": Timestamp(1_770_000_000, n),
        "wallTime": WHEN,
        "ns": {"db": "shop", "coll": "orders"},
        "documentKey": {"_id": order},
        "fullDocument": {"_id": order, "status": "pending", "note": "", "updatedBy": "alice"},
    }


def big_update(first: int, order: int) -> list[dict[str, Any]]:
    """An update of `order` with its pre- and post-image, as three fragments (tokens first..first+2)."""
    context: dict[str, Any] = {
        "operationType": "update",
        "clusterTime": Timestamp(1_770_000_000, first),
        "wallTime": WHEN,
        "ns": {"db": "shop", "coll": "orders"},
        "documentKey": {"_id": order},
        "updateDescription": {
            "updatedFields": {"note": BIG, "status": "paid"},
            "removedFields": [],
            "truncatedArrays": [],
        },
    }
    before = {"_id": order, "status": "pending", "note": "", "updatedBy": "alice"}
    after = {"_id": order, "status": "paid", "note": BIG, "updatedBy": "alice"}
    groups: list[dict[str, Any]] = [
        context,
        {"fullDocumentBeforeChange": before},
        {"fullDocument": after},
    ]
    return [
        {"_id": token(first + i), "splitEvent": {"fragment": i + 1, "of": 3}, **fields}
        for i, fields in enumerate(groups)
    ]


def dump(change: dict[str, Any]) -> str:
    return json_util.dumps(change, json_options=json_util.RELAXED_JSON_OPTIONS)


def write(path: Path, changes: list[dict[str, Any]]) -> Path:
    path.write_text("".join(dump(c) + "\n" for c in changes), encoding="utf-8")
    return path


def ndjson_ingester(
    store: Store, path: Path, *, policy: str = "stop", batch_size: int = 2
) -> Ingester:
    s = settings(source=f"ndjson:{path}", bad_input=policy, batch_size=batch_size)
    source = NdjsonChangeSource(path, collections=s.collections, batch_size=batch_size)
    return Ingester(store=store, source=source, settings=s, clock=FakeClock(WHEN))


# Lines 1-2 insert orders 1 and 2; lines 3-5 are one update of order 1; line 6 inserts order 3.
CHANGES = [insert(1, 1), insert(2, 2), *big_update(3, 1), insert(6, 3)]


async def test_a_split_event_is_one_event_with_its_last_fragments_token(
    store: Store, tmp_path: Path
) -> None:
    path = write(tmp_path / "changes.ndjson", CHANGES)
    await ndjson_ingester(store, path).run(until_idle=True)

    events = await assert_log_intact(store)
    assert [(e.id, e.entity_key, e.version, e.type) for e in events] == [
        (token(1)["_data"], "1", 1, "created"),
        (token(2)["_data"], "2", 1, "created"),
        (token(5)["_data"], "1", 2, "updated"),
        (token(6)["_data"], "3", 1, "created"),
    ]
    state = await History(store).state("orders", "1", version=2)
    assert state.document == {"_id": 1, "status": "paid", "note": BIG, "updatedBy": "alice"}
    assert state.findings == []  # the fold matches the post-image of the last fragment
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None and cp.token == token(6)

    # Read again from the start (a lost checkpoint): the split one too is known by its token.
    await store.checkpoints.put(Checkpoint(name=ROLE, head=(await store.events.head())))
    stats = await ndjson_ingester(store, path).run(until_idle=True)
    assert stats.recorded == 0 and stats.duplicates_skipped == 4
    assert await assert_log_intact(store) == events


async def test_a_file_cut_inside_a_split_event_stops_before_it_and_resumes_there_once_whole(
    store: Store, tmp_path: Path
) -> None:
    path = write(tmp_path / "changes.ndjson", CHANGES[:4])  # lines 3-4: two of three fragments

    with pytest.raises(BadChange) as raised:
        await ndjson_ingester(store, path).run(until_idle=True)
    assert str(raised.value) == (
        "ndjson: line 3: fragment 1 of 3 of a split event that cannot be put together "
        "(fragments missing, out of order or overlapping)"
    )
    assert [e.id for e in await all_events(store)] == [token(1)["_data"], token(2)["_data"]]
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None and cp.token == token(2)  # before the event, never inside it

    write(path, CHANGES)  # the rest of the file arrived
    await ndjson_ingester(store, path).run(until_idle=True)
    events = await assert_log_intact(store)
    assert [e.id for e in events] == [token(n)["_data"] for n in (1, 2, 5, 6)]


async def test_under_record_each_fragment_left_over_is_rejected_in_its_place(
    store: Store, tmp_path: Path
) -> None:
    # The event's second fragment is lost: its first and third cannot be put together.
    fragments = big_update(3, 1)
    changes = [insert(1, 1), fragments[0], fragments[2], insert(6, 3)]
    path = write(tmp_path / "changes.ndjson", changes)
    await ndjson_ingester(store, path, policy="record").run(until_idle=True)

    events = await assert_log_intact(store)
    assert [(e.type, e.stream) for e in events] == [
        ("created", "orders"),
        (REJECTED, "orders"),
        (REJECTED, "$source"),
        ("created", "orders"),
    ]
    rejected = await store.events.query(EventQuery(types=(REJECTED,)), limit=10)
    line2, line3 = (dump(c) for c in changes[1:3])
    assert [r.document for r in rejected] == [
        {
            "source": "ndjson",
            "position": "line 2",
            "reason": "fragment 1 of 3 of a split event that cannot be put together "
            "(fragments missing, out of order or overlapping)",
            "sha256": hashlib.sha256(line2.encode()).hexdigest(),
        },
        {
            "source": "ndjson",
            "position": "line 3",
            "reason": "fragment 3 of 3 of a split event that cannot be put together "
            "(fragments missing, out of order or overlapping)",
            "sha256": hashlib.sha256(line3.encode()).hexdigest(),
        },
    ]


async def test_a_whole_event_that_is_bad_input_is_placed_by_all_its_lines(
    store: Store, tmp_path: Path
) -> None:
    fragments = big_update(3, 1)
    del fragments[0]["updateDescription"]
    changes = [insert(1, 1), insert(2, 2), *fragments]
    path = write(tmp_path / "changes.ndjson", changes)

    with pytest.raises(BadChange, match=r"^ndjson: lines 3-5: update without updateDescription$"):
        await ndjson_ingester(store, path).run(until_idle=True)

    await ndjson_ingester(store, path, policy="record").run(until_idle=True)
    [rejected] = await store.events.query(EventQuery(types=(REJECTED,)), limit=10)
    assert rejected.document is not None
    joined = "\n".join(dump(c) for c in fragments)  # `sed -n 3,5p | head -c -1 | sha256sum`
    assert rejected.document["position"] == "lines 3-5"
    assert rejected.document["sha256"] == hashlib.sha256(joined.encode()).hexdigest()
