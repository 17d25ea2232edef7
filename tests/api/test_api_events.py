"""GET /v1/events: the audit query, its filters, paging, and its NDJSON and CSV exports.

Every expectation is computed from `audit_log.events` by the small filter below,
never from the API's own code.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from eventstore.clock import FakeClock
from eventstore.keys import typed_key
from eventstore.model import Event
from eventstore.ports import Store
from eventstore.sources.memory import MemoryChangeFeed
from tests.api.conftest import AppFactory, AuditLog
from tests.integration.conftest import open_test_store
from tests.integration.ingest_helpers import all_events, ingester, start_from_the_beginning

Params = list[tuple[str, str]]
CSV_HEADER = "seq,occurred_at,stream,entity_key,typed_key,version,type,actor,changed_fields"


def stamp(when: datetime) -> str:
    """RFC 3339 UTC with milliseconds, written here rather than borrowed from the codec."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def expected(events: Sequence[Event], params: Params) -> list[Event]:
    """The matches of an audit query, by a plain scan of the whole log."""
    one = {k: v for k, v in params if k != "type"}
    types = {v for k, v in params if k == "type"}
    since = datetime.fromisoformat(one["since"]) if "since" in one else None
    until = datetime.fromisoformat(one["until"]) if "until" in one else None
    field = one.get("field")
    out = []
    for e in events:
        if "stream" in one and e.stream != one["stream"]:
            continue
        if "entity" in one and e.entity_key != one["entity"]:
            continue
        if types and e.type not in types:
            continue
        # a replace or snapshot writes the whole document over, a deletion removes it: either
        # matches every field; otherwise a changed field is the path, beneath it or above it
        whole = e.type in ("replaced", "snapshot", "deleted")
        if (
            field is not None
            and not whole
            and not any(
                f == field or f.startswith(field + ".") or field.startswith(f + ".")
                for f in e.changed_fields
            )
        ):
            continue
        if "actor" in one and e.actor != one["actor"]:
            continue
        if since is not None and e.occurred_at < since:
            continue
        if until is not None and e.occurred_at >= until:
            continue
        out.append(e)
    return out


def resolve(audit_log: AuditLog, params: Params) -> Params:
    """`@x2` stands for the time of ORD-X's version 2 (copied from the event)."""
    return [(k, stamp(audit_log.times[v[1:]]) if v.startswith("@") else v) for k, v in params]


async def walk(
    client: AsyncTestClient[Any], params: Params, limit: int = 7
) -> list[dict[str, Any]]:
    """Every page of a query; asserts page sizes and that `next` ends the walk."""
    seen: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(1000):
        query = [*params, ("limit", str(limit))] + ([("after", after)] if after else [])
        r = await client.get("/v1/events", params=tuple(query))
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"events", "next"}
        assert len(body["events"]) <= limit
        seen.extend(body["events"])
        after = body["next"]
        if after is None:
            return seen
        assert isinstance(after, str)
        assert len(body["events"]) == limit
    raise AssertionError("the walk never ended")


def assert_same(got: list[dict[str, Any]], want: list[Event]) -> None:
    """The API's events are exactly the expected ones, in seq order, with their values."""
    assert [g["seq"] for g in got] == [e.seq for e in want]
    for g, e in zip(got, want, strict=True):
        assert g["id"] == e.id
        assert g["stream"] == e.stream
        assert g["entity_key"] == e.entity_key
        assert g["version"] == e.version
        assert g["type"] == e.type
        assert g["actor"] == e.actor
        assert g["changed_fields"] == list(e.changed_fields)
        assert g["occurred_at"] == stamp(e.occurred_at)
        assert g["recorded_at"] == stamp(e.recorded_at)
        assert g["inferred"] is e.inferred
        assert (g["hash"], g["prev_hash"], g["log_hash"]) == (e.hash, e.prev_hash, e.log_hash)


SINGLE: list[Params] = [
    [("stream", "orders")],
    [("stream", "orders"), ("entity", "ORD-X")],
    [("type", "deleted")],
    [("type", "created"), ("type", "replaced")],
    [("field", "status")],
    [("field", "customer")],
    [("field", "items.0")],
    [("actor", "bob")],
    [("since", "@x2")],
    [("until", "@x2")],
]
COMBINED: list[Params] = [
    [("stream", "orders"), ("actor", "alice"), ("type", "updated")],
    [("field", "status"), ("actor", "bob"), ("type", "updated"), ("type", "created")],
    [("since", "@x2"), ("until", "@x4")],
    [("stream", "orders"), ("entity", "ORD-X"), ("since", "@x2"), ("until", "@x4")],
    [("field", "customer"), ("since", "@x1")],
    [("stream", "orders"), ("type", "updated"), ("actor", "carol"), ("field", "items")],
    [("stream", "orders"), ("type", "deleted"), ("actor", "carol")],
]


