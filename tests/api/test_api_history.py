"""The read API over one log: streams, entities, history, state, diff, verify, keys and errors.

Every expected value is computed here from the log itself (`audit_log.events`):
the entity list from each entity's newest event, states by folding the entity's
events, times and BSON values rendered by the small independent helpers below.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from bson import Decimal128, ObjectId
from litestar.testing import AsyncTestClient

from api.app import EventStoreApp
from eventstore.clock import FakeClock
from eventstore.diff import diff
from eventstore.fold import fold
from eventstore.keys import typed_key
from eventstore.model import DELETED, Event
from eventstore.sources.memory import MemoryChangeFeed
from tests.api.conftest import AppFactory, AuditLog
from tests.helpers import EVENT_KEYS
from tests.integration.conftest import open_test_store
from tests.integration.ingest_helpers import all_events, ingester, start_from_the_beginning
from tests.integration.test_cli_history import TAMPERING, memory_tamper, populated

Client = AsyncTestClient[Any]

# One app per shared log for this module's tests (they only read): building an app costs
# more than most of these requests.
_APPS: dict[int, EventStoreApp] = {}


@pytest.fixture
async def client(audit_log: AuditLog, make_app: AppFactory) -> AsyncIterator[Client]:
    """A client of an app (without keys) over the shared log."""
    app = _APPS.get(id(audit_log.store))
    if app is None:
        app = _APPS[id(audit_log.store)] = make_app(audit_log.store)
    async with AsyncTestClient(app) as c:
        yield c


ENTITIES = "/v1/streams/orders/entities"
X = f"{ENTITIES}/ORD-X"
RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
PROBLEM_KEYS = {"type", "title", "status", "detail"}
STATE_KEYS = {"stream", "entity_key", "version", "as_of", "exists", "uncertain", "gap", "document"}


# -- independent renderings ------------------------------------------------------------------


def ms(t: datetime) -> str:
    """RFC 3339, UTC, milliseconds, `Z`."""
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def plain(value: Any) -> Any:
    """A stored BSON value as the API renders it in documents (ObjectId hex, Decimal128 string)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, Decimal128):
        return str(value.to_decimal())
    if isinstance(value, datetime):
        return ms(value)
    return value


def relaxed(entity_id: Any) -> Any:
    """`entity_id` as relaxed Extended JSON."""
    if isinstance(entity_id, ObjectId):
        return {"$oid": str(entity_id)}
    assert isinstance(entity_id, (int, str))
    return entity_id


def identity(e: Event) -> tuple[str, str, Any]:
    return (e.stream, type(e.entity_id).__name__, e.entity_id)


def by_entity(log: AuditLog) -> dict[tuple[str, str, Any], list[Event]]:
    out: dict[tuple[str, str, Any], list[Event]] = defaultdict(list)
    for e in log.events:
        out[identity(e)].append(e)
    return out


def state_after(events: list[Event], version: int) -> Any:
    """The document after `version`, folded from the entity's events."""
    return fold([e for e in events if e.version <= version]).state


def longest(log: AuditLog) -> list[Event]:
    """The simulated (ObjectId) entity with the most events."""
    histories = [evs for (_, t, _), evs in by_entity(log).items() if t == "ObjectId"]
    return max(histories, key=len)


def deleted_entity(log: AuditLog) -> list[Event]:
    """A simulated entity whose newest event is a delete, with at least two events before it."""
    for evs in by_entity(log).values():
        if evs[-1].type == DELETED and len(evs) >= 3:
            return evs
    raise AssertionError("the simulated log has no deleted entity")


def key_url(e: Event) -> str:
    return f"{ENTITIES}/{e.entity_key}"


# -- response checks -------------------------------------------------------------------------


def no_trace(r: httpx.Response) -> None:
    assert r.status_code < 500, r.text
    assert "Traceback" not in r.text and 'File "' not in r.text


def ok(r: httpx.Response) -> Any:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem of that status; returns its body."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert isinstance(body, dict)
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    no_trace(r)
    return body


async def walk(client: Client, url: str, limit: int, field: str) -> list[dict[str, Any]]:
    """Every item of a paged listing, following `next` as `after`; pages hold at most `limit`."""
    sep = "&" if "?" in url else "?"
    seen: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(10_000):
        query = f"limit={limit}" + (f"&after={after}" if after is not None else "")
        body = ok(await client.get(f"{url}{sep}{query}"))
        assert len(body[field]) <= limit
        seen.extend(body[field])
        after = body["next"]
        if after is None:
            return seen
        assert isinstance(after, str) and body[field], "a next page follows a full page"
    raise AssertionError("the listing never ended")


# -- streams and entities --------------------------------------------------------------------


