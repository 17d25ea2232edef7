"""Read models over the API: status, rows with filters and paging, one row; admin rebuild jobs.

Expected rows are computed here from the log (folded per entity with the history
fold, independent of the projections' code) and from the source documents.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from bson import Decimal128
from litestar.testing import AsyncTestClient

from api import create_app
from eventstore.fold import Fold
from eventstore.keys import typed_key
from eventstore.model import Event
from projections.orders import (
    ORDER_PROJECTIONS,
    ORDER_SUMMARY,
    Change,
    OrderSchema,
    Projection,
    Write,
    order_projections,
)
from projections.runner import STATE_COLLECTION, ProjectionRunner
from tests.api.conftest import ADMIN_KEY, AppFactory, AuditLog, build_log, settings

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
NAMES = ["order_summary", "orders_by_status", "revenue_by_day", "customer_totals"]
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
PAID = {"paid", "shipped", "delivered"}


def stamp(when: datetime) -> str:
    utc = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def amount(value: Any) -> Decimal:
    return value.to_decimal() if isinstance(value, Decimal128) else Decimal(0)


@dataclass
class Final:
    """An entity's last event and its last document (before a deletion, if deleted)."""

    last: Event
    document: dict[str, Any]
    deleted: bool


def fold_log(events: list[Event]) -> tuple[dict[str, Final], list[dict[str, Any]]]:
    """Per typed key (the row key) its final facts; and the last document of every life."""
    finals: dict[str, Final] = {}
    folds: dict[tuple[str, str], Fold] = {}
    lives: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        key = (e.stream, typed_key(e.entity_id))
        fold = folds.setdefault(key, Fold())
        before = fold.state
        after = fold.apply(e)
        if after is not None:
            if before is None:
                lives[key].append(after)
            else:
                lives[key][-1] = after
        document = after if after is not None else before
        finals[typed_key(e.entity_id)] = Final(
            last=e, document=document or {}, deleted=after is None
        )
    return finals, [doc for docs in lives.values() for doc in docs]


_PROJECTED: dict[str, AuditLog] = {}


@pytest.fixture
async def projected() -> AuditLog:
    """The shared log with all four projections caught up (built once; read only)."""
    if "memory" not in _PROJECTED:
        log = await build_log("memory")
        for p in ORDER_PROJECTIONS:
            await ProjectionRunner(log.store, p, clock=log.clock).run(until_caught_up=True)
        _PROJECTED["memory"] = log
    return _PROJECTED["memory"]


@pytest.fixture
async def pclient(projected: AuditLog, make_app: AppFactory) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(make_app(projected.store)) as c:
        yield c


async def rows(
    client: AsyncTestClient[Any], name: str, params: dict[str, str] | None = None, limit: int = 7
) -> list[dict[str, Any]]:
    """Every row of a projection (with filters), page by page; asserts the walk's shape."""
    out: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(1000):
        query: dict[str, str | int] = {**(params or {}), "limit": limit}
        if after is not None:
            query["after"] = after
        r = await client.get(f"/v1/projections/{name}", params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"items", "next"}
        assert len(body["items"]) <= limit
        out.extend(body["items"])
        after = body["next"]
        if after is None:
            return out
        assert len(body["items"]) == limit
    raise AssertionError("the walk never ended")


# -- status -----------------------------------------------------------------------------------
async def test_status_of_every_projection(
    pclient: AsyncTestClient[Any], projected: AuditLog
) -> None:
    head = projected.events[-1].seq
    r = await pclient.get("/v1/projections")
    assert r.status_code == 200
    assert r.json() == [
        {
            "name": name,
            "position": head,
            "lag": 0,
            "state": "stopped",
            "rebuilt_at": None,
            "failed_seq": None,
            "error": None,
            "held_by": None,  # no runner holds a lease here
            "rebuild_needed": False,
            # ORD-X is paid without a total: recorded once in each model that counts money
            "problems": 0 if name == "orders_by_status" else 1,
            # 42, "42" and "a/b" have no customer id
            "orders_without_customer": 3 if name == "customer_totals" else None,
            "state_reads": 0,  # every state was in the cache
        }
        for name in NAMES
    ]


