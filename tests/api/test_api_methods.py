"""Every route of the app, with every method: OPTIONS, HEAD, its own methods, undeclared ones.

The routes are read from the app itself (`app.routes`), so a route added later is
walked too. For each: no 5xx; OPTIONS is 204 with `Allow` listing exactly what
the path answers (HEAD wherever GET, OPTIONS) and needs no key; an undeclared
method is 405 problem+json with the same `Allow`; HEAD has GET's status and
headers (content type, length and encoding included) and no body.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from litestar.routes import HTTPRoute

from api import create_app
from api.app import EventStoreApp
from tests.api.conftest import ADMIN_KEY, READ_KEY, AuditLog, build_log, settings

README: Final = Path(__file__).resolve().parents[2] / "README.md"

UNDECLARED: Final = ("PUT", "PATCH", "DELETE", "TRACE", "CONNECT", "PROPFIND")
# Values for path parameters, by name; a `:path` parameter gets an asset that exists.
PATH_VALUES: Final = {
    "stream": "orders",
    "key": "ORD-X",
    "name": "order_summary",
    "job": "no-such-job",
    "file_path": "explorer.js",
    "seq": "1",
}
# Bounded queries where the bare route would stream without end.
QUERIES: Final = {"/v1/events/live": {"after": "0", "limit": "1"}}
# Bodies that change between two requests (the request counters in /metrics).
VOLATILE: Final = {"/metrics"}
AUTH: Final = {"Authorization": f"Bearer {ADMIN_KEY}"}
ACCEPTS: Final[tuple[dict[str, str], ...]] = (
    {"Accept-Encoding": "br, gzip"},
    {"Accept-Encoding": "gzip", "Accept": "text/csv"},
    {"Accept": "application/x-ndjson"},
    {},
)
_PARAM: Final = re.compile(r"\{(\w+):(\w+)\}")


def concrete(route: HTTPRoute) -> str:
    """The route's path with a value for each parameter."""
    return _PARAM.sub(lambda m: "1" if m[2] == "int" else PATH_VALUES.get(m[1], "x"), route.path)


def http_routes(app: EventStoreApp) -> list[HTTPRoute]:
    return [r for r in app.routes if isinstance(r, HTTPRoute)]


def declared(route: HTTPRoute) -> set[str]:
    """What the path answers: its methods, HEAD with GET, OPTIONS."""
    methods = set(route.methods) | {"OPTIONS"}
    return methods | {"HEAD"} if "GET" in methods else methods


def allow(response: httpx.Response) -> set[str]:
    return {m.strip() for m in response.headers.get("allow", "").split(",") if m.strip()}


_LOG: list[AuditLog] = []


@pytest.fixture
async def log() -> AuditLog:
    """A small log of this module's own (a rebuild is requested on it)."""
    if not _LOG:
        _LOG.append(await build_log("memory", orders=5, changes=20))
    return _LOG[0]