async def test_streams_lists_each_stream_with_its_counts(
    client: Client, audit_log: AuditLog
) -> None:
    events = [e for e in audit_log.events if e.stream == "orders"]
    entities = {identity(e) for e in events}
    body = ok(await client.get("/v1/streams"))
    assert body == [
        {
            "stream": "orders",
            "entities": len(entities),
            "events": len(events),
            "last_seq": events[-1].seq,
            "last_event_at": ms(events[-1].occurred_at),
        }
    ]
    assert RFC3339_MS.match(body[0]["last_event_at"])


def expected_entities(log: AuditLog) -> list[dict[str, Any]]:
    newest = [evs[-1] for evs in by_entity(log).values()]
    newest.sort(key=lambda e: e.seq, reverse=True)
    # A bare key two entities share (the integer 42, the string "42") is listed typed.
    texts = Counter(e.entity_key for e in newest)
    return [
        {
            "entity_key": typed_key(e.entity_id) if texts[e.entity_key] > 1 else e.entity_key,
            "entity_id": relaxed(e.entity_id),
            "version": e.version,
            "exists": e.type != DELETED,
            "last_type": e.type,
            "last_event_at": ms(e.occurred_at),
        }
        for e in newest
    ]


async def test_entities_most_recently_changed_first(client: Client, audit_log: AuditLog) -> None:
    body = ok(await client.get(ENTITIES, params={"limit": 1000}))
    assert body["next"] is None
    assert body["items"] == expected_entities(audit_log)
    first = body["items"][0]
    assert first["entity_key"] == "ORD-X" and first["version"] == 4


@pytest.mark.parametrize("limit", [1, 7, 74, 75])
async def test_entities_walk_sees_every_entity_once(
    client: Client, audit_log: AuditLog, limit: int
) -> None:
    seen = await walk(client, ENTITIES, limit, "items")
    assert seen == expected_entities(audit_log)
    keys = [json.dumps(i["entity_id"]) for i in seen]
    assert len(keys) == len(set(keys)) == len(by_entity(audit_log))


async def test_entities_show_a_deleted_entity(client: Client, audit_log: AuditLog) -> None:
    evs = deleted_entity(audit_log)
    items = ok(await client.get(ENTITIES, params={"limit": 1000}))["items"]
    (row,) = [i for i in items if i["entity_key"] == evs[-1].entity_key]
    assert row["exists"] is False and row["last_type"] == "deleted"
    assert row["version"] == evs[-1].version
    live = [i for i in items if i["exists"]]
    assert all(i["last_type"] != "deleted" for i in live) and live


# -- history ---------------------------------------------------------------------------------


def check_event(got: dict[str, Any], e: Event) -> None:
    """One event's JSON against the stored event."""
    assert list(got) == EVENT_KEYS
    assert got["seq"] == e.seq and got["id"] == e.id
    assert got["stream"] == e.stream and got["entity_key"] == e.entity_key
    assert got["typed_key"] == typed_key(e.entity_id)
    assert got["entity_id"] == relaxed(e.entity_id)
    assert got["version"] == e.version and got["type"] == e.type
    assert got["occurred_at"] == ms(e.occurred_at) and RFC3339_MS.match(got["occurred_at"])
    assert got["recorded_at"] == ms(e.recorded_at) and RFC3339_MS.match(got["recorded_at"])
    # the change's clusterTime, hashed with the event: a reader recomputing the hash needs it
    assert e.cluster_time is not None
    assert got["cluster_time"] == {
        "$timestamp": {"t": e.cluster_time.time, "i": e.cluster_time.inc}
    }
    assert got["actor"] == e.actor and got["inferred"] is e.inferred
    assert got["document"] == plain(e.document)
    assert got["changes"] == plain(e.changes)
    assert got["before"] == plain(e.before)
    assert got["changed_fields"] == e.changed_fields
    assert got["txn"] is None and e.txn is None
    assert (got["hash"], got["prev_hash"], got["log_hash"]) == (e.hash, e.prev_hash, e.log_hash)


def expected_diff(events: list[Event], version: int) -> list[dict[str, Any]]:
    before, after = state_after(events, version - 1), state_after(events, version)
    return [
        {"path": c.path, "op": c.op, "before": plain(c.before), "after": plain(c.after)}
        for c in diff(before, after)
    ]


async def test_history_events_are_the_logs_with_their_diffs(
    client: Client, audit_log: AuditLog
) -> None:
    events = longest(audit_log)
    body = ok(await client.get(f"{key_url(events[0])}/history"))
    assert list(body) == ["stream", "entity_key", "events", "next"]
    assert (body["stream"], body["entity_key"], body["next"]) == (
        "orders",
        events[0].entity_key,
        None,
    )
    assert len(body["events"]) == len(events)
    for got, e in zip(body["events"], events, strict=True):
        check_event(got, e)
        assert got["diff"] == expected_diff(events, e.version)
    assert body["events"][0]["entity_id"] == {"$oid": events[0].entity_key}