async def test_status_before_running_and_after_a_rebuild(make_app: AppFactory) -> None:
    log = await build_log("memory", orders=4, changes=10)
    head = log.events[-1].seq
    async with AsyncTestClient(make_app(log.store)) as client:
        before = (await client.get("/v1/projections")).json()
        assert [(s["name"], s["position"], s["lag"], s["state"]) for s in before] == [
            (name, 0, head, "stopped") for name in NAMES
        ]
        runner = ProjectionRunner(log.store, ORDER_SUMMARY, clock=log.clock, batch_size=5)
        await runner.rebuild_now()
        after = {s["name"]: s for s in (await client.get("/v1/projections")).json()}
        assert (after["order_summary"]["position"], after["order_summary"]["lag"]) == (head, 0)
        assert after["order_summary"]["rebuilt_at"] == stamp(log.clock.now())
        assert (after["customer_totals"]["position"], after["customer_totals"]["lag"]) == (0, head)
    await log.store.close()


async def test_a_failed_projection_shows_where_and_why(make_app: AppFactory) -> None:
    log = await build_log("memory", orders=3, changes=6)

    def apply(rows: Any, change: Change) -> list[Write]:
        if change.event.entity_key == "ORD-X":
            raise ValueError("no total on ORD-X")
        return []

    broken = Projection(name="broken", collection="rm_broken", keys=lambda c: [], apply=apply)
    x1 = log.of("ORD-X")[0].seq
    runner = ProjectionRunner(log.store, broken, clock=log.clock)
    with pytest.raises(Exception, match="no total on ORD-X"):
        await runner.run(until_caught_up=True)
    app = create_app(settings(), store=log.store, projections_=[ORDER_SUMMARY, broken])
    async with AsyncTestClient(app) as client:
        got = {s["name"]: s for s in (await client.get("/v1/projections")).json()}
        assert got["broken"]["state"] == "failed"
        assert got["broken"]["failed_seq"] == x1
        assert "no total on ORD-X" in got["broken"]["error"]
        assert got["broken"]["position"] < x1
        assert got["order_summary"]["state"] == "stopped"
    await log.store.close()


# -- rows -------------------------------------------------------------------------------------
async def test_order_summary_rows_equal_the_folded_log(
    pclient: AsyncTestClient[Any], projected: AuditLog
) -> None:
    finals, _ = fold_log(projected.events)
    got = await rows(pclient, "order_summary")
    # typed-key order, each entity once (42 and "42" are two rows)
    assert [r["entity_key"] for r in got] == [finals[k].last.entity_key for k in sorted(finals)]
    source = {typed_key(d["_id"]): d for d in await projected.feed.collection("orders").find({})}
    for row, key in zip(got, sorted(finals), strict=True):
        assert row["typed_key"] == key  # the row's own key: its order alone (42 beside "42")
        assert set(row) == {
            "entity_key",
            "typed_key",
            "number",
            "customer",
            "status",
            "items",
            "total",
            "currency",
            "created_at",
            "updated_at",
            "version",
            "deleted",
            "problems",
            "problems_dropped",
        }
        final = finals[key]
        doc = final.document
        assert row["deleted"] is final.deleted, key
        assert row["deleted"] is (key not in source), key
        if not final.deleted:
            assert doc == source[key]
        assert row["version"] == final.last.version
        assert row["updated_at"] == stamp(final.last.occurred_at)
        assert row["status"] == doc.get("status")
        assert row["number"] == doc.get("number")
        assert row["currency"] == doc.get("currency")
        assert row["customer"] == doc.get("customer")
        # money as a string, exactly the Decimal128's value; never a float
        assert isinstance(row["total"], str)
        assert Decimal(row["total"]) == amount(doc.get("total"))
        assert row["items"] == [
            {**i, "unit_price": str(i["unit_price"])} if "unit_price" in i else i
            for i in doc.get("items", [])
        ]
        for item in row["items"]:
            assert isinstance(item.get("unit_price", ""), str)
        assert RFC3339.match(row["created_at"]) and RFC3339.match(row["updated_at"])
        if isinstance(doc.get("createdAt"), datetime):
            assert row["created_at"] == stamp(doc["createdAt"])


async def test_order_summary_of_known_orders(
    pclient: AsyncTestClient[Any], projected: AuditLog
) -> None:
    t = projected.times
    r = await pclient.get("/v1/projections/order_summary/ORD-X")
    assert r.status_code == 200
    assert r.json() == {
        "entity_key": "ORD-X",
        "typed_key": "str:ORD-X",
        "number": "ORD-X",
        "customer": {"id": "C-X", "name": "Xavier", "email": "xavier@example.com"},
        "status": "shipped",
        "items": [],
        "total": "0",
        "currency": None,
        "created_at": stamp(t["x1"]),
        "updated_at": stamp(t["x4"]),
        "version": 4,
        "deleted": False,
        # paid (v2) and shipped without a total: the problem first seen at seq 245 is kept
        "problems": [{"seq": 245, "field": "total", "value": None, "reason": "missing"}],
        "problems_dropped": 0,
    }
    r = await pclient.get("/v1/projections/order_summary/a%2Fb")
    assert r.status_code == 200
    assert r.json()["entity_key"] == "a/b"


