"""Bearer keys: READ_KEYS on `/v1` reads, ADMIN_KEY on `/v1/admin`; open health, metrics and docs.

Keys must never come back in a body, a header or a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from api.problems import TYPE_BASE
from eventstore.model import MAX_SEQ
from tests.api.conftest import ADMIN_KEY, READ_KEY, AppFactory, AuditLog, build_log

Client = AsyncTestClient[Any]

WRONG_KEY = "wrong-secret-key"
SECRETS = (ADMIN_KEY, READ_KEY, WRONG_KEY)
X = "/v1/streams/orders/entities/ORD-X"
REBUILD = "/v1/admin/projections/order_summary/rebuild"

# Every kind of `/v1` read, each answering 200 on the shared log.
READS = [
    "/v1/streams",
    "/v1/streams/orders/entities?limit=5",
    f"{X}/history",
    f"{X}/state",
    f"{X}/state?at=2026-01-01T00:03:30Z",
    f"{X}/diff?from_version=1&to_version=3",
    f"{X}/verify",
    "/v1/streams/orders/entities/a%2Fb/history",
    "/v1/streams/orders/verify",
    "/v1/verify",
    "/v1/events?stream=orders&limit=5",
    "/v1/projections",
]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def no_secrets(r: httpx.Response) -> None:
    """No key in the body or any header of a response."""
    text = r.text + json.dumps(dict(r.headers))
    for secret in SECRETS:
        assert secret not in text


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    assert "Traceback" not in r.text
    no_secrets(r)
    return body


def unauthorized(r: httpx.Response) -> dict[str, Any]:
    body = problem(r, 401)
    assert body["type"] == f"{TYPE_BASE}unauthorized"
    # RFC 6750 section 3: a key sent that is none names the error; no key, no error code.
    if body["detail"] == "the key is not valid":
        assert r.headers["www-authenticate"] == 'Bearer realm="eventstore", error="invalid_token"'
    else:
        assert r.headers["www-authenticate"] == 'Bearer realm="eventstore"'
    return body


def forbidden(r: httpx.Response) -> dict[str, Any]:
    body = problem(r, 403)
    assert body["type"] == f"{TYPE_BASE}forbidden"
    return body


@pytest.fixture
async def secured(audit_log: AuditLog, make_app: AppFactory) -> AsyncIterator[Client]:
    """An app over the shared log with READ_KEYS and ADMIN_KEY set."""
    app = make_app(audit_log.store, read_keys=(READ_KEY,), admin_key=ADMIN_KEY)
    async with AsyncTestClient(app) as c:
        yield c


# -- reads -----------------------------------------------------------------------------------


async def test_reads_need_a_key_when_read_keys_are_set(
    secured: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for url in READS:
        unauthorized(await secured.get(url))
        unauthorized(await secured.get(url, headers=bearer(WRONG_KEY)))
        unauthorized(await secured.get(url, headers={"Authorization": f"Basic {READ_KEY}"}))
        unauthorized(await secured.get(url, headers={"Authorization": "Bearer "}))
        unauthorized(await secured.get(url, headers=bearer(READ_KEY + "x")))
        unauthorized(await secured.get(url, headers=bearer(READ_KEY[:-1])))
    for secret in SECRETS:
        assert secret not in caplog.text


async def test_read_key_and_admin_key_both_read(
    secured: Client, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for url in READS:
        open_body = (await client.get(url)).json()
        for key in (READ_KEY, ADMIN_KEY):
            r = await secured.get(url, headers=bearer(key))
            assert r.status_code == 200, (url, r.text)
            no_secrets(r)
            assert r.json() == open_body
        # the scheme is case-insensitive (RFC 9110)
        r = await secured.get(url, headers={"Authorization": f"bearer {READ_KEY}"})
        assert r.status_code == 200
    for secret in SECRETS:
        assert secret not in caplog.text


async def test_the_key_is_checked_before_the_request(secured: Client) -> None:
    """Without a key nothing about the data or the parameters is told."""
    for url in (
        "/v1/streams/customers/entities",
        f"{X}/history?form_version=2",
        "/v1/streams/orders/entities/nope/state",
        "/v1/streams/orders/entities/42/state",
        f"{X}/state?at=yesterday",
    ):
        unauthorized(await secured.get(url))
    # with a key, the usual answers
    problem(await secured.get("/v1/streams/customers/entities", headers=bearer(READ_KEY)), 404)
    problem(await secured.get(f"{X}/history?form_version=2", headers=bearer(READ_KEY)), 400)
    problem(await secured.get("/v1/nope", headers=bearer(READ_KEY)), 404)


async def test_reads_are_open_without_read_keys(client: Client) -> None:
    for url in READS:
        r = await client.get(url)
        assert r.status_code == 200, (url, r.text)
        # a key sent anyway is ignored, whatever it is
        assert (await client.get(url, headers=bearer(WRONG_KEY))).status_code == 200


async def test_admin_key_only_set_leaves_reads_open(
    audit_log: AuditLog, make_app: AppFactory
) -> None:
    async with AsyncTestClient(make_app(audit_log.store, admin_key=ADMIN_KEY)) as c:
        for url in READS:
            assert (await c.get(url)).status_code == 200, url
        unauthorized(await c.get("/v1/admin/jobs/x"))
        unauthorized(await c.get("/v1/admin/jobs/x", headers=bearer(READ_KEY)))


# -- admin -----------------------------------------------------------------------------------


async def test_admin_is_disabled_without_admin_key(
    audit_log: AuditLog, make_app: AppFactory
) -> None:
    for app in (
        make_app(audit_log.store),
        make_app(audit_log.store, read_keys=(READ_KEY,)),
    ):
        async with AsyncTestClient(app) as c:
            for headers in ({}, bearer(ADMIN_KEY), bearer(READ_KEY), bearer(WRONG_KEY)):
                body = forbidden(await c.post(REBUILD, headers=headers))
                assert "ADMIN_KEY" in body["detail"]
                forbidden(await c.get("/v1/admin/jobs/x", headers=headers))


async def test_admin_needs_the_admin_key(secured: Client) -> None:
    for method, url in (("POST", REBUILD), ("GET", "/v1/admin/jobs/x")):
        unauthorized(await secured.request(method, url))
        unauthorized(await secured.request(method, url, headers=bearer(WRONG_KEY)))
        unauthorized(
            await secured.request(method, url, headers={"Authorization": f"Basic {ADMIN_KEY}"})
        )
        body = forbidden(await secured.request(method, url, headers=bearer(READ_KEY)))
        assert "read key" in body["detail"]
    # the admin key: an unknown job, an unknown projection (nothing is written)
    body = problem(await secured.get("/v1/admin/jobs/x", headers=bearer(ADMIN_KEY)), 404)
    assert "x" in body["detail"]
    problem(
        await secured.post("/v1/admin/projections/nope/rebuild", headers=bearer(ADMIN_KEY)), 404
    )


async def test_two_keys_joined_in_one_header_are_not_a_key(secured: Client) -> None:
    """A proxy may join repeated headers with a comma (RFC 9110); a bearer token has none.

    (Two separate header lines are refused with 400: tests/e2e/test_repeated_headers.py.)
    """
    for url, key in ((READS[0], READ_KEY), ("/v1/admin/jobs/x", ADMIN_KEY)):
        for pair in ((key, WRONG_KEY), (WRONG_KEY, key), (key, key)):
            joined = ", ".join(f"Bearer {k}" for k in pair)
            unauthorized(await secured.get(url, headers={"Authorization": joined}))


async def raw_get(client: Client, path: str, headers: list[tuple[str, str]]) -> tuple[int, Any]:
    """A GET straight to the ASGI app, header lines as given (a test client would join repeats)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await client.app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)


