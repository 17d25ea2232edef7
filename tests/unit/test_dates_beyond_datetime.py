"""BSON dates a Python datetime cannot hold (before year 1, after year 9999), and time bounds
in the last millisecond a datetime holds: read exactly, hashed as BSON stores them, shown
as their Extended JSON, never a crash."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from typing import Any

import bson
import pytest
from bson import Timestamp
from bson.codec_options import CodecOptions
from bson.datetime_ms import DatetimeMS
from bson.json_util import loads

from eventstore.chain import canonical_bytes, entity_hash
from eventstore.codec import (
    DATETIMES,
    EXTJSON_OPTIONS,
    ceil_ms,
    event_doc,
    event_from_doc,
    to_jsonable,
    unheld_wall_time,
)
from tests.helpers import make_event

# The last millisecond a datetime holds, and the last microsecond.
LAST_MS = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
PAST_LAST_MS = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
JS_MAX_DATE = 8_640_000_000_000_000  # new Date(8640000000000000): year 275760, a "never"
BEYOND = [
    253_402_300_800_000,  # 10000-01-01T00:00:00.000Z
    JS_MAX_DATE,
    -62_135_596_800_001,  # the millisecond before year 1
    2**63 - 1,
    -(2**63),
]


@pytest.mark.parametrize("ms", BEYOND)
def test_extended_json_reads_a_date_beyond_datetime_as_its_milliseconds(ms: int) -> None:
    line = f'{{"expires": {{"$date": {{"$numberLong": "{ms}"}}}}}}'
    value = loads(line, json_options=EXTJSON_OPTIONS)["expires"]
    assert type(value) is DatetimeMS
    assert int(value) == ms


@pytest.mark.parametrize(
    ("ms", "at"),
    [
        (253_402_300_799_999, datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)),
        (-62_135_596_800_000, datetime(1, 1, 1, tzinfo=UTC)),
        (-1, datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)),
    ],
)
def test_a_date_datetime_holds_is_still_an_aware_datetime(ms: int, at: datetime) -> None:
    line = f'{{"d": {{"$date": {{"$numberLong": "{ms}"}}}}}}'
    value = loads(line, json_options=EXTJSON_OPTIONS)["d"]
    assert type(value) is datetime
    assert value == at and value.tzinfo is not None


@pytest.mark.parametrize("ms", BEYOND)
def test_a_date_beyond_datetime_is_shown_as_its_extended_json(ms: int) -> None:
    shown = {"$date": {"$numberLong": str(ms)}}
    assert to_jsonable(DatetimeMS(ms)) == shown
    assert to_jsonable({"d": DatetimeMS(ms), "a": [DatetimeMS(ms)]}) == {"d": shown, "a": [shown]}


def test_a_date_beyond_datetime_is_hashed_as_the_bson_date_of_its_milliseconds() -> None:
    event = make_event(
        seq=1, entity_id=1, version=1, document={"_id": 1, "never": DatetimeMS(JS_MAX_DATE)}
    )
    raw = canonical_bytes(event)
    # BSON type 0x09 (UTC datetime), the key, then the int64 milliseconds.
    assert b"\x09never\x00" + struct.pack("<q", JS_MAX_DATE) in raw
    # A date datetime holds hashes as before: the same bytes as its DatetimeMS.
    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    as_datetime = make_event(seq=1, entity_id=1, version=1, document={"_id": 1, "d": at})
    as_ms = make_event(seq=1, entity_id=1, version=1, document={"_id": 1, "d": DatetimeMS(at)})
    assert entity_hash(as_datetime) == entity_hash(as_ms) == as_datetime.hash


def test_a_stored_event_holding_a_date_beyond_datetime_reads_back_equal() -> None:
    event = make_event(
        seq=1, entity_id=1, version=1, document={"_id": 1, "never": DatetimeMS(JS_MAX_DATE)}
    )
    stored = bson.encode(event_doc(event))
    options: CodecOptions[dict[str, Any]] = CodecOptions(
        tz_aware=True, tzinfo=UTC, datetime_conversion=DATETIMES
    )
    back = event_from_doc(bson.decode(stored, codec_options=options))
    assert back == event
    assert back.document is not None and back.document["never"] == DatetimeMS(JS_MAX_DATE)
    assert entity_hash(back) == event.hash


def test_a_wall_time_beyond_datetime_gives_way_to_the_cluster_time() -> None:
    change: dict[str, Any] = {
        "_id": {"_data": "82AA"},
        "clusterTime": Timestamp(1_800_000_000, 1),
        "wallTime": DatetimeMS(JS_MAX_DATE),
    }
    assert unheld_wall_time(change, "ndjson: line 1") == DatetimeMS(JS_MAX_DATE)
    assert "wallTime" not in change
    at = datetime(2026, 1, 1, tzinfo=UTC)
    held = {"_id": {"_data": "82AB"}, "wallTime": at}
    assert unheld_wall_time(held, "ndjson: line 2") is None
    assert held["wallTime"] == at


@pytest.mark.parametrize(
    "given",
    [
        datetime(9999, 12, 31, 23, 59, 59, 999100, tzinfo=UTC),  # ...59.9991Z
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # ...59.9999999Z, as parsed
    ],
)
def test_a_bound_inside_the_last_millisecond_keeps_its_meaning(given: datetime) -> None:
    bound = ceil_ms(given)
    assert bound == PAST_LAST_MS
    # Stored times are milliseconds: the latest there can be is LAST_MS, which is before
    # `given`. `since` (t >= x) holds for none of them; `until` (t < x) for all of them.
    stored = [LAST_MS, datetime(2026, 1, 1, tzinfo=UTC)]
    assert [t for t in stored if t >= bound] == []  # since
    assert [t for t in stored if t < bound] == stored  # until


def test_a_bound_elsewhere_rounds_up_to_the_millisecond_as_before() -> None:
    assert ceil_ms(datetime(9999, 12, 31, 23, 59, 59, 998100, tzinfo=UTC)) == LAST_MS
    assert ceil_ms(LAST_MS) == LAST_MS
    assert ceil_ms(datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)) == datetime(
        2026, 1, 1, 0, 0, 0, 1000, tzinfo=UTC
    )