async def test_equality_filters(pclient: AsyncTestClient[Any], projected: AuditLog) -> None:
    finals, _ = fold_log(projected.events)
    everything = await rows(pclient, "order_summary", limit=1000)
    for params, want in (
        ({"status": "paid"}, {k for k, f in finals.items() if f.document.get("status") == "paid"}),
        (
            {"currency": "EUR"},
            {k for k, f in finals.items() if f.document.get("currency") == "EUR"},
        ),
        ({"deleted": "false"}, {k for k, f in finals.items() if not f.deleted}),
        ({"deleted": "true"}, {k for k, f in finals.items() if f.deleted}),
        (
            {"status": "paid", "currency": "EUR", "deleted": "false"},
            {
                k
                for k, f in finals.items()
                if not f.deleted
                and f.document.get("status") == "paid"
                and f.document.get("currency") == "EUR"
            },
        ),
        ({"number": "ORD-X"}, {"str:ORD-X"}),
        ({"entity_key": "a/b"}, {"str:a/b"}),
        ({"typed_key": "str:a/b"}, {"str:a/b"}),  # the row's key: one row at most
        ({"typed_key": "str:a/b", "status": "no-such-status"}, set()),
        ({"typed_key": "int:424242"}, set()),
        ({"status": "no-such-status"}, set()),
    ):
        assert want or "no-such-status" in params.values() or "int:424242" in params.values()
        got = await rows(pclient, "order_summary", params, limit=3)
        assert [r["entity_key"] for r in got] == [
            finals[k].last.entity_key for k in sorted(want)
        ], params
        # the filtered rows are the very rows of the unfiltered listing
        keys = [k for k in sorted(finals)]
        assert got == [r for r, k in zip(everything, keys, strict=True) if k in want]
    # a time field compares instants: the Z form and an offset form are the same filter
    created = stamp(projected.times["x1"])
    for value in (created, projected.times["x1"].astimezone().isoformat()):
        got = await rows(pclient, "order_summary", {"created_at": value})
        assert [r["entity_key"] for r in got] == ["ORD-X"]
    got = await rows(pclient, "customer_totals", {"name": "Xavier"})
    assert got == [
        {
            "customer": "C-X",
            "name": "Xavier",
            "name_from": "ORD-X",  # the order the name came from (an erasure of it clears it)
            "orders": 1,
            # ORD-X is paid without a total or currency: 0 under "?", and the problem recorded
            "lifetime_spend": {"?": "0"},
            "last_order_at": stamp(projected.times["x1"]),
            "problems": [{"seq": 245, "field": "total", "value": None, "reason": "missing"}],
            "problems_dropped": 0,
        }
    ]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/projections/order_summary?colour=red", 400),  # no such row field
        ("/v1/projections/order_summary?total=1", 400),  # numeric: not filterable
        ("/v1/projections/order_summary?version=2", 400),
        ("/v1/projections/order_summary?customer=C-X", 400),  # a sub-document
        ("/v1/projections/orders_by_status?count=1", 400),
        ("/v1/projections/revenue_by_day?revenue=0", 400),
        ("/v1/projections/order_summary?deleted=maybe", 400),
        ("/v1/projections/order_summary?created_at=2026-01-01T00:02:02", 400),  # no zone
        ("/v1/projections/order_summary?status=paid&status=shipped", 400),
        ("/v1/projections/order_summary?limit=0", 400),
        ("/v1/projections/order_summary?after=bogus", 400),
        ("/v1/projections/nope", 404),
        ("/v1/projections/nope/x", 404),
        ("/v1/projections/order_summary/nope", 404),
        ("/v1/projections/revenue_by_day/2026-01-01", 404),
    ],
)
async def test_bad_requests_are_problems(
    pclient: AsyncTestClient[Any], path: str, status: int
) -> None:
    r = await pclient.get(path)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == status