def label(params: Params) -> str:
    return "&".join(f"{k}={v}" for k, v in params) or "(all)"


@pytest.mark.parametrize("cases", [SINGLE, COMBINED], ids=["each-filter-alone", "combined"])
async def test_filters_walked_in_pages_of_seven(
    client: AsyncTestClient[Any], audit_log: AuditLog, cases: list[Params]
) -> None:
    for params in cases:
        params = resolve(audit_log, params)
        want = expected(audit_log.events, params)
        assert want, f"{label(params)} must match something"
        assert len(want) < len(audit_log.events) or params == [("stream", "orders")]
        assert_same(await walk(client, params), want)


async def test_filters_narrow_and_are_exact(audit_log: AuditLog) -> None:
    """Sanity of the cases: each filter removes events, and the known entity's facts hold."""
    events = audit_log.events
    assert len(expected(events, [("actor", "bob")])) < len(events)
    x = [e.seq for e in audit_log.of("ORD-X")]
    assert [
        e.seq for e in expected(events, resolve(audit_log, [("since", "@x2"), ("until", "@x4")]))
    ] == x[1:3]


async def test_the_whole_log_in_seq_order_exactly_once(
    client: AsyncTestClient[Any], audit_log: AuditLog
) -> None:
    got = await walk(client, [], limit=7)
    assert [g["seq"] for g in got] == list(range(1, len(audit_log.events) + 1))
    assert_same(got, audit_log.events)


async def test_default_page_and_next_at_the_end(
    client: AsyncTestClient[Any], audit_log: AuditLog
) -> None:
    r = await client.get("/v1/events")
    body = r.json()
    assert [e["seq"] for e in body["events"]] == list(range(1, 101))
    assert body["next"] is not None
    # exactly as many matches as the limit: a full last page with next null
    x = audit_log.of("ORD-X")
    r = await client.get("/v1/events", params={"stream": "orders", "entity": "ORD-X", "limit": 4})
    assert [e["seq"] for e in r.json()["events"]] == [e.seq for e in x]
    assert r.json()["next"] is None
    r = await client.get("/v1/events", params={"stream": "orders", "entity": "ORD-X", "limit": 3})
    assert r.json()["next"] is not None
    r = await client.get(
        "/v1/events",
        params={"stream": "orders", "entity": "ORD-X", "limit": 3, "after": r.json()["next"]},
    )
    assert [e["seq"] for e in r.json()["events"]] == [x[3].seq]
    assert r.json()["next"] is None


async def test_entity_values_and_typed_keys(
    client: AsyncTestClient[Any], audit_log: AuditLog
) -> None:
    r = await client.get("/v1/events", params={"stream": "orders", "entity": "ORD-X"})
    assert [e["entity_id"] for e in r.json()["events"]] == ["ORD-X"] * 4
    assert [e["actor"] for e in r.json()["events"]] == ["alice", "alice", "bob", "bob"]
    # the bare key 42 names two entities: 409 listing the typed keys
    r = await client.get("/v1/events", params={"stream": "orders", "entity": "42"})
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert set(r.json()["typed_keys"]) >= {"int:42", "str:42"}
    r = await client.get("/v1/events", params={"stream": "orders", "entity": "int:42"})
    assert r.status_code == 200
    (only,) = r.json()["events"]
    assert only["entity_id"] == 42
    assert only["actor"] == "carol"
    r = await client.get("/v1/events", params={"stream": "orders", "entity": "a/b"})
    assert [e["entity_id"] for e in r.json()["events"]] == ["a/b"]
    r = await client.get("/v1/events", params={"stream": "orders", "entity": "no-such-order"})
    assert r.status_code == 404
    oid = next(e for e in audit_log.events if len(e.entity_key) == 24)
    r = await client.get("/v1/events", params={"stream": "orders", "entity": oid.entity_key})
    assert r.json()["events"][0]["entity_id"] == {"$oid": oid.entity_key}


async def test_times_with_an_offset(client: AsyncTestClient[Any], audit_log: AuditLog) -> None:
    """`since` given as +01:00 means the same instant as its Z form (a `+` survives the URL)."""
    x2 = audit_log.times["x2"].astimezone(timezone(timedelta(hours=1)))
    r = await client.get("/v1/events", params={"since": x2.isoformat()})
    assert r.status_code == 200, r.text
    want = expected(audit_log.events, [("since", stamp(audit_log.times["x2"]))])
    assert [e["seq"] for e in r.json()["events"]] == [e.seq for e in want]