async def test_history_renders_decimals_and_dates_as_strings(
    client: Client, audit_log: AuditLog
) -> None:
    created = next(e for e in audit_log.events if e.type == "created" and e.document)
    assert created.document is not None
    first = ok(await client.get(f"{key_url(created)}/history", params={"limit": 1}))["events"][0]
    doc = first["document"]
    total = created.document["total"]
    assert isinstance(total, Decimal128)
    assert doc["total"] == str(total.to_decimal()) and Decimal(doc["total"]) == total.to_decimal()
    assert all(isinstance(i["unit_price"], str) for i in doc["items"])
    assert doc["_id"] == created.entity_key  # other ObjectIds: hex strings
    assert RFC3339_MS.match(doc["createdAt"]) and doc["createdAt"] == ms(
        created.document["createdAt"]
    )


async def test_history_of_ord_x_shows_who_changed_what(client: Client) -> None:
    events = ok(await client.get(f"{X}/history"))["events"]
    assert [(e["version"], e["type"], e["actor"]) for e in events] == [
        (1, "created", "alice"),
        (2, "updated", "alice"),
        (3, "updated", "bob"),
        (4, "updated", "bob"),
    ]
    assert events[1]["diff"] == [
        {"path": "status", "op": "changed", "before": "pending", "after": "paid"}
    ]
    assert events[2]["diff"] == [
        {"path": "status", "op": "changed", "before": "paid", "after": "shipped"},
        {"path": "updatedBy", "op": "changed", "before": "alice", "after": "bob"},
    ]
    assert events[3]["diff"] == [
        {
            "path": "customer.email",
            "op": "changed",
            "before": "x@example.com",
            "after": "xavier@example.com",
        }
    ]
    # MongoDB leaves an unchanged value out of updatedFields: the actor carries over
    assert events[3]["changes"]["updatedFields"] == {"customer.email": "xavier@example.com"}
    assert {d["path"] for d in events[0]["diff"]} == {
        "_id",
        "number",
        "status",
        "customer",
        "updatedBy",
    }
    assert all(d["op"] == "added" and d["before"] is None for d in events[0]["diff"])


@pytest.mark.parametrize("limit", [1, 2, 5, 6])
async def test_history_walk_sees_every_event_once(
    client: Client, audit_log: AuditLog, limit: int
) -> None:
    events = longest(audit_log)
    seen = await walk(client, f"{key_url(events[0])}/history", limit, "events")
    assert [e["seq"] for e in seen] == [e.seq for e in events]
    assert [e["version"] for e in seen] == list(range(1, len(events) + 1))
    for got, e in zip(seen, events, strict=True):
        check_event(got, e)
        assert got["diff"] == expected_diff(events, e.version)


@pytest.mark.parametrize(
    ("query", "versions"),
    [
        ({"from_version": 2}, [2, 3, 4]),
        ({"to_version": 2}, [1, 2]),
        ({"from_version": 2, "to_version": 3}, [2, 3]),
        ({"from_version": 3, "to_version": 3}, [3]),
        ({"from_version": 4, "to_version": 99}, [4]),
    ],
)
async def test_history_version_range(
    client: Client, audit_log: AuditLog, query: dict[str, int], versions: list[int]
) -> None:
    body = ok(await client.get(f"{X}/history", params=query))
    assert [e["version"] for e in body["events"]] == versions
    assert body["next"] is None
    events = audit_log.of("ORD-X")
    for got in body["events"]:
        check_event(got, events[got["version"] - 1])
        assert got["diff"] == expected_diff(events, got["version"])


async def test_a_history_range_that_runs_backwards_is_422_naming_its_start(client: Client) -> None:
    body = problem(await client.get(f"{X}/history?from_version=4&to_version=2"), 422)
    assert body["detail"] == "from_version 4 is after to_version 2"
    assert body["errors"] == [{"key": "from_version", "message": body["detail"]}]


async def test_history_range_walk_in_small_pages(client: Client) -> None:
    seen = await walk(client, f"{X}/history?from_version=2&to_version=4", 1, "events")
    assert [e["version"] for e in seen] == [2, 3, 4]


async def test_history_cursor_resumes_after_the_page(client: Client) -> None:
    first = ok(await client.get(f"{X}/history", params={"limit": 2}))
    assert [e["version"] for e in first["events"]] == [1, 2] and first["next"]
    rest = ok(await client.get(f"{X}/history", params={"after": first["next"]}))
    assert [e["version"] for e in rest["events"]] == [3, 4] and rest["next"] is None


# -- entity_id shapes and keys ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "entity_key", "entity_id"),
    [
        # both 42 and "42" exist: the answer names each by its typed key, as the listing does
        ("int:42", "int:42", 42),
        ("str:42", "str:42", "42"),
        ("a%2Fb", "a/b", "a/b"),
        ("str:a%2Fb", "a/b", "a/b"),
        ("ORD-X", "ORD-X", "ORD-X"),
        ("str:ORD-X", "ORD-X", "ORD-X"),
    ],
)
async def test_typed_and_escaped_keys(
    client: Client, key: str, entity_key: str, entity_id: Any
) -> None:
    body = ok(await client.get(f"{ENTITIES}/{key}/history"))
    assert body["entity_key"] == entity_key
    (event,) = body["events"][:1]
    assert event["entity_id"] == entity_id and type(event["entity_id"]) is type(entity_id)
    assert event["document"]["_id"] == entity_id
    state = ok(await client.get(f"{ENTITIES}/{key}/state"))
    assert state["entity_key"] == entity_key and state["document"]["_id"] == entity_id