@pytest.mark.parametrize("field", ["customer", "items", "problems", "total", "version"])
async def test_a_field_that_is_no_filter_says_which_are(
    pclient: AsyncTestClient[Any], field: str
) -> None:
    r = await pclient.get(f"/v1/projections/order_summary?{field}=x")
    assert r.status_code == 400
    assert r.json()["detail"] == (
        f"{field} cannot be filtered on: it holds numbers or structures (filters: entity_key,"
        " typed_key, number, status, currency, created_at, updated_at, deleted;"
        " paging: limit, after)"
    )


async def test_an_unknown_row_field_names_the_filters_apart_from_paging(
    pclient: AsyncTestClient[Any],
) -> None:
    r = await pclient.get("/v1/projections/orders_by_status?colour=red")
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"] == (
        "orders_by_status has no row field 'colour' (filters: status; paging: limit, after)"
    )


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("limit=abc&limit=1", "limit"),  # the last value won: 200
        ("limit=1&limit=1", "limit"),
        ("after=x&after=y", "after"),  # only y was read (and refused)
        ("status=paid&status=paid", "status"),
    ],
)
async def test_a_rows_parameter_given_twice_is_400_like_every_listing(
    pclient: AsyncTestClient[Any], query: str, name: str
) -> None:
    r = await pclient.get(f"/v1/projections/orders_by_status?{query}")
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"] == f"query parameter {name} is given 2 times; give it once"


async def test_a_cursor_of_another_projection_is_refused(pclient: AsyncTestClient[Any]) -> None:
    first = (await pclient.get("/v1/projections/order_summary", params={"limit": 2})).json()
    r = await pclient.get("/v1/projections/customer_totals", params={"after": first["next"]})
    assert r.status_code == 400


async def test_orders_by_status_counts_live_orders(
    pclient: AsyncTestClient[Any], projected: AuditLog
) -> None:
    live = await projected.feed.collection("orders").find({})
    counts = Counter(d.get("status") for d in live)
    got = await rows(pclient, "orders_by_status", limit=2)
    assert [r["status"] for r in got] == sorted(r["status"] for r in got)
    assert {r["status"]: r["count"] for r in got if r["count"]} == dict(counts)
    r = await pclient.get("/v1/projections/orders_by_status", params={"status": "paid"})
    assert r.json() == {"items": [{"status": "paid", "count": counts["paid"]}], "next": None}
    r = await pclient.get("/v1/projections/orders_by_status/pending")
    assert r.json() == {"status": "pending", "count": counts["pending"]}


async def test_revenue_by_day_nets_out_per_currency(
    pclient: AsyncTestClient[Any], projected: AuditLog
) -> None:
    """Every change of this log is on 2026-01-01: each currency's row is the net of all lives."""
    assert {e.occurred_at.date().isoformat() for e in projected.events} == {"2026-01-01"}
    _, lives = fold_log(projected.events)
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    orders: Counter[str] = Counter()
    for doc in lives:  # a life's last state: paid or not; deleting changes no revenue
        if doc.get("status") in PAID:
            currency = doc.get("currency")
            currency = currency if isinstance(currency, str) else "?"  # no currency: "?"
            revenue[currency] += amount(doc.get("total"))
            orders[currency] += 1
    got = await rows(pclient, "revenue_by_day", limit=1)
    assert [(r["day"], r["currency"]) for r in got] == sorted(
        (r["day"], r["currency"]) for r in got
    )
    assert {r["currency"] for r in got} >= set(orders)
    for row in got:
        assert isinstance(row["revenue"], str)
        assert Decimal(row["revenue"]) == revenue.get(row["currency"], Decimal(0)), row
        assert row["orders"] == orders.get(row["currency"], 0), row
    eur = await pclient.get("/v1/projections/revenue_by_day/2026-01-01:EUR")
    assert eur.status_code == 200
    assert eur.json() == next(r for r in got if r["currency"] == "EUR")
    assert Decimal(eur.json()["revenue"]) == revenue["EUR"] > 0
    filtered = await rows(pclient, "revenue_by_day", {"currency": "EUR", "day": "2026-01-01"})
    assert filtered == [eur.json()]


async def test_customer_totals_net_spend(
    pclient: AsyncTestClient[Any], projected: AuditLog
) -> None:
    _, lives = fold_log(projected.events)
    spend: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    placed: Counter[str] = Counter()
    for doc in lives:
        customer = doc.get("customer")
        cid = customer.get("id") if isinstance(customer, dict) else None
        if cid is None:
            continue
        placed[cid] += 1
        if doc.get("status") in PAID:
            spend[cid][doc.get("currency") or "?"] += amount(doc.get("total"))
    got = await rows(pclient, "customer_totals", limit=7)
    assert [r["customer"] for r in got] == sorted(r["customer"] for r in got)
    assert {r["customer"] for r in got if r["orders"]} == set(placed)
    for row in got:
        assert all(isinstance(v, str) for v in row["lifetime_spend"].values())
        got_spend = {c: Decimal(v) for c, v in row["lifetime_spend"].items() if Decimal(v)}
        assert got_spend == {c: v for c, v in spend[row["customer"]].items() if v}, row
        assert row["orders"] == placed.get(row["customer"], 0), row
        assert row["last_order_at"] is None or RFC3339.match(row["last_order_at"])


