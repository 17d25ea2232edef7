"""`/schema/<anything>` that serves nothing is an unknown path, like `/v1/no/such/thing`.

Litestar's docs router adds a catch-all `/{path:str}` answering an HTML 404 page,
which also made such paths known routes (OPTIONS 204, POST 405). The documented
pages (`/schema`, `/schema/openapi.json`) and the other pages the docs plugins
serve (`/schema/redoc`, Swagger's `/schema/oauth2-redirect.html`) keep answering.
"""

from __future__ import annotations

from typing import Any, Final

import httpx
import pytest
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import EventStoreApp

PROBLEM: Final = "application/problem+json"
UNKNOWN: Final = "/v1/no/such/thing"
# Paths under /schema that no docs page is served at (Litestar's other UIs included).
NOWHERE: Final = (
    "/schema/swagger",
    "/schema/xyz",
    "/schema/elements",
    "/schema/rapidoc",
    "/schema/stoplight",
    "/schema/openapi.yaml",
    "/schema/openapi.json/x",
    "/schema/redoc/x",
)
METHODS: Final = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH")
PAGES: Final = ("/schema", "/schema/redoc", "/schema/oauth2-redirect.html")


def _same(response: httpx.Response, unknown: httpx.Response, method: str) -> None:
    """`response` is the unknown path's 404 problem, header for header that matters."""
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert "allow" not in response.headers
    assert response.content == unknown.content
    assert response.headers["content-length"] == unknown.headers["content-length"]
    if method == "HEAD":
        assert response.content == b""
    else:
        body = response.json()
        assert body["type"] == "https://eventstore.dev/problems/not-found"
        assert body["status"] == 404
        assert body["title"] == "Not Found"


@pytest.mark.parametrize("method", METHODS)
async def test_a_schema_path_that_serves_nothing_is_the_unknown_path_404_problem(
    client: AsyncTestClient[Any], method: str
) -> None:
    unknown = await client.request(method, UNKNOWN)
    _same(unknown, unknown, method)  # what every method gets on an unknown path
    for path in NOWHERE:
        response = await client.request(method, path)
        assert response.status_code == 404, (method, path, response.status_code)
        _same(response, unknown, method)


async def test_the_documented_schema_pages_still_answer(client: AsyncTestClient[Any]) -> None:
    doc = await client.get("/schema/openapi.json")
    assert doc.status_code == 200
    assert doc.headers["content-type"] == "application/vnd.oai.openapi+json"
    body = doc.json()
    assert body["openapi"].startswith("3.")
    assert "/v1/streams" in body["paths"]
    assert set(body["components"]["securitySchemes"]) == {"readKey", "adminKey"}
    assert not [p for p in body["paths"] if p.startswith("/schema")]
    ui = await client.get("/schema")
    assert ui.status_code == 200
    assert ui.headers["content-type"].startswith("text/html")
    assert b"swagger-ui" in ui.content  # the UI with the Authorize button
    for path in PAGES:
        page = await client.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html"), path
        head = await client.head(path)
        assert (head.status_code, head.content) == (200, b""), path
        options = await client.options(path)
        assert options.status_code == 204, path
        assert options.headers["allow"] == "GET, HEAD, OPTIONS", path
        post = await client.post(path)
        assert post.status_code == 405, path
        assert post.headers["content-type"] == PROBLEM
        assert post.json()["status"] == 405
        assert post.headers["allow"] == "GET, HEAD, OPTIONS", path


async def test_the_docs_router_has_no_catch_all_route(client: AsyncTestClient[Any]) -> None:
    app = client.app
    assert isinstance(app, EventStoreApp)
    schema = sorted(
        r.path for r in app.routes if isinstance(r, HTTPRoute) and r.path.startswith("/schema")
    )
    assert "/schema" in schema and "/schema/openapi.json" in schema
    assert [p for p in schema if "{" in p] == []


async def test_a_schema_path_that_serves_nothing_is_counted_as_unmatched(
    client: AsyncTestClient[Any],
) -> None:
    before = await _requests(client)
    for method in ("GET", "OPTIONS", "POST"):
        assert (await client.request(method, "/schema/xyz")).status_code == 404
    after = await _requests(client)
    for method in ("GET", "OPTIONS", "POST"):
        key = (method, "unmatched", "404")
        assert after.get(key, 0) - before.get(key, 0) == 1, key
    assert not [k for k in after if k[1].startswith("/schema/{")]


async def _requests(client: AsyncTestClient[Any]) -> dict[tuple[str, str, str], float]:
    """`eventstore_http_requests_total` by (method, route, status), as /metrics shows it."""
    text = (await client.get("/metrics")).text
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "eventstore_http_requests_total"
    }
