"""Values through the API as the README's JSON rule says: a Timestamp as `{"$timestamp"}`,
binary (a UUID too) as base64, a date outside years 1-9999 as `{"$date": {"$numberLong"}}`,
in state, history, diff and both exports; a diff names the BSON types of a change of type
alone; and `since`/`until` inside the last millisecond of year 9999 keep their meaning."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bson import Binary, Decimal128, Int64, ObjectId, Timestamp
from bson.datetime_ms import DatetimeMS
from litestar.testing import AsyncTestClient

from eventstore.clock import FakeClock
from eventstore.ingester import Ingester
from eventstore.sources.ndjson import NdjsonChangeSource
from tests.api.conftest import AppFactory
from tests.integration.conftest import ADAPTERS, open_test_store
from tests.integration.ingest_helpers import settings
from tests.integration.test_out_of_range_dates_capture import JS_MAX_DATE, insert, update

OID = ObjectId("65a0000000000000000000bb")
DAY = datetime(2020, 1, 1, tzinfo=UTC)
LAST_MS = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
UUID = uuid.UUID(int=5)
NEVER = {"$date": {"$numberLong": str(JS_MAX_DATE)}}
URL = "/v1/streams/orders/entities"

LINES = [
    # entity 1: values whose JSON forms are taken for another value's
    insert(
        1,
        {
            "_id": 1,
            "ts": Timestamp(5, 6),
            "ts_doc": {"t": 5, "i": 6},
            "uuid_bin": Binary.from_uuid(UUID),
            "uuid_str": str(UUID),
            "bin0": Binary(b"\x00\x01", 0),
            "never": DatetimeMS(JS_MAX_DATE),
        },
    ),
    update(
        2, 1, {"ts": {"t": 5, "i": 6}, "uuid_bin": str(UUID), "never": DatetimeMS(JS_MAX_DATE + 1)}
    ),
    # entity 2: changes of BSON type alone (finding 5's values)
    insert(
        3,
        {
            "_id": 2,
            "i": 1,
            "dec": Decimal128("1.0"),
            "oid": OID,
            "date": DAY,
            "big": Int64(5),
            "f": 2.0,
            "s": "a",
        },
    ),
    update(
        4,
        2,
        {
            "i": Int64(1),
            "dec": "1.0",
            "oid": str(OID),
            "date": "2020-01-01T00:00:00.000Z",
            "big": 5,
            "f": Decimal128("2.0"),
            "s": "b",
        },
    ),
    # entity 3: its wallTime is the last millisecond a datetime holds
    insert(5, {"_id": 3}, wall=int(DatetimeMS(LAST_MS))),
]


@pytest.fixture(params=ADAPTERS)
def kind(request: pytest.FixtureRequest) -> str:
    """The store adapter: `memory`, or `mongo` over mongomock-motor."""
    return str(request.param)


@pytest.fixture
async def client(
    kind: str, tmp_path: Path, make_app: AppFactory
) -> AsyncIterator[AsyncTestClient[Any]]:
    path = tmp_path / "changes.ndjson"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    store = await open_test_store(kind)
    s = settings(source=f"ndjson:{path}")
    source = NdjsonChangeSource(path, collections=s.collections)
    await Ingester(store=store, source=source, settings=s, clock=FakeClock()).run(until_idle=True)
    async with AsyncTestClient(make_app(store)) as c:
        yield c
    await store.close()


async def get(client: AsyncTestClient[Any], url: str, **params: Any) -> Any:
    r = await client.get(url, params=params)
    assert r.status_code == 200, r.text
    return r.json()


FIRST = {
    "_id": 1,
    "ts": {"$timestamp": {"t": 5, "i": 6}},
    "ts_doc": {"t": 5, "i": 6},
    "uuid_bin": "AAAAAAAAAAAAAAAAAAAABQ==",
    "uuid_str": "00000000-0000-0000-0000-000000000005",
    "bin0": "AAE=",
    "never": NEVER,
}
DIFF_1 = [
    {
        "path": "ts",
        "op": "changed",
        "before": {"$timestamp": {"t": 5, "i": 6}},
        "after": {"t": 5, "i": 6},
        "before_type": "timestamp",
        "after_type": "object",
    },
    {
        "path": "uuid_bin",
        "op": "changed",
        "before": "AAAAAAAAAAAAAAAAAAAABQ==",
        "after": "00000000-0000-0000-0000-000000000005",
        "before_type": "binData",
        "after_type": "string",
    },
    {
        "path": "never",
        "op": "changed",
        "before": NEVER,
        "after": {"$date": {"$numberLong": str(JS_MAX_DATE + 1)}},
    },
]


def typed(path: str, shown: Any, before_type: str, after_type: str) -> dict[str, Any]:
    return {
        "path": path,
        "op": "changed",
        "before": shown,
        "after": shown,
        "before_type": before_type,
        "after_type": after_type,
    }


DIFF_2 = [
    typed("i", 1, "int", "long"),
    typed("dec", "1.0", "decimal", "string"),
    typed("oid", str(OID), "objectId", "string"),
    typed("date", "2020-01-01T00:00:00.000Z", "date", "string"),
    typed("big", 5, "long", "int"),
    {
        "path": "f",
        "op": "changed",
        "before": 2.0,
        "after": "2.0",
        "before_type": "double",
        "after_type": "decimal",
    },
    {"path": "s", "op": "changed", "before": "a", "after": "b"},
]


async def test_state_shows_each_value_in_its_own_form(client: AsyncTestClient[Any]) -> None:
    body = await get(client, f"{URL}/1/state", version=1)
    assert body["document"] == FIRST
    body = await get(client, f"{URL}/1/state", version=2)
    assert body["document"]["never"] == {"$date": {"$numberLong": str(JS_MAX_DATE + 1)}}
    assert body["document"]["ts"] == {"t": 5, "i": 6}


async def test_diff_and_history_name_the_types_of_a_change_of_type_alone(
    client: AsyncTestClient[Any],
) -> None:
    body = await get(client, f"{URL}/1/diff", from_version=1, to_version=2)
    assert body["changes"] == DIFF_1
    body = await get(client, f"{URL}/2/diff", from_version=1, to_version=2)
    assert body["changes"] == DIFF_2
    history = await get(client, f"{URL}/2/history")
    assert [e["diff"] for e in history["events"]][1] == DIFF_2
    history = await get(client, f"{URL}/1/history")
    assert history["events"][0]["document"] == FIRST
    assert history["events"][1]["diff"] == DIFF_1
    # `created` lists fields added: no types there.
    assert all("before_type" not in c for c in history["events"][0]["diff"])


async def test_the_exports_render_values_as_the_json_answer_does(
    client: AsyncTestClient[Any],
) -> None:
    answer = await get(client, "/v1/events", stream="orders")
    r = await client.get(
        "/v1/events", params={"stream": "orders"}, headers={"Accept": "application/x-ndjson"}
    )
    assert r.status_code == 200
    exported = [json.loads(text) for text in r.text.splitlines()]
    assert exported == answer["events"]
    assert exported[0]["document"] == FIRST
    assert exported[1]["changes"]["updatedFields"]["never"] == {
        "$date": {"$numberLong": str(JS_MAX_DATE + 1)}
    }
    r = await client.get("/v1/events", params={"stream": "orders"}, headers={"Accept": "text/csv"})
    rows = list(csv.reader(io.StringIO(r.text)))
    assert [row[0] for row in rows[1:]] == ["1", "2", "3", "4", "5"]


LAST = "9999-12-31T23:59:59.999Z"
INSIDE = ["9999-12-31T23:59:59.9991Z", "9999-12-31T23:59:59.9999999Z"]
ACCEPT = ["application/json", "application/x-ndjson"]


async def seqs(client: AsyncTestClient[Any], accept: str, **params: str) -> list[int]:
    """The seqs `/v1/events` answers (the JSON answer's, or the NDJSON export's)."""
    r = await client.get("/v1/events", params=params, headers={"Accept": accept})
    assert r.status_code == 200, r.text
    if accept == "application/json":
        return [e["seq"] for e in r.json()["events"]]
    return [json.loads(text)["seq"] for text in r.text.splitlines()]


@pytest.mark.parametrize("inside", INSIDE)
@pytest.mark.parametrize("accept", ACCEPT)
async def test_since_and_until_inside_the_last_millisecond_are_answered(
    client: AsyncTestClient[Any], inside: str, accept: str
) -> None:
    # Events 1-4 occurred in 2027: before `inside`, never at or after it.
    assert [n for n in await seqs(client, accept, since=inside) if n < 5] == []
    assert [n for n in await seqs(client, accept, until=inside) if n < 5] == [1, 2, 3, 4]


@pytest.mark.parametrize("inside", INSIDE)
@pytest.mark.parametrize("accept", ACCEPT)
async def test_since_and_until_inside_the_last_millisecond_keep_their_meaning(
    client: AsyncTestClient[Any], inside: str, accept: str
) -> None:
    # (On MongoDB, which cuts a query's dates to the millisecond, such a bound is sent as
    # "none" for `since` and as no bound for `until`: eventstore/mongo/eventlog.py.)
    # Event 5 occurred at 9999-12-31T23:59:59.999Z, before `inside`: `since` (at or
    # after) leaves it out, `until` (before) takes it and every other event.
    assert await seqs(client, accept, since=inside) == []
    assert await seqs(client, accept, until=inside) == [1, 2, 3, 4, 5]
    assert await seqs(client, accept, since=LAST) == [5]
    assert await seqs(client, accept, until=LAST) == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "just_after", ["9999-12-31T23:59:59.9990000001Z", "9999-12-31T23:59:59.9990001Z"]
)
@pytest.mark.parametrize("accept", ACCEPT)
async def test_a_bound_a_fraction_of_a_microsecond_after_an_event_is_after_it(
    client: AsyncTestClient[Any], accept: str, just_after: str
) -> None:
    # Digits beyond microseconds were cut: the bound became the event's own millisecond,
    # so `since` took an event before it and `until` left out an event before it.
    assert await seqs(client, accept, since=just_after) == []
    assert await seqs(client, accept, until=just_after) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("since", "until", "refused"),
    [
        ("2027-01-01T00:00:09.1230000002Z", "2027-01-01T00:00:09.1230000001Z", True),
        ("2027-01-01T00:00:09.123001Z", "2027-01-01T00:00:09.1230000001Z", True),
        ("2027-01-01T00:00:09.1230000001Z", "2027-01-01T00:00:09.1230000002Z", False),
        ("2027-01-01T00:00:09.1230000001Z", "2027-01-01T00:00:09.123001Z", False),
        ("2027-01-01T01:00:09.1230000001+01:00", "2027-01-01T00:00:09.1230000001Z", False),
    ],
)
async def test_since_after_until_is_refused_by_the_digits_beyond_microseconds_too(
    client: AsyncTestClient[Any], since: str, until: str, refused: bool
) -> None:
    # Both raised to one microsecond, the two bounds compared equal: an impossible range
    # answered 200 with no events (a last outside probe).
    r = await client.get("/v1/events", params={"since": since, "until": until})
    assert r.status_code == (422 if refused else 200), r.text
    if refused:
        assert r.json()["type"].endswith("/impossible-range")


@pytest.mark.parametrize("accept", ACCEPT)
async def test_a_bound_whose_offset_takes_it_outside_years_1_to_9999_is_before_or_after_all(
    client: AsyncTestClient[Any], accept: str
) -> None:
    # Valid RFC 3339 times, refused (400) until an outside tester's probe: before year 1
    # once in UTC is before every stored time, after year 9999 after every one.
    before_all, after_all = "0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"
    assert await seqs(client, accept, since=before_all) == [1, 2, 3, 4, 5]
    assert await seqs(client, accept, until=before_all) == []
    assert await seqs(client, accept, since=after_all) == []
    assert await seqs(client, accept, until=after_all) == [1, 2, 3, 4, 5]
    # ... and the order of the two still holds
    r = await client.get("/v1/events", params={"since": after_all, "until": before_all})
    assert r.status_code == 422, r.text