# -- admin: rebuild jobs ----------------------------------------------------------------------
async def _job(client: AsyncTestClient[Any], job: str) -> dict[str, Any]:
    r = await client.get(f"/v1/admin/jobs/{job}", headers=ADMIN)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def _until_done(client: AsyncTestClient[Any], job: str) -> dict[str, Any]:
    for _ in range(500):
        body = await _job(client, job)
        if body["state"] in ("succeeded", "failed"):
            return body
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job} never finished")


async def test_rebuild_job_runs_to_success(make_app: AppFactory) -> None:
    log = await build_log("memory", orders=5, changes=20)
    head = log.events[-1].seq
    finals, _ = fold_log(log.events)
    try:
        async with AsyncTestClient(make_app(log.store, admin_key=ADMIN_KEY)) as client:
            assert await rows(client, "order_summary") == []
            r = await client.post("/v1/admin/projections/order_summary/rebuild", headers=ADMIN)
            assert r.status_code == 202, r.text
            assert set(r.json()) == {"job"}
            job = r.json()["job"]
            done = await _until_done(client, job)
            assert done["state"] == "succeeded", done
            assert done["processed"] == done["total"] == head
            assert done["job"] == job and done["projection"] == "order_summary"
            assert done["error"] is None
            for when in ("requested_at", "started_at", "finished_at"):
                assert RFC3339.match(done[when]), done
            assert done["requested_at"] <= done["started_at"] <= done["finished_at"]
            got = await rows(client, "order_summary")
            assert [r["entity_key"] for r in got] == [
                finals[k].last.entity_key for k in sorted(finals)
            ]
            status = {s["name"]: s for s in (await client.get("/v1/projections")).json()}
            assert (status["order_summary"]["position"], status["order_summary"]["lag"]) == (
                head,
                0,
            )
            assert status["order_summary"]["rebuilt_at"] is not None
            # nobody follows the projection after a rebuild the API ran itself
            assert status["order_summary"]["state"] == "stopped"
            assert await log.store.leases.get("projection:order_summary") is None
            # once it is done, another rebuild may be requested
            r = await client.post("/v1/admin/projections/order_summary/rebuild", headers=ADMIN)
            assert r.status_code == 202
            assert (await _until_done(client, r.json()["job"]))["state"] == "succeeded"
    finally:
        await log.store.close()


async def test_a_second_request_while_one_is_queued_is_refused(make_app: AppFactory) -> None:
    log = await build_log("memory", orders=3, changes=6)
    head = log.events[-1].seq
    # another instance holds the projection's lease: the request stays queued for it
    assert await log.store.leases.acquire(
        "projection:order_summary", "other", now=datetime.now(UTC), ttl=60
    )
    try:
        async with AsyncTestClient(make_app(log.store, admin_key=ADMIN_KEY)) as client:
            url = "/v1/admin/projections/order_summary/rebuild"
            r = await client.post(url, headers=ADMIN)
            assert r.status_code == 202
            job = r.json()["job"]
            await asyncio.sleep(0.05)
            assert (await _job(client, job))["state"] == "queued"
            r = await client.post(url, headers=ADMIN)
            assert r.status_code == 409, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["status"] == 409
            assert r.json()["type"].endswith("rebuild-active")
            # other projections are not affected
            r = await client.post("/v1/admin/projections/orders_by_status/rebuild", headers=ADMIN)
            assert r.status_code == 202
            assert (await _until_done(client, r.json()["job"]))["state"] == "succeeded"
            # the holder runs the queued job between its batches
            holder = ProjectionRunner(
                log.store, ORDER_SUMMARY, clock=log.clock, owner="other", lease_seconds=60
            )
            await holder.run(until_caught_up=True)
            done = await _job(client, job)
            assert (done["state"], done["processed"], done["total"]) == ("succeeded", head, head)
            r = await client.post(url, headers=ADMIN)
            assert r.status_code == 202
    finally:
        await log.store.close()