async def test_object_id_keys(client: Client, audit_log: AuditLog) -> None:
    events = longest(audit_log)
    hexkey = events[0].entity_key
    assert re.fullmatch(r"[0-9a-f]{24}", hexkey)
    for key in (hexkey, f"oid:{hexkey}", hexkey.upper()):
        body = ok(await client.get(f"{ENTITIES}/{key}/history"))
        # a typed key stays typed: its bare form could name the string too
        assert body["entity_key"] == (key if key.startswith("oid:") else hexkey)
        assert [e["entity_id"] for e in body["events"]] == [{"$oid": hexkey}] * len(events)
        assert [e["seq"] for e in body["events"]] == [e.seq for e in events]


@pytest.mark.parametrize("tail", ["history", "state", "diff?from_version=1&to_version=1", "verify"])
async def test_bare_key_naming_two_entities_is_409(client: Client, tail: str) -> None:
    body = problem(await client.get(f"{ENTITIES}/42/{tail}"), 409)
    assert body["typed_keys"] == ["int:42", "str:42"]
    assert "int:42" in body["detail"] and "str:42" in body["detail"]


@pytest.mark.parametrize(
    ("key", "status"),
    [
        ("a" * 20_000, 404),
        ("7" * 5_000, 404),
        ("int:" + "7" * 5_000, 400),
        ("oid:" + "f" * 9_000, 400),
    ],
    ids=["letters", "digits", "typed-digits", "typed-hex"],
)
@pytest.mark.parametrize("tail", ["history", "state", "diff?from_version=1&to_version=1", "verify"])
async def test_a_key_of_thousands_of_characters_is_answered_and_quoted_cut(
    client: Client, key: str, status: int, tail: str
) -> None:
    body = problem(await client.get(f"{ENTITIES}/{key}/{tail}"), status)
    assert f"… ({len(key.partition(':')[2] or key)} characters)" in body["detail"]
    assert len(body["detail"]) < 400


@pytest.mark.parametrize(
    "key",
    ["nope", "oid:000000000000000000000000", "int:43", "str:ORD-Y", "a%2Fc", "a", "int:4"],
)
@pytest.mark.parametrize("tail", ["history", "state", "diff?from_version=1&to_version=1", "verify"])
async def test_unknown_entity_is_404(client: Client, key: str, tail: str) -> None:
    problem(await client.get(f"{ENTITIES}/{key}/{tail}"), 404)


@pytest.mark.parametrize(
    "url",
    [
        "/v1/streams/customers/entities",
        "/v1/streams/customers/entities/ORD-X/history",
        "/v1/streams/customers/entities/ORD-X/state",
        "/v1/streams/customers/entities/ORD-X/diff?from_version=1&to_version=2",
        "/v1/streams/customers/entities/ORD-X/verify",
        "/v1/streams/customers/verify",
    ],
)
async def test_unknown_stream_is_404(client: Client, url: str) -> None:
    body = problem(await client.get(url), 404)
    assert "customers" in body["detail"]


@pytest.mark.parametrize(
    "key",
    [
        "oid:zz",
        "int:x",
        "int:99999999999999999999",
        "json:{bad",
        'json:{"$date":1e30}',
        'json:{"$date":{"$numberLong":"99999999999999999999"}}',
        "json:" + "[" * 5000 + "]" * 5000,
    ],
)
@pytest.mark.parametrize("tail", ["history", "state", "diff?from_version=1&to_version=2", "verify"])
async def test_malformed_typed_key_is_400(client: Client, key: str, tail: str) -> None:
    problem(await client.get(f"{ENTITIES}/{quote(key, safe='')}/{tail}"), 400)


# -- state -----------------------------------------------------------------------------------


def check_state(body: dict[str, Any], events: list[Event], version: int) -> None:
    assert set(body) >= STATE_KEYS and set(body) - STATE_KEYS <= {"findings", "erased"}
    e = events[version - 1]
    doc = state_after(events, version)
    assert body["stream"] == e.stream and body["entity_key"] == e.entity_key
    assert body["version"] == version
    assert body["as_of"] == ms(e.occurred_at) and RFC3339_MS.match(body["as_of"])
    assert body["exists"] is (doc is not None)
    assert body["document"] == plain(doc)
    assert body["uncertain"] is False and body["gap"] is None


async def test_state_latest_is_the_fold_of_every_event(client: Client, audit_log: AuditLog) -> None:
    for events in (longest(audit_log), audit_log.of("ORD-X")):
        body = ok(await client.get(f"{key_url(events[0])}/state"))
        check_state(body, events, len(events))
    x = ok(await client.get(f"{X}/state"))["document"]
    assert x["status"] == "shipped" and x["customer"]["email"] == "xavier@example.com"