async def test_two_authorization_lines_are_refused_whatever_their_order(secured: Client) -> None:
    """Two keys on two header lines (as uvicorn passes them): which one counts is a guess."""
    for url, key in ((READS[0], READ_KEY), ("/v1/admin/jobs/x", ADMIN_KEY)):
        for pair in ((key, WRONG_KEY), (WRONG_KEY, key), (key, key)):
            lines = [("Authorization", f"Bearer {k}") for k in pair]
            status, body = await raw_get(secured, url, lines)
            assert status == 400
            assert body["detail"] == "the Authorization header is given 2 times; send it once"
    assert (await raw_get(secured, READS[0], [("Authorization", f"Bearer {READ_KEY}")]))[0] == 200


async def test_admin_key_requests_a_rebuild(make_app: AppFactory) -> None:
    log = await build_log("memory", orders=5, changes=20)
    app = make_app(log.store, read_keys=(READ_KEY,), admin_key=ADMIN_KEY)
    admin = bearer(ADMIN_KEY)
    async with AsyncTestClient(app) as c:
        r = await c.post(REBUILD, headers=admin)
        assert r.status_code == 202, r.text
        no_secrets(r)
        job = r.json()["job"]
        assert isinstance(job, str) and job
        state: dict[str, Any] = {}
        for _ in range(400):
            r = await c.get(f"/v1/admin/jobs/{job}", headers=admin)
            assert r.status_code == 200, r.text
            no_secrets(r)
            state = r.json()
            if state["state"] in ("succeeded", "failed"):
                break
            await asyncio.sleep(0.005)
        assert state["state"] == "succeeded", state
        assert state["job"] == job and state["error"] is None
        assert state["processed"] == state["total"] == len(log.events)
        assert state["started_at"] and state["finished_at"]
        # a read key can read the result, not see the job
        rows = await c.get("/v1/projections/order_summary?limit=1000", headers=bearer(READ_KEY))
        assert rows.status_code == 200
        assert {row["entity_key"] for row in rows.json()["items"]} == {
            e.entity_key for e in log.events
        }
        problem(await c.get(f"/v1/admin/jobs/{job}", headers=bearer(READ_KEY)), 403)
    await log.store.close()