async def test_lower_case_t_and_z_are_rfc3339_too(
    client: AsyncTestClient[Any], audit_log: AuditLog
) -> None:
    """RFC 3339 5.6 allows `t` and `z`: the same instant as the upper-case form."""
    upper = stamp(audit_log.times["x2"])
    lower = upper.replace("T", "t").replace("Z", "z")
    r = await client.get("/v1/events", params={"since": lower, "until": lower})
    assert r.status_code == 200, r.text
    want = await client.get("/v1/events", params={"since": upper, "until": upper})
    assert r.json() == want.json()


@pytest.mark.parametrize(
    "since",
    ["20260101T000500Z", "2026-W01-4T00:05:00Z", "2026-01-01T00:05Z", "2026-01-01T00:05:00+01"],
)
async def test_iso_8601_forms_that_are_not_rfc3339_are_refused(
    client: AsyncTestClient[Any], since: str
) -> None:
    r = await client.get("/v1/events", params={"since": since})
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == (
        f"since: {since!r} is not an RFC 3339 time (e.g. 2026-11-26T14:03:00.123Z)"
    )


@pytest.mark.parametrize(
    ("path", "name", "value"),
    [
        ("/v1/events", "since", "2026-12-07T10:30:20+00:99"),  # not +01:39
        ("/v1/events", "until", "2026-12-07T10:30:20+24:00"),
        ("/v1/streams/orders/entities/ORD-X/state", "at", "2026-12-07T10:30:20-00:60"),
    ],
)
async def test_an_offset_beyond_23_59_is_refused_naming_the_ranges(
    client: AsyncTestClient[Any], path: str, name: str, value: str
) -> None:
    r = await client.get(path, params={name: value})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"] == (
        f"{name}: not a valid time: {value!r}"
        " (an offset's hours are 00 to 23, its minutes 00 to 59)"
    )


@pytest.mark.parametrize(
    "since", [" 2026-01-01T00:05:00Z", "2026-01-01T00:05:00Z\n", "\t2026-01-01T00:05:00Z"]
)
async def test_whitespace_around_a_time_is_refused(
    client: AsyncTestClient[Any], since: str
) -> None:
    r = await client.get("/v1/events", params={"since": since})
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == (
        f"since: {since!r} is not an RFC 3339 time (e.g. 2026-11-26T14:03:00.123Z)"
    )


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("accept", [None, "application/json", "application/x-ndjson", "text/csv"])
@pytest.mark.parametrize("encoding", ["identity", "gzip"])
async def test_every_representation_says_it_varies_by_accept_and_encoding(
    client: AsyncTestClient[Any], method: str, accept: str | None, encoding: str
) -> None:
    """JSON, NDJSON or CSV by `Accept` (RFC 9110 12.5.5): a cache must not mix them up."""
    headers = {"accept-encoding": encoding}
    if accept is not None:
        headers["accept"] = accept
    params = {"limit": "2"} if accept in (None, "application/json") else {}  # exports: all
    r = await client.request(method, "/v1/events", params=params, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].split(";")[0] == accept or (
        accept is None and r.headers["content-type"] == "application/json"
    )
    assert r.headers.get_list("vary") == ["Accept, Accept-Encoding"]


async def fresh_orders() -> tuple[Store, MemoryChangeFeed, FakeClock]:
    """An empty memory store capturing from the start, and a feed with its clock."""
    clock = FakeClock()
    store = await open_test_store("memory")
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    return store, feed, clock


async def test_field_is_a_path_prefix_never_a_string_prefix(make_app: AppFactory) -> None:
    """`customer` matches `customer.email`, never `customerNote`."""
    store, feed, clock = await fresh_orders()
    try:
        coll = feed.collection("orders")
        await coll.insert_one(
            {"_id": "o1", "customer": {"name": "A", "email": "a@x"}, "customerNote": "hi"}
        )
        for update in (
            {"customer.email": "b@x"},
            {"customerNote": "bye"},
            {"customer.name": "B", "customerNote": "again"},
            {"customers": 3},
        ):
            clock.advance(1)
            await coll.update_one({"_id": "o1"}, {"$set": update})
        await ingester(store, feed, clock).run(until_idle=True)
        events = await all_events(store)
        async with AsyncTestClient(make_app(store)) as client:
            # The insert (version 1) wrote `customer` whole: it changed every path beneath.
            for field, versions in (
                ("customer", [1, 2, 4]),
                ("customer.email", [1, 2]),
                ("customerNote", [1, 3, 4]),
                ("customers", [5]),
                ("cust", []),
                ("customer.em", [1]),
            ):
                got = await walk(client, [("field", field)], limit=2)
                assert [g["version"] for g in got] == versions, field
                assert [g["seq"] for g in got] == [
                    e.seq for e in expected(events, [("field", field)])
                ]
    finally:
        await store.close()