async def test_state_at_every_version(client: Client, audit_log: AuditLog) -> None:
    events = longest(audit_log)
    for e in events:
        body = ok(await client.get(f"{key_url(e)}/state", params={"version": e.version}))
        check_state(body, events, e.version)


@pytest.mark.parametrize("version", [1, 2, 3, 4])
async def test_state_at_a_time(client: Client, audit_log: AuditLog, version: int) -> None:
    events = audit_log.of("ORD-X")
    at = events[version - 1].occurred_at
    written = audit_log.times[f"x{version}"]
    assert at == written.replace(microsecond=written.microsecond // 1000 * 1000)
    if version < 4:  # the next version is a minute later
        assert events[version].occurred_at == at + timedelta(seconds=60)
    plus_two = timezone(timedelta(hours=2))
    # exactly at the event, between it and the next, and an instant given in another zone
    for when in (
        ms(at),
        ms(at + timedelta(seconds=30)),
        ms(at + timedelta(seconds=59, milliseconds=999)),
        (at + timedelta(seconds=1)).astimezone(plus_two).isoformat(),
    ):
        body = ok(await client.get(f"{X}/state", params={"at": when}))
        check_state(body, events, version)


async def test_state_at_exactly_a_gaps_bounds_is_uncertain(make_app: AppFactory) -> None:
    # A log with a gap in its record (the change stream's history lost twice).
    clock = FakeClock()
    store = await open_test_store("memory")
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    orders = feed.collection("orders")
    await orders.insert_one({"_id": "G", "s": "a"})
    clock.advance(1)
    await orders.update_one({"_id": "G"}, {"$set": {"s": "b"}})
    await ingester(store, feed, clock).run(until_idle=True)
    clock.advance(5)
    await orders.update_one({"_id": "G"}, {"$set": {"s": "lost"}})
    feed.forget_before(None)
    clock.advance(5)
    await orders.update_one({"_id": "G"}, {"$set": {"s": "c"}})
    feed.forget_before(None)
    await ingester(store, feed, clock).run(until_idle=True)
    gap = next(e for e in await all_events(store) if e.type == "gap")
    assert gap.document is not None
    start, end = gap.document["from_time"], gap.document["to_time"]
    url = f"{ENTITIES}/G/state"
    async with AsyncTestClient(make_app(store)) as c:
        for at, seen in ((start, "b"), (end, "c")):
            body = ok(await c.get(url, params={"at": ms(at)}))
            assert body["uncertain"] is True, at
            assert body["gap"] == {"from": ms(start), "to": ms(end)}
            assert body["document"] == {"_id": "G", "s": seen}
        for at in (start - timedelta(milliseconds=1), end + timedelta(milliseconds=1)):
            body = ok(await c.get(url, params={"at": ms(at)}))
            assert (body["uncertain"], body["gap"]) == (False, None), at
    await store.close()


async def test_state_at_a_time_far_ahead_is_the_latest(client: Client, audit_log: AuditLog) -> None:
    events = audit_log.of("ORD-X")
    body = ok(await client.get(f"{X}/state", params={"at": "9999-12-31T23:59:59.999Z"}))
    check_state(body, events, 4)
    # past year 9999 once in UTC: a valid time, after every stored one (as `until` takes it)
    body = ok(await client.get(f"{X}/state", params={"at": "9999-12-31T23:30:00-01:00"}))
    check_state(body, events, 4)


async def test_state_at_a_time_before_year_1_in_utc_is_before_the_first_event(
    client: Client, audit_log: AuditLog
) -> None:
    # A valid RFC 3339 time (`since` takes it as before every stored time) was a 400.
    first = audit_log.of("ORD-X")[0].occurred_at
    body = problem(await client.get(f"{X}/state", params={"at": "0001-01-01T00:30:00+01:00"}), 404)
    assert body["detail"] == (
        f"'ORD-X' has no recorded state at 0001-01-01T00:00:00.000Z: its first event is at {ms(first)}"
    )


async def test_state_before_the_first_event_is_404(client: Client, audit_log: AuditLog) -> None:
    first = audit_log.of("ORD-X")[0].occurred_at
    for when in (first - timedelta(milliseconds=1), datetime(2000, 1, 1, tzinfo=UTC)):
        body = problem(await client.get(f"{X}/state", params={"at": ms(when)}), 404)
        assert "ORD-X" in body["detail"]


async def test_state_after_a_delete(client: Client, audit_log: AuditLog) -> None:
    events = deleted_entity(audit_log)
    deleted = events[-1]
    body = ok(await client.get(f"{key_url(deleted)}/state"))
    assert body["exists"] is False and body["document"] is None
    assert body["version"] == deleted.version
    check_state(body, events, deleted.version)
    before = ok(
        await client.get(f"{key_url(deleted)}/state", params={"version": deleted.version - 1})
    )
    assert before["exists"] is True and before["document"] is not None
    check_state(before, events, deleted.version - 1)


@pytest.mark.parametrize(
    ("query", "word"),
    [
        ({"at": "2026-01-01T00:03:00Z", "version": "2"}, "version"),
        ({"at": "2026-01-01T00:03:00"}, "zone"),
        ({"at": "2026-01-01 00:03:00"}, "zone"),
        ({"at": "yesterday"}, "at"),
        ({"at": ""}, "at"),
        ({"at": "2026-13-01T00:00:00Z"}, "at"),
        ({"version": "0"}, "version"),
        ({"version": "-1"}, "version"),
        ({"version": "two"}, "version"),
    ],
)
async def test_state_refuses_bad_queries(client: Client, query: dict[str, str], word: str) -> None:
    body = problem(await client.get(f"{X}/state", params=query), 400)
    assert word in body["detail"]


async def test_state_of_a_version_that_does_not_exist_is_404(client: Client) -> None:
    body = problem(await client.get(f"{X}/state", params={"version": 5}), 404)
    assert "5" in body["detail"]


@pytest.mark.parametrize("query", [{"from_version": 5}, {"from_version": 5, "to_version": 9}])
async def test_history_of_versions_an_entity_never_had_is_404_as_state_says(
    client: Client, query: dict[str, int]
) -> None:
    for url, params in ((f"{X}/history", query), (f"{X}/state", {"version": 5})):
        body = problem(await client.get(url, params=params), 404)
        assert body["type"] == "https://eventstore.dev/problems/unknown-version"
        assert body["detail"] == "'ORD-X' has no version 5: its latest is 4"


# -- diff ------------------------------------------------------------------------------------


async def test_diff_between_versions(client: Client, audit_log: AuditLog) -> None:
    events = audit_log.of("ORD-X")
    body = ok(await client.get(f"{X}/diff", params={"from_version": 1, "to_version": 4}))
    assert body == {
        "from_version": 1,
        "to_version": 4,
        "changes": [
            {"path": "status", "op": "changed", "before": "pending", "after": "shipped"},
            {
                "path": "customer.email",
                "op": "changed",
                "before": "x@example.com",
                "after": "xavier@example.com",
            },
            {"path": "updatedBy", "op": "changed", "before": "alice", "after": "bob"},
        ],
        "erased": False,
    }
    for a, b in ((1, 1), (2, 3), (1, 2), (3, 4)):
        got = ok(await client.get(f"{X}/diff", params={"from_version": a, "to_version": b}))
        want = diff(state_after(events, a), state_after(events, b))
        assert got["changes"] == [
            {"path": c.path, "op": c.op, "before": plain(c.before), "after": plain(c.after)}
            for c in want
        ]
    assert ok(await client.get(f"{X}/diff?from_version=2&to_version=2"))["changes"] == []


async def test_diff_across_a_delete(client: Client, audit_log: AuditLog) -> None:
    events = deleted_entity(audit_log)
    last = events[-1].version
    body = ok(
        await client.get(
            f"{key_url(events[0])}/diff", params={"from_version": 1, "to_version": last}
        )
    )
    before = state_after(events, 1)
    assert before is not None
    assert body["changes"] == [
        {"path": k, "op": "removed", "before": plain(v), "after": None} for k, v in before.items()
    ]


async def test_diff_errors(client: Client) -> None:
    body = problem(await client.get(f"{X}/diff?from_version=3&to_version=2"), 422)
    assert body["detail"] == "from_version 3 is after to_version 2"
    # DESIGN.md "Status codes": a 422 carries `errors: [{key, message}]`.
    assert body["errors"] == [{"key": "from_version", "message": body["detail"]}]
    problem(await client.get(f"{X}/diff?from_version=1&to_version=5"), 404)
    problem(await client.get(f"{X}/diff?from_version=9&to_version=12"), 404)
    body = problem(await client.get(f"{X}/diff?from_version=1"), 400)
    assert "to_version" in body["detail"]
    problem(await client.get(f"{X}/diff"), 400)
    problem(await client.get(f"{X}/diff?from_version=0&to_version=1"), 400)
    problem(await client.get(f"{X}/diff?from_version=a&to_version=1"), 400)


# -- verify ----------------------------------------------------------------------------------


async def test_verify_entity(client: Client, audit_log: AuditLog) -> None:
    for events in (longest(audit_log), audit_log.of("ORD-X")):
        body = ok(await client.get(f"{key_url(events[0])}/verify"))
        assert body == {
            "valid": True,
            "events_checked": len(events),
            "first_invalid_version": None,
            "reason": None,
            "checkpoint": None,  # the fixture log was never checkpointed
        }
    body = ok(await client.get(f"{ENTITIES}/int:42/verify"))
    assert body["valid"] is True and body["events_checked"] == 1


async def test_verify_stream(client: Client, audit_log: AuditLog) -> None:
    body = ok(await client.get("/v1/streams/orders/verify"))
    assert body == {
        "valid": True,
        "entities_checked": len(by_entity(audit_log)),
        "events_checked": len(audit_log.events),
        "invalid": [],
        "checkpoint": None,
    }


async def test_verify_log_against_the_recorded_head(client: Client, audit_log: AuditLog) -> None:
    last = audit_log.events[-1]
    body = ok(await client.get("/v1/verify"))
    assert body == {
        "valid": True,
        "events_checked": len(audit_log.events),
        "first_invalid_seq": None,
        "reason": None,
        "head": {"seq": last.seq, "log_hash": last.log_hash},
        "head_matches": True,
        "checkpoint": None,  # the fixture log was never checkpointed
    }


async def test_verify_log_against_a_given_head(client: Client, audit_log: AuditLog) -> None:
    events = audit_log.events
    last, middle = events[-1], events[len(events) // 2]
    for e in (last, middle):
        body = ok(
            await client.get("/v1/verify", params={"head_seq": e.seq, "head_hash": e.log_hash})
        )
        assert body["valid"] is True and body["head_matches"] is True
        assert body["head"] == {"seq": last.seq, "log_hash": last.log_hash}
    # the same position with another hash: the log diverged from that head
    wrong = ok(await client.get("/v1/verify", params={"head_seq": last.seq, "head_hash": "0" * 64}))
    assert wrong["head_matches"] is False
    wrong = ok(
        await client.get("/v1/verify", params={"head_seq": middle.seq, "head_hash": last.log_hash})
    )
    assert wrong["head_matches"] is False
    # a head past the log's end: the log was truncated
    ahead = ok(
        await client.get(
            "/v1/verify", params={"head_seq": last.seq + 5, "head_hash": last.log_hash}
        )
    )
    assert ahead["head_matches"] is False
    assert ahead["head"] == {"seq": last.seq, "log_hash": last.log_hash}


@pytest.mark.parametrize("change", ["relink", "log-hash", "reseal-first"])
def test_verify_names_a_tampering_only_one_check_can_see(make_app: AppFactory, change: str) -> None:
    # The three cases of tests/unit/test_chain_checks.py, on a store behind the API.
    store = populated("memory")  # built and tampered with on their own event loops
    memory_tamper(store, change)
    asyncio.run(_verify_tampered(make_app(store), change))


async def _verify_tampered(app: EventStoreApp, change: str) -> None:
    first_seq, reason, entity, invalid = TAMPERING[change]
    async with AsyncTestClient(app) as c:
        log = ok(await c.get("/v1/verify"))
        assert (log["valid"], log["first_invalid_seq"]) == (False, first_seq)
        assert reason in log["reason"]
        one = ok(await c.get(f"{ENTITIES}/ORD-1/verify"))
        if entity is None:
            assert one["valid"] is True
        else:
            assert (one["valid"], one["first_invalid_version"]) == (False, entity[0])
            assert entity[1] in one["reason"]
        stream = ok(await c.get("/v1/streams/orders/verify"))
        assert stream["valid"] is not bool(invalid)
        assert [(i["entity_key"], i["first_invalid_version"]) for i in stream["invalid"]] == invalid


@pytest.mark.parametrize(
    "query",
    [
        {"head_seq": "3"},
        {"head_hash": "a" * 64},
        {"head_seq": "-1", "head_hash": "a" * 64},
        {"head_seq": "x", "head_hash": "a" * 64},
        {"head_seq": "1", "head_hash": "a" * 129},
    ],
)
async def test_verify_log_refuses_half_a_head(client: Client, query: dict[str, str]) -> None:
    problem(await client.get("/v1/verify", params=query), 400)


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "name"),
    [
        (f"{X}/history?form_version=2", "form_version"),
        (f"{X}/history?stream=customers", "stream"),
        (f"{X}/history?key=ORD-Y", "key"),
        (f"{X}/history?services=x", "services"),
        (f"{X}/state?verison=2", "verison"),
        (f"{X}/diff?from_version=1&to_version=2&to=3", "to"),
        (f"{X}/verify?deep=1", "deep"),
        (f"{ENTITIES}?sort=asc", "sort"),
        ("/v1/streams?all=1", "all"),
        ("/v1/streams/orders/verify?entity=ORD-X", "entity"),
        ("/v1/verify?head=3", "head"),
    ],
)
async def test_unknown_query_parameter_is_400(client: Client, url: str, name: str) -> None:
    body = problem(await client.get(url), 400)
    assert name in body["detail"]