async def test_each_refusal_says_why(audit_log: AuditLog, make_app: AppFactory) -> None:
    """The detail and type of every refusal, exactly: what is missing or wrong, never which key."""
    async with AsyncTestClient(make_app(audit_log.store, read_keys=(READ_KEY,))) as c:
        body = forbidden(await c.post(REBUILD, headers=bearer(READ_KEY)))
        assert body["detail"] == "admin is disabled: set EVENTSTORE_ADMIN_KEY to enable it"
    app = make_app(audit_log.store, read_keys=(READ_KEY,), admin_key=ADMIN_KEY)
    async with AsyncTestClient(app) as c:
        body = unauthorized(await c.get("/v1/streams"))
        assert body["detail"] == "this API needs a read key: send `Authorization: Bearer <key>`"
        body = unauthorized(await c.get("/v1/streams", headers=bearer(WRONG_KEY)))
        assert body["detail"] == "the key is not valid"
        body = unauthorized(await c.post(REBUILD))
        assert body["detail"] == "admin needs the admin key: send `Authorization: Bearer <key>`"
        body = unauthorized(await c.post(REBUILD, headers=bearer(WRONG_KEY)))
        assert body["detail"] == "the key is not valid"
        body = forbidden(await c.post(REBUILD, headers=bearer(READ_KEY)))
        assert body["detail"] == "a read key cannot use admin endpoints"


async def test_spaces_around_the_key_are_ignored(secured: Client) -> None:
    """`Bearer  <key> ` (extra spaces) is the key; the scheme is the first word."""
    for header in (f"Bearer  {READ_KEY}", f"  Bearer {READ_KEY}  ", f"Bearer   {READ_KEY} "):
        r = await secured.get("/v1/streams", headers={"Authorization": header})
        assert r.status_code == 200, (header, r.text)
    unauthorized(await secured.get("/v1/streams", headers={"Authorization": f"Bearer{READ_KEY}"}))
    problem(
        await secured.get("/v1/admin/jobs/x", headers={"Authorization": f"Bearer  {ADMIN_KEY}"}),
        404,
    )