async def test_csv_cells_a_spreadsheet_would_run_are_quoted(make_app: AppFactory) -> None:
    """Keys, actors and field names come from the documents: `=...` must not run when opened."""
    store, feed, clock = await fresh_orders()
    try:
        coll = feed.collection("orders")
        await coll.insert_one({"_id": '=HYPERLINK("http://x")', "updatedBy": "@SUM(A1)"})
        await coll.insert_one({"_id": -5, "updatedBy": "+cmd", "-x": 1})
        await coll.insert_one({"_id": "\tTAB", "updatedBy": "-2.5"})
        await ingester(store, feed, clock).run(until_idle=True)
        async with AsyncTestClient(make_app(store)) as client:
            r = await client.get("/v1/events", headers={"accept": "text/csv"})
            exact = await client.get("/v1/events", headers={"accept": "application/x-ndjson"})
        rows = list(csv.reader(io.StringIO(r.text)))[1:]
        assert [(row[3], row[4], row[7], row[8]) for row in rows] == [
            (
                '\'=HYPERLINK("http://x")',
                'str:=HYPERLINK("http://x")',  # no formula either: it starts with str:
                "'@SUM(A1)",
                "_id updatedBy",
            ),
            ("-5", "int:-5", "'+cmd", "_id updatedBy -x"),  # a plain number is no formula
            ("'\tTAB", "str:\tTAB", "-2.5", "_id updatedBy"),
        ]
        # the NDJSON export carries the values as they are
        lines = [json.loads(line) for line in exact.text.splitlines()]
        assert [(x["entity_key"], x["actor"]) for x in lines] == [
            ('=HYPERLINK("http://x")', "@SUM(A1)"),
            ("-5", "+cmd"),
            ("\tTAB", "-2.5"),
        ]
    finally:
        await store.close()


BAD_QUERIES: list[tuple[str, int]] = [
    ("entity=ORD-X", 400),  # entity needs stream
    ("since=2026-01-01T00:05:00Z&until=2026-01-01T00:04:00Z", 422),
    ("since=2026-01-01T00:05:00", 400),  # no zone
    ("until=2026-01-01T00:05:00", 400),
    ("since=yesterday", 400),
    ("type=deleted&type=removed", 400),
    ("actr=bob", 400),  # a misspelled filter must not widen the query
    ("stream=orders&Actor=bob", 400),
    ("limit=0", 400),
    ("limit=1001", 400),
    ("limit=ten", 400),
    ("after=not-a-cursor", 400),
    ("stream=", 400),
]