@pytest.mark.parametrize(
    ("url", "name"),
    [
        (f"{X}/history?limit=1&limit=2", "limit"),
        (f"{X}/state?version=1&version=1", "version"),
        (f"{X}/diff?from_version=1&to_version=2&to_version=3", "to_version"),
        (f"{ENTITIES}?limit=5&limit=1", "limit"),
        ("/v1/events?actor=alice&actor=bob", "actor"),
        ("/v1/events?stream=orders&stream=customers", "stream"),
        ("/v1/events?since=2026-01-01T00:00:00Z&since=2027-01-01T00:00:00Z", "since"),
    ],
)
async def test_a_parameter_taking_one_value_given_twice_is_400(
    client: Client, url: str, name: str
) -> None:
    """The last value would win silently: `actor=alice&actor=bob` would answer for bob alone."""
    body = problem(await client.get(url), 400)
    assert body["detail"] == f"query parameter {name} is given 2 times; give it once"


async def test_a_repeatable_parameter_may_repeat(client: Client) -> None:
    body = ok(await client.get("/v1/events?type=created&type=updated&limit=1000"))
    assert {e["type"] for e in body["events"]} == {"created", "updated"}


@pytest.mark.parametrize("url", [ENTITIES, f"{X}/history"])
@pytest.mark.parametrize("limit", ["0", "1001", "-1", "ten", ""])
async def test_limit_out_of_range_is_400(client: Client, url: str, limit: str) -> None:
    body = problem(await client.get(url, params={"limit": limit}), 400)
    assert "limit" in body["detail"]