# -- open endpoints --------------------------------------------------------------------------


async def test_health_and_metrics_need_no_key(secured: Client) -> None:
    live = await secured.get("/health/live")
    assert live.status_code == 200 and live.json()["status"] == "live"
    ready = await secured.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    await secured.get("/v1/streams", headers=bearer(READ_KEY))
    metrics = await secured.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "eventstore_up 1" in metrics.text
    for r in (live, ready, metrics):
        no_secrets(r)


async def test_openapi_document_lists_the_api(secured: Client) -> None:
    r = await secured.get("/schema/openapi.json")
    assert r.status_code == 200
    doc = json.loads(r.text)
    assert doc["openapi"].startswith("3.")
    paths = set(doc["paths"])
    entity = "/v1/streams/{stream}/entities/{key}"
    assert {
        "/v1/streams",
        "/v1/streams/{stream}/entities",
        f"{entity}/history",
        f"{entity}/state",
        f"{entity}/diff",
        f"{entity}/verify",
        "/v1/streams/{stream}/verify",
        "/v1/verify",
        "/v1/events",
        "/v1/projections",
        "/v1/admin/projections/{name}/rebuild",
        "/v1/admin/jobs/{job}",
    } <= paths
    history = doc["paths"][f"{entity}/history"]["get"]
    query = {p["name"] for p in history["parameters"] if p["in"] == "query"}
    assert query == {"from_version", "to_version", "limit", "after"}
    state = doc["paths"][f"{entity}/state"]["get"]
    assert {p["name"] for p in state["parameters"] if p["in"] == "query"} == {"at", "version"}
    no_secrets(r)


async def test_browsable_docs(secured: Client) -> None:
    r = await secured.get("/schema")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "<html" in r.text.lower()


def _integer_bounds(node: Any, integer: bool = False) -> list[Any]:
    """Every bound of an integer schema in an OpenAPI document (within `oneOf` too)."""
    found = []
    if isinstance(node, dict):
        integer = (
            integer
            or node.get("type") == "integer"
            or any(
                isinstance(o, dict) and o.get("type") == "integer" for o in node.get("oneOf", [])
            )
        )
        for k, v in node.items():
            if integer and k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                found.append(v)
            elif isinstance(v, (dict, list)):
                found += _integer_bounds(v, integer and k == "oneOf")
    elif isinstance(node, list):
        for v in node:
            found += _integer_bounds(v, integer)
    return found


async def test_the_openapi_document_states_the_bounds_and_forms_the_api_takes(
    secured: Client,
) -> None:
    """Integer bounds are integers (Litestar wrote 2**62 as 4.611686018427388e+18, a larger
    number to a client, which then sent seqs the API refused), each as the API enforces it;
    times are JSON Schema's date-time (RFC 3339)."""
    doc = json.loads((await secured.get("/schema/openapi.json")).text)
    bounds = _integer_bounds(doc["paths"])
    assert len(bounds) > 20
    assert [b for b in bounds if not isinstance(b, int)] == []

    def parameter(path: str, name: str) -> dict[str, Any]:
        [found] = [p for p in doc["paths"][path]["get"]["parameters"] if p["name"] == name]
        return dict(found["schema"])

    assert parameter("/v1/admin/subscriptions/{name}/parked", "after")["maximum"] == MAX_SEQ
    assert parameter("/v1/proof/inclusion", "seq")["maximum"] == MAX_SEQ
    assert parameter("/v1/events/{seq}/proof", "seq")["minimum"] == 1
    limit = parameter("/v1/events", "limit")
    assert (limit["minimum"], limit["maximum"]) == (1, 1000)
    for path, name in [
        ("/v1/events", "since"),
        ("/v1/events", "until"),
        ("/v1/streams/{stream}/entities/{key}/state", "at"),
    ]:
        assert parameter(path, name)["format"] == "date-time", (path, name)
