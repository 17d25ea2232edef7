"""A BSON date outside years 1-9999 (JavaScript's last date as a "never", int64's extremes) is a
valid change: captured from an ndjson file with the default BAD_INPUT=stop, stored exactly by
both adapters, read back, hashed and verified. A wallTime that far off gives way to the
clusterTime as the event's occurred_at."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bson import Timestamp, json_util
from bson.datetime_ms import DatetimeMS

from eventstore.clock import FakeClock
from eventstore.fold import fold
from eventstore.ingester import Ingester
from eventstore.ports import Store
from eventstore.sources.ndjson import NdjsonChangeSource
from tests.integration.ingest_helpers import assert_log_intact, settings

JS_MAX_DATE = 8_640_000_000_000_000
BEYOND = [253_402_300_800_000, JS_MAX_DATE, -62_135_596_800_001, 2**63 - 1, -(2**63)]
WALL = 1_800_000_000_000  # 2027-01-15T08:00:00Z


def line(n: int, key: int, wall: int | None, **fields: Any) -> str:
    """Change `n` of entity `key` (`fields`: its fullDocument or updateDescription) as a
    canonical Extended JSON line, its wallTime `wall` ms (default: a plain time)."""
    change = {
        "_id": {"_data": f"82{n:04d}"},
        "clusterTime": Timestamp(1_800_000_000 + n, 1),
        "wallTime": DatetimeMS(WALL + n * 1000 if wall is None else wall),
        "ns": {"db": "shop", "coll": "orders"},
        "documentKey": {"_id": key},
        **fields,
    }
    return json_util.dumps(change, json_options=json_util.CANONICAL_JSON_OPTIONS)


def insert(n: int, doc: dict[str, Any], *, wall: int | None = None) -> str:
    """An insert of `doc` as an ndjson line."""
    return line(n, doc["_id"], wall, operationType="insert", fullDocument=doc)


def update(n: int, key: int, fields: dict[str, Any]) -> str:
    """An update setting `fields` on entity `key`, as an ndjson line."""
    ud = {"updatedFields": fields, "removedFields": [], "truncatedArrays": []}
    return line(n, key, None, operationType="update", updateDescription=ud)


async def capture(store: Store, tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "changes.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    s = settings(source=f"ndjson:{path}")  # BAD_INPUT=stop: a refused line would stop here
    source = NdjsonChangeSource(path, collections=s.collections)
    await Ingester(store=store, source=source, settings=s, clock=FakeClock()).run(until_idle=True)


async def test_dates_beyond_datetime_are_captured_stored_and_verified(
    store: Store, tmp_path: Path
) -> None:
    docs = [
        {"_id": i, "expires": DatetimeMS(ms), "at": [DatetimeMS(ms)]}
        for i, ms in enumerate(BEYOND, 1)
    ]
    lines = [insert(i, doc) for i, doc in enumerate(docs, 1)]
    lines.append(update(10, 1, {"expires": DatetimeMS(JS_MAX_DATE), "n.d": DatetimeMS(-(2**63))}))
    await capture(store, tmp_path, lines)

    events = await assert_log_intact(store)  # dense, both chains verified from the store
    assert [(e.type, e.entity_key) for e in events] == [
        ("created", "1"),
        ("created", "2"),
        ("created", "3"),
        ("created", "4"),
        ("created", "5"),
        ("updated", "1"),
    ]
    for event, doc in zip(events, docs, strict=False):
        assert event.document == doc
        assert event.document is not None and type(event.document["expires"]) is DatetimeMS
    assert events[-1].changes is not None
    assert events[-1].changes["updatedFields"] == {
        "expires": DatetimeMS(JS_MAX_DATE),
        "n.d": DatetimeMS(-(2**63)),
    }
    # The fold keeps the values as they are.
    state = fold([e for e in events if e.entity_key == "1"]).state
    assert state == {
        "_id": 1,
        "expires": DatetimeMS(JS_MAX_DATE),
        "at": [DatetimeMS(BEYOND[0])],
        "n": {"d": DatetimeMS(-(2**63))},
    }


@pytest.mark.parametrize("wall", [JS_MAX_DATE, -62_135_596_800_001])
async def test_a_wall_time_beyond_datetime_takes_the_cluster_time(
    store: Store, tmp_path: Path, wall: int
) -> None:
    lines = [insert(1, {"_id": 1, "s": "a"}, wall=wall), insert(2, {"_id": 2, "s": "b"})]
    await capture(store, tmp_path, lines)

    events = await assert_log_intact(store)
    assert [e.occurred_at for e in events] == [
        datetime.fromtimestamp(1_800_000_001, UTC),  # the clusterTime's second
        datetime.fromtimestamp((WALL + 2000) / 1000, UTC),  # its wallTime, as ever
    ]
    assert events[0].cluster_time == Timestamp(1_800_000_001, 1)