@pytest.mark.parametrize("limit", ["1", "1000"])
async def test_limit_bounds_are_accepted(client: Client, limit: str) -> None:
    ok(await client.get(ENTITIES, params={"limit": limit}))
    ok(await client.get(f"{X}/history", params={"limit": limit}))


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("url", [ENTITIES, f"{X}/history"])
@pytest.mark.parametrize(
    "cursor",
    ["!!!", "", "%%%", "abc", b64(b"\xff\xfe\xfd"), b64(b"entities"), b64(b"history:x"), "x" * 300],
)
async def test_malformed_cursor_is_400(client: Client, url: str, cursor: str) -> None:
    problem(await client.get(url, params={"after": cursor}), 400)


async def test_cursor_of_another_listing_is_400(client: Client, audit_log: AuditLog) -> None:
    entities = ok(await client.get(ENTITIES, params={"limit": 2}))["next"]
    history = ok(await client.get(f"{X}/history", params={"limit": 1}))["next"]
    other = longest(audit_log)[0].entity_key
    other_history = ok(await client.get(f"{ENTITIES}/{other}/history", params={"limit": 1}))["next"]
    assert entities and history and other_history
    problem(await client.get(f"{X}/history", params={"after": entities}), 400)
    problem(await client.get(ENTITIES, params={"after": history}), 400)
    problem(await client.get("/v1/events", params={"after": entities}), 400)
    # one entity's history cursor does not page another's
    problem(await client.get(f"{X}/history", params={"after": other_history}), 400)
    ok(await client.get(f"{ENTITIES}/{other}/history", params={"after": other_history}))


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("GET", "/v1/nope", 404),
        ("GET", "/nope", 404),
        ("GET", "/v1/streams/orders", 404),
        ("GET", f"{X}/nope", 404),
        ("GET", f"{X}", 404),
        ("POST", "/v1/streams", 405),
        ("DELETE", f"{X}/state", 405),
        ("PUT", f"{X}/history", 405),
    ],
)
async def test_unknown_routes_and_methods_are_problems(
    client: Client, method: str, url: str, status: int
) -> None:
    problem(await client.request(method, url), status)