@pytest.fixture
async def client(log: AuditLog) -> AsyncIterator[httpx.AsyncClient]:
    """An app with both keys set (the guards in the way), over its own small log."""
    app = create_app(settings(admin_key=ADMIN_KEY, read_keys=(READ_KEY,)), store=log.store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        c.app = app  # type: ignore[attr-defined]
        yield c


def test_every_route_is_walked(client: httpx.AsyncClient) -> None:
    """The walk below covers the app's routes as they are: more than the API's 15, the docs, the explorer."""
    paths = {r.path for r in http_routes(client.app)}  # type: ignore[attr-defined]
    assert {"/v1/events/live", "/v1/admin/projections/{name:str}/rebuild", "/metrics"} <= paths
    assert any(p.startswith("/schema") for p in paths)
    assert any(p.startswith("/explorer") for p in paths)
    assert len(paths) >= 20


async def test_options_is_204_with_allow_on_every_route_without_a_key(
    client: httpx.AsyncClient,
) -> None:
    for route in http_routes(client.app):  # type: ignore[attr-defined]
        response = await client.options(concrete(route))
        assert response.status_code == 204, route.path
        assert allow(response) == declared(route), route.path
        assert response.content == b""


async def test_undeclared_methods_are_405_problems_with_allow_on_every_route(
    client: httpx.AsyncClient,
) -> None:
    for route in http_routes(client.app):  # type: ignore[attr-defined]
        path = concrete(route)
        for method in [m for m in (*UNDECLARED, "GET", "POST") if m not in declared(route)]:
            response = await client.request(method, path, headers=AUTH)
            assert response.status_code == 405, (method, route.path)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["status"] == 405
            assert allow(response) == declared(route), (method, route.path)


async def test_declared_methods_never_answer_5xx_with_or_without_keys(
    client: httpx.AsyncClient,
) -> None:
    for route in http_routes(client.app):  # type: ignore[attr-defined]
        path = concrete(route)
        for method in sorted(set(route.methods) - {"OPTIONS"}):
            for headers in (AUTH, {}, {"Authorization": "Bearer wrong"}):
                response = await client.request(
                    method, path, params=QUERIES.get(route.path), headers=headers
                )
                assert response.status_code < 500, (method, route.path, response.text)


# The routes that read a JSON body, each with a valid actor (erasures and subscriptions need one).
BODY_ROUTES: Final = (
    ("POST", "/v1/admin/projections/order_summary/rebuild"),
    ("POST", "/v1/admin/erasures"),
    ("PUT", "/v1/admin/subscriptions/deep"),
    ("POST", "/v1/admin/subscriptions/deep/reset"),
    ("POST", "/v1/admin/subscriptions/deep/parked/replay"),
)
DEEP_BODIES: Final = (b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000)


BODY_HEADERS: Final = {**AUTH, "Eventstore-Actor": "tester", "Content-Type": "application/json"}


async def _refused_with_nothing_changed(
    client: httpx.AsyncClient, log: AuditLog, bodies: Mapping[str, Sequence[bytes]], words: str
) -> None:
    """Each route's bodies: a 400 problem saying `words`, and nothing queued or created."""
    job, erasures = await log.store.jobs.active("order_summary"), await log.store.erasures.queued()
    for method, path in BODY_ROUTES:
        for body in bodies[path]:
            response = await client.request(method, path, content=body, headers=BODY_HEADERS)
            assert response.status_code == 400, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert words in response.json()["detail"], (path, response.text)
    # Nothing was queued or created (other tests of the module may have queued a rebuild).
    assert await log.store.jobs.active("order_summary") == job
    assert await log.store.erasures.queued() == erasures
    assert (await client.get("/v1/admin/subscriptions/deep", headers=AUTH)).status_code == 404


async def test_a_body_nested_too_deeply_is_a_400_problem_never_a_500(
    client: httpx.AsyncClient, log: AuditLog
) -> None:
    # msgspec raises RecursionError (not a decode error) past about 1,000 levels.
    deep = {path: DEEP_BODIES for _, path in BODY_ROUTES}
    await _refused_with_nothing_changed(client, log, deep, "nested too deeply")
    # Every other route taking a body answers below 500 to one.
    for route in http_routes(client.app):  # type: ignore[attr-defined]
        for method in sorted(set(route.methods) & {"POST", "PUT", "PATCH", "DELETE"}):
            response = await client.request(
                method, concrete(route), content=DEEP_BODIES[0], headers=BODY_HEADERS
            )
            assert response.status_code < 500, (method, route.path, response.text)


# A key named twice, as each route's body would carry it (the route decodes it, or Litestar).
TWICE: Final = {
    "/v1/admin/projections/order_summary/rebuild": (b'{"workers": 1, "workers": 2}',),
    "/v1/admin/erasures": (
        b'{"stream": "orders", "entity": "o-1", "reason": "r", "entity": "o-2"}',
    ),
    "/v1/admin/subscriptions/deep": (
        b'{"sink": {"kind": "webhook", "url": "https://a.test/h", "url": "https://b.test/h"}}',
    ),
    "/v1/admin/subscriptions/deep/reset": (b'{"start": "earliest", "start": "latest"}',),
    "/v1/admin/subscriptions/deep/parked/replay": (b'{"up_to": 1, "up_to": 2}',),
}


async def test_a_body_naming_a_key_twice_is_a_400_problem_and_changes_nothing(
    client: httpx.AsyncClient, log: AuditLog
) -> None:
    # Which of the two a client meant cannot be told; parsers disagree on which one wins.
    await _refused_with_nothing_changed(client, log, TWICE, "appears twice in one object")


async def test_head_answers_like_get_without_a_body_on_every_get_route(
    client: httpx.AsyncClient,
) -> None:
    walked = 0
    for route in http_routes(client.app):  # type: ignore[attr-defined]
        if "GET" not in route.methods:
            continue
        path = concrete(route)
        for extra in ACCEPTS:
            headers = {**AUTH, **extra}
            params: Any = QUERIES.get(route.path)
            got = await client.get(path, params=params, headers=headers)
            head = await client.head(path, params=params, headers=headers)
            assert head.status_code == got.status_code, (route.path, extra)
            assert head.content == b"", (route.path, extra)
            expected = dict(got.headers)
            if route.path in VOLATILE:
                expected.pop("content-length", None)
                head_headers = {k: v for k, v in head.headers.items() if k != "content-length"}
            else:
                head_headers = dict(head.headers)
            assert head_headers == expected, (route.path, extra)
            walked += 1
    assert walked >= 4 * 20


async def test_head_of_the_live_tail_and_of_an_export_runs_no_query(log: AuditLog) -> None:
    """HEAD returns the headers at once: the tail is not opened, the export's query not run."""
    app = create_app(settings(), store=log.store)
    events = log.store.events
    calls: list[str] = []

    def spy(name: str) -> Any:
        real = getattr(events, name)

        async def call(*args: Any, **kw: Any) -> Any:
            calls.append(name)
            return await real(*args, **kw)

        return call

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        for name in ("query", "head", "wait_for_append"):
            setattr(events, name, spy(name))
        try:
            live = await c.head("/v1/events/live")  # unbounded as a GET: it would never end
            csv = await c.head("/v1/events", headers={"Accept": "text/csv"})
            ndjson = await c.head("/v1/events", headers={"Accept": "application/x-ndjson"})
            assert calls == []
            await c.get("/v1/events", headers={"Accept": "text/csv"})
            assert "query" in calls  # the spies do see a GET's query
        finally:
            for name in ("query", "head", "wait_for_append"):
                delattr(events, name)
    assert (live.status_code, live.headers["content-type"]) == (
        200,
        "text/event-stream; charset=utf-8",
    )
    assert csv.status_code == 200 and csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv.headers["content-disposition"] == 'attachment; filename="events.csv"'
    assert ndjson.headers["content-type"] == "application/x-ndjson"
    assert live.content == csv.content == ndjson.content == b""


async def test_head_keeps_the_guards_and_the_parameter_checks(client: httpx.AsyncClient) -> None:
    assert (await client.head("/v1/streams")).status_code == 401
    bad = await client.head("/v1/events", params={"limit": "0"}, headers=AUTH)
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    assert (await client.head("/v1/streams/nope/verify", headers=AUTH)).status_code == 404


async def test_unknown_paths_are_404_problems_for_every_method(client: httpx.AsyncClient) -> None:
    for method in ("GET", "HEAD", "OPTIONS", "POST", "DELETE"):
        response = await client.request(method, "/v1/nothing-here")
        assert response.status_code == 404, method
        if method != "HEAD":
            assert response.headers["content-type"] == "application/problem+json"


async def test_openapi_declares_the_bearer_keys_and_which_operations_need_them(
    log: AuditLog,
) -> None:
    """The docs page has an Authorize button: the keys are security schemes, used where needed."""
    for read_keys, reads_need_a_key in (((READ_KEY,), True), ((), False)):
        app = create_app(settings(admin_key=ADMIN_KEY, read_keys=read_keys), store=log.store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            doc = (await c.get("/schema/openapi.json")).json()
        schemes = doc["components"]["securitySchemes"]
        assert {k: (v["type"], v["scheme"]) for k, v in schemes.items()} == {
            "readKey": ("http", "bearer"),
            "adminKey": ("http", "bearer"),
        }
        paths = doc["paths"]
        admin = paths["/v1/admin/projections/{name}/rebuild"]["post"]
        assert admin["security"] == [{"adminKey": []}]
        assert paths["/v1/admin/jobs/{job}"]["get"]["security"] == [{"adminKey": []}]
        # Checkpoints and proofs reveal only hashes: public whatever READ_KEYS says.
        public = (
            "/v1/checkpoints",
            "/v1/checkpoint",
            "/v1/proof/inclusion",
            "/v1/proof/consistency",
        )
        for path in public:
            assert "security" not in paths[path]["get"]
        reads = [
            op
            for path, item in paths.items()
            if path.startswith("/v1/") and "/admin/" not in path and path not in public
            for op in item.values()
        ]
        assert len(reads) >= 12
        for op in reads:
            if reads_need_a_key:
                assert op["security"] == [{"readKey": []}, {"adminKey": []}]
            else:
                assert "security" not in op
        assert "security" not in paths["/health/ready"]["get"]


async def test_a_path_no_route_answers_is_the_same_404_problem_for_every_method(
    client: httpx.AsyncClient,
) -> None:
    """A path of nothing: GET, HEAD, OPTIONS and any other method get the same 404.

    (Routed as themselves, HEAD and POST were 405 there.) No route types a segment as
    `{name:int}` any more: Litestar's int() read `1_0` as 10, so a seq in a path is
    text read by `api.params.seq_of_path`, and anything else in it is that route's 400.
    """
    routes = http_routes(client.app)  # type: ignore[attr-defined]
    assert [r.path for r in routes if ":int}" in r.path] == []
    for method in ("GET", "HEAD"):
        refused = await client.request(method, "/v1/events/abc/proof", headers=AUTH)
        assert refused.status_code == 400, method
        assert refused.headers["content-type"] == "application/problem+json"
    for path in ["/v1/no/such/thing"]:
        for method in ("GET", "HEAD", "OPTIONS", "POST", *UNDECLARED):
            response = await client.request(method, path, headers=AUTH)
            assert response.status_code == 404, (method, path)
            assert response.headers["content-type"] == "application/problem+json", (method, path)
            if method != "HEAD":
                assert response.json()["status"] == 404
            else:
                assert response.content == b""


async def test_a_path_parameter_that_does_not_read_is_answered_as_the_readme_says(
    client: httpx.AsyncClient,
) -> None:
    """`/v1/events/abc/proof`: the route's 400 for GET and HEAD, its 405 for POST, not a 404."""
    for method in ("GET", "HEAD"):
        refused = await client.request(method, "/v1/events/abc/proof", headers=AUTH)
        assert refused.status_code == 400, method
        assert refused.headers["content-type"] == "application/problem+json"
    detail = (await client.get("/v1/events/abc/proof", headers=AUTH)).json()["detail"]
    assert detail == f"seq must be 1..{2**62} in decimal digits, got 'abc'"
    for method in ("POST", "PUT", "DELETE"):
        refused = await client.request(method, "/v1/events/abc/proof", headers=AUTH)
        assert refused.status_code == 405, method
        assert refused.headers["allow"] == "GET, HEAD, OPTIONS"
        assert refused.headers["content-type"] == "application/problem+json"
    options = await client.request("OPTIONS", "/v1/events/abc/proof")
    assert options.status_code == 204
    assert options.headers["allow"] == "GET, HEAD, OPTIONS"
    readme = " ".join(README.read_text().split())
    assert "`/v1/events/abc/proof`) is the same 404 problem for every method" not in readme
    assert (
        "`/v1/events/abc/proof` is a 400 problem (a seq is decimal digits, 1 to 2^62) for"
        " `GET` and `HEAD`, a 405 problem with `Allow: GET, HEAD, OPTIONS` for `POST`"
    ) in readme