async def test_bad_queries_are_problems(client: AsyncTestClient[Any]) -> None:
    for (query, status), accept in itertools.product(
        BAD_QUERIES, ("application/json", "application/x-ndjson", "text/csv")
    ):
        r = await client.get(f"/v1/events?{query}", headers={"accept": accept})
        assert r.status_code == status, (query, accept, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        assert body["status"] == status
        assert {"type", "title", "detail"} <= set(body)
        if status == 422:  # DESIGN.md "Status codes": `errors: [{key, message}]`
            assert body["errors"] == [{"key": "since", "message": body["detail"]}]


async def test_since_equal_to_until_is_empty(
    client: AsyncTestClient[Any], audit_log: AuditLog
) -> None:
    t = stamp(audit_log.times["x2"])
    r = await client.get("/v1/events", params={"since": t, "until": t})
    assert r.status_code == 200
    assert r.json() == {"events": [], "next": None}


@pytest.mark.parametrize(
    "value", ["\u0663", "1_0", "+3", " 3", "-1", "9999999999999999999", "9" * 39, "9" * 41]
)
async def test_a_crafted_cursor_is_read_as_ascii_digits_within_the_seqs_or_refused(
    client: AsyncTestClient[Any], value: str
) -> None:
    """A cursor is `kind:value` in base64url. int() read `٣` as 3, and a seq past 2^63
    reached the database, which stores no such integer."""
    from api.params import encode_cursor

    r = await client.get("/v1/events", params={"after": encode_cursor("events", value)})
    assert r.status_code == 400, r.text
    assert "does not belong to this listing" in r.json()["detail"]
    r = await client.get("/v1/events", params={"after": encode_cursor("events", "3"), "limit": 1})
    assert r.status_code == 200 and [e["seq"] for e in r.json()["events"]] == [4]


async def test_a_cursor_of_another_listing_is_refused(client: AsyncTestClient[Any]) -> None:
    r = await client.get("/v1/streams/orders/entities", params={"limit": 1})
    assert r.json()["next"] is not None
    r = await client.get("/v1/events", params={"after": r.json()["next"]})
    assert r.status_code == 400


# -- exports ----------------------------------------------------------------------------------
EXPORTS: list[Params] = [
    [],
    [("actor", "bob"), ("type", "updated")],
    [("field", "customer"), ("since", "@x1")],
    [("stream", "orders"), ("entity", "ORD-X")],
    [("type", "gap")],  # nothing matches: a header-only CSV, an empty NDJSON
]


async def test_ndjson_export_equals_the_pages(
    client: AsyncTestClient[Any], audit_log: AuditLog
) -> None:
    for params in map(partial(resolve, audit_log), EXPORTS):
        await _check_ndjson(client, audit_log, params)


async def _check_ndjson(client: AsyncTestClient[Any], audit_log: AuditLog, params: Params) -> None:
    r = await client.get(
        "/v1/events", params=tuple(params), headers={"accept": "application/x-ndjson"}
    )
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] == "application/x-ndjson"
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert r.text == "" or r.text.endswith("\n")
    assert lines == await walk(client, params, limit=7)
    assert_same(lines, expected(audit_log.events, params))


async def test_csv_export_has_one_row_per_match(
    client: AsyncTestClient[Any], audit_log: AuditLog
) -> None:
    for params in map(partial(resolve, audit_log), EXPORTS):
        await _check_csv(client, audit_log, params)


async def _check_csv(client: AsyncTestClient[Any], audit_log: AuditLog, params: Params) -> None:
    r = await client.get("/v1/events", params=tuple(params), headers={"accept": "text/csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] == "text/csv"
    assert r.text.splitlines()[0] == CSV_HEADER
    rows = list(csv.reader(io.StringIO(r.text)))
    want = expected(audit_log.events, params)
    assert rows[1:] == [
        [
            str(e.seq),
            stamp(e.occurred_at),
            e.stream,
            e.entity_key,
            typed_key(e.entity_id),  # the entity alone (the ids here are ObjectIds and text)
            str(e.version),
            e.type,
            "" if e.actor is None else str(e.actor),
            " ".join(e.changed_fields),
        ]
        for e in want
    ]
    pages = await walk(client, params, limit=7)
    assert [int(row[0]) for row in rows[1:]] == [p["seq"] for p in pages]


async def test_export_starts_after_a_cursor(
    client: AsyncTestClient[Any], audit_log: AuditLog
) -> None:
    first = (await client.get("/v1/events", params={"limit": 10})).json()
    r = await client.get(
        "/v1/events", params={"after": first["next"]}, headers={"accept": "application/x-ndjson"}
    )
    seqs = [json.loads(line)["seq"] for line in r.text.splitlines()]
    assert seqs == list(range(11, len(audit_log.events) + 1))


async def test_accept_prefers_by_quality(client: AsyncTestClient[Any]) -> None:
    """A client that prefers JSON gets JSON even when it also accepts CSV."""
    r = await client.get(
        "/v1/events", params={"limit": 2}, headers={"accept": "application/json, text/csv;q=0.5"}
    )
    assert r.headers["content-type"].startswith("application/json")
    assert len(r.json()["events"]) == 2
    r = await client.get("/v1/events", headers={"accept": "text/csv, application/json;q=0.5"})
    assert r.headers["content-type"].startswith("text/csv")
    r = await client.get("/v1/events", params={"limit": 2}, headers={"accept": "*/*"})
    assert r.headers["content-type"].startswith("application/json")


async def test_a_query_past_the_servers_time_limit_is_a_503_problem(make_app: Any) -> None:
    from pymongo.errors import ExecutionTimeout

    from eventstore.memory.store import MemoryStore

    store = MemoryStore()

    async def too_long(*_: Any, **__: Any) -> Any:
        raise ExecutionTimeout("operation exceeded time limit", code=50)

    store.events.query = too_long  # type: ignore[method-assign]
    async with AsyncTestClient(make_app(store)) as client:
        r = await client.get("/v1/events", params={"field": "status"})
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"].endswith("/query-timeout") and "maxTimeMS" in body["detail"]