@pytest.mark.parametrize(
    "url",
    [
        f"{ENTITIES}/%00/state",
        f"{ENTITIES}/%C3%28/history",
        f"{ENTITIES}/%2F%2F/state",
        f"{ENTITIES}/..%2F..%2Fverify/state",
        f"{ENTITIES}/{'x' * 5000}/state",
        f"{ENTITIES}/json:null/state",
        f"{ENTITIES}/json:[1,2]/history",
        f"{ENTITIES}/json:1e999/state",
        f"{ENTITIES}/json:NaN/state",
        f"{ENTITIES}/int:-9223372036854775808/state",
        "/v1/streams/%00/entities",
        "/v1/streams/%FF/verify",
        f"{X}/state?at=%00",
        f"{X}/state?at=2026-W01-1T00:00:00Z",
        f"{X}/state?at=2026-01-01T00:00:00.123456789Z",
        f"{X}/state?at=0001-01-01T00:00:00Z",
        f"{X}/state?version=99999999999999999999999",
        f"{X}/history?from_version=-1",
        f"{X}/history?from_version=99999999999999999999",
        f"{X}/history?to_version=0",
        f"{X}/history?limit=1.5",
        f"{X}/history?after=%FF%FE",
        f"{X}/history?limit=2&limit=3",
        f"{ENTITIES}?after={'A' * 199}",
        "/v1/verify?head_seq=99999999999999999999&head_hash=x",
    ],
)
async def test_odd_inputs_never_fail_the_server(client: Client, url: str) -> None:
    r = await client.get(url)
    no_trace(r)
    if r.status_code != 200:
        problem(r, r.status_code)