async def test_admin_errors(make_app: AppFactory, projected: AuditLog) -> None:
    async with AsyncTestClient(make_app(projected.store, admin_key=ADMIN_KEY)) as client:
        r = await client.post("/v1/admin/projections/nope/rebuild", headers=ADMIN)
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("application/problem+json")
        r = await client.get("/v1/admin/jobs/no-such-job", headers=ADMIN)
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("application/problem+json")
        r = await client.post("/v1/admin/projections/order_summary/rebuild")
        assert r.status_code == 401
        assert r.headers["www-authenticate"].lower().startswith("bearer")
        r = await client.get("/v1/admin/jobs/x", headers={"authorization": "Bearer wrong"})
        assert r.status_code == 401
        assert ADMIN_KEY not in r.text
    async with AsyncTestClient(make_app(projected.store)) as client:  # admin disabled
        r = await client.post("/v1/admin/projections/order_summary/rebuild", headers=ADMIN)
        assert r.status_code == 403


async def test_order_rows_are_per_entity_and_a_bare_key_naming_two_is_409(
    pclient: AsyncTestClient[Any],
) -> None:
    both = await pclient.get("/v1/projections/order_summary/42")
    assert both.status_code == 409
    assert both.headers["content-type"].startswith("application/problem+json")
    assert both.json()["typed_keys"] == ["int:42", "str:42"]
    for typed in ("int:42", "str:42"):
        row = await pclient.get(f"/v1/projections/order_summary/{typed}")
        assert row.status_code == 200 and row.json()["entity_key"] == "42"
    assert (await pclient.get("/v1/projections/order_summary/oid:zz")).status_code == 400
    assert (await pclient.get("/v1/projections/order_summary/int:43")).status_code == 404
    # A bare key that names no row is named as asked (it has no type to report).
    hex24 = "6b168d749c8ad304089e0000"
    missing = await pclient.get(f"/v1/projections/order_summary/{hex24}")
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"no row '{hex24}' in order_summary"


async def test_rows_built_by_earlier_rules_or_recording_none_say_rebuild_needed(
    projected: AuditLog, make_app: AppFactory
) -> None:
    """ORDER_RULES: the same log and mapping give other rows since, so rows built before
    (recording the text without rules, or no text at all) must be rebuilt."""

    async def needed() -> dict[str, bool]:
        async with AsyncTestClient(make_app(projected.store)) as client:
            return {
                s["name"]: s["rebuild_needed"] for s in (await client.get("/v1/projections")).json()
            }

    assert await needed() == dict.fromkeys(NAMES, False)
    recorded = await projected.store.read_models.get_many(STATE_COLLECTION, ["order_summary"])
    state = recorded["order_summary"]
    older = {**state, "built_with": OrderSchema().fingerprint(rules=1)}
    await projected.store.read_models.write(STATE_COLLECTION, [("order_summary", older)])
    assert await needed() == {**dict.fromkeys(NAMES, False), "order_summary": True}
    unrecorded = {k: v for k, v in state.items() if k != "built_with"}
    await projected.store.read_models.write(STATE_COLLECTION, [("order_summary", unrecorded)])
    assert await needed() == {**dict.fromkeys(NAMES, False), "order_summary": True}
    await projected.store.read_models.write(STATE_COLLECTION, [("order_summary", state)])
    assert await needed() == dict.fromkeys(NAMES, False)


async def test_problems_and_rebuild_needed_show_in_metrics(
    projected: AuditLog, make_app: AppFactory
) -> None:
    async with AsyncTestClient(make_app(projected.store)) as client:
        text = (await client.get("/metrics")).text
    # ORD-X, paid without a total: one problem in each model that counts money
    assert 'eventstore_projection_problems{projection="order_summary"} 1.0' in text
    assert 'eventstore_projection_problems{projection="revenue_by_day"} 1.0' in text
    assert 'eventstore_projection_problems{projection="orders_by_status"} 0.0' in text
    assert 'eventstore_projection_rebuild_needed{projection="order_summary"} 0.0' in text
    # the same rows under another mapping must be rebuilt
    mapped = order_projections(OrderSchema(stream="purchases"))
    app = create_app(settings(), store=projected.store, projections_=mapped)
    async with AsyncTestClient(app) as client:
        text = (await client.get("/metrics")).text
        status = {s["name"]: s for s in (await client.get("/v1/projections")).json()}
    assert 'eventstore_projection_rebuild_needed{projection="order_summary"} 1.0' in text
    assert all(status[n]["rebuild_needed"] for n in NAMES)
