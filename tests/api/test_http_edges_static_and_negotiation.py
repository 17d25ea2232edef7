"""Edges of the HTTP surface: the explorer's static files, refused query values quoted
as sent, `Accept` negotiation (q=0), `Vary` on refusals, and the rebuild body's numbers.

Each answer here was a 500, a framework's wording or a raw echo of the input before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import get
from litestar.exceptions import InternalServerException
from litestar.testing import AsyncTestClient

from api import create_app, explorer
from api.headers import preferred_media
from api.problems import TYPE_BASE
from api.routes.projections import _workers
from eventstore.keys import shown_key
from tests.api.conftest import ADMIN_KEY, AuditLog, build_log, settings
from tests.integration.conftest import open_test_store

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
UNKNOWN_PATH = {
    "type": TYPE_BASE + "not-found",
    "title": "Not Found",
    "status": 404,
    "detail": "Not Found",
}
JSON, NDJSON, CSV = "application/json", "application/x-ndjson", "text/csv"


@pytest.fixture
async def bare() -> AsyncIterator[AsyncTestClient[Any]]:
    """A client of an app over an empty store, with the explorer."""
    store = await open_test_store("memory")
    async with AsyncTestClient(create_app(settings(), store=store)) as c:
        yield c


# -- 1, 2: the explorer's static files -------------------------------------------------------
NOT_SHIPPED = [
    "%00",
    "explorer.css%00.js",
    "vendor/%00",
    "a" * 256,  # past the file system's limit on a name (ENAMETOOLONG)
    "vendor",
    "%2e",
    "a%0Ab",
    "%2e%2e/index.html",
    "vendor%2Fchart-3.9.1.min.js",
    "nothing.js",
]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("name", NOT_SHIPPED)
async def test_a_static_path_naming_no_shipped_file_is_the_unknown_path_404(
    bare: AsyncTestClient[Any], name: str, method: str
) -> None:
    r = await bare.request(method, f"/explorer/static/{name}")
    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == "application/problem+json"
    unknown = await bare.request(method, "/v1/no/such/thing")
    assert r.content == unknown.content
    if method == "GET":
        assert r.json() == UNKNOWN_PATH  # no server path, no echo of the name


async def test_each_shipped_asset_is_served_as_before(bare: AsyncTestClient[Any]) -> None:
    shipped = explorer.shipped_assets()
    assert {"explorer.js", "explorer.css", "vendor/chart-3.9.1.min.js"} <= set(shipped)
    kinds = {".js": "text/javascript", ".css": "text/css", ".txt": "text/plain"}
    for name in shipped:
        r = await bare.get(f"/explorer/static/{name}")
        assert r.status_code == 200, name
        assert r.content == (explorer.ASSETS_DIR / name).read_bytes()
        assert r.headers["content-type"].startswith(kinds[name[name.rindex(".") :]]), name
        assert r.headers["cache-control"] == "no-cache"
        assert r.headers["content-disposition"] == f'inline; filename="{name.split("/")[-1]}"'
        assert r.headers["etag"] and r.headers["last-modified"]
        head = await bare.head(f"/explorer/static/{name}")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(r.content))
    options = await bare.options("/explorer/static/explorer.js")
    assert options.status_code == 204 and options.headers["allow"] == "GET, HEAD, OPTIONS"


async def test_a_500_litestar_raises_is_the_logged_internal_problem(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Litestar wraps a file system error in its own 500: answered and logged as any bug."""

    @get("/broken", sync_to_thread=False)
    def broken() -> None:
        raise InternalServerException("disk says /secret/path")

    store = await open_test_store("memory")
    async with AsyncTestClient(create_app(settings(), store=store, extra_routes=[broken])) as c:
        r = await c.get("/broken")
    assert r.status_code == 500
    assert r.json() == {
        "type": TYPE_BASE + "internal",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "an internal error occurred; it has been logged",
    }
    assert any("unhandled error on GET /broken" in m for m in caplog.messages)


# -- 3: timeout ------------------------------------------------------------------------------
DIGITS = "in decimal digits with an optional fraction (e.g. 2.5; no sign, exponent or leading zero)"


@pytest.mark.parametrize("value", ["01", "00.5", "00", "007", ".5", "1e2", "1.", "+1", "-1"])
async def test_every_refused_timeout_is_said_in_the_documented_words(
    client: AsyncTestClient[Any], value: str
) -> None:
    r = await client.get("/v1/events/live", params={"timeout": value})
    assert r.status_code == 400, r.text
    message = f"must be more than 0 and at most 86400, {DIGITS}, got {value!r}"
    assert r.json()["detail"] == f"timeout: {message}"
    assert r.json()["errors"] == [{"key": "timeout", "message": message, "source": "query"}]


async def test_a_timeout_of_zero_and_its_schema_bounds(client: AsyncTestClient[Any]) -> None:
    r = await client.get("/v1/events/live?timeout=0")
    assert r.json()["detail"] == "timeout: must be more than 0 and at most 86400, got '0'"
    r = await client.get("/v1/events/live?timeout=0.05&limit=1")
    assert r.status_code == 200  # `0.05`: a leading zero before the point is the number itself
    schema = (await client.get("/schema/openapi.json")).json()
    parameters = schema["paths"]["/v1/events/live"]["get"]["parameters"]
    timeout = next(p for p in parameters if p["name"] == "timeout")["schema"]
    assert timeout["exclusiveMinimum"] == 0 and timeout["maximum"] == 86400


# -- 4: over-length values -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "name", "longest"),
    [
        ("/v1/events", "since", 256),
        ("/v1/events", "until", 256),
        ("/v1/events", "stream", 512),
        ("/v1/events", "after", 200),
        ("/v1/streams/orders/entities", "after", 200),
        # (a read model's rows take a cursor of 96,000: tests/api/test_api_rows_long_keys.py)
    ],
)
async def test_an_over_long_value_is_refused_naming_it_and_quoting_it_cut(
    client: AsyncTestClient[Any], path: str, name: str, longest: int
) -> None:
    value = "\n" + "x" * longest
    r = await client.get(path, params={name: value})
    assert r.status_code == 400, r.text
    message = f"at most {longest} characters, got {shown_key(value)}"
    assert message.endswith(f"… ({longest + 1} characters)")
    assert "\n" not in r.json()["detail"]
    assert r.json()["detail"] == f"{name}: {message}"
    assert r.json()["errors"] == [{"key": name, "message": message, "source": "query"}]


async def test_a_time_may_carry_a_long_fraction(
    client: AsyncTestClient[Any], audit_log: AuditLog
) -> None:
    last = audit_log.events[-1].occurred_at
    since = last.strftime("%Y-%m-%dT%H:%M:%S.") + f"{last.microsecond:06d}" + "0" * 150 + "Z"
    r = await client.get("/v1/events", params={"since": since, "limit": 1000})
    assert r.status_code == 200, r.text
    assert audit_log.events[-1].seq in [e["seq"] for e in r.json()["events"]]


# -- 5: unknown names and types, quoted and bounded ----------------------------------------
async def test_an_unknown_parameter_name_is_quoted_escaped_and_cut(
    client: AsyncTestClient[Any],
) -> None:
    r = await client.get("/v1/events?%0A%1B%5B31mevil%E2%80%AE=1")
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert detail.startswith("unknown query parameter '\\n\\x1b[31mevil\\u202e' (this endpoint")
    r = await client.get("/v1/streams?=")
    assert r.json()["detail"] == "unknown query parameter '' (this endpoint takes: none)"
    r = await client.get("/v1/streams", params={"n" * 20_000: "1"})
    assert r.json()["detail"] == (
        f"unknown query parameter {shown_key('n' * 20_000)} (this endpoint takes: none)"
    )
    assert len(r.json()["detail"]) < 300
    r = await client.get("/v1/streams?a=1&b=1&c=1&d=1&e=1")
    assert r.json()["detail"] == (
        "unknown query parameters 'a', 'b', 'c' and 2 more (this endpoint takes: none)"
    )


async def test_an_unknown_event_type_is_quoted_escaped_and_cut(
    client: AsyncTestClient[Any],
) -> None:
    r = await client.get("/v1/events?type=%1B%5B31m&type=updated")
    assert r.status_code == 400
    assert r.json()["detail"].startswith("unknown event type '\\x1b[31m' (known: ")
    r = await client.get("/v1/events", params={"type": "t" * 20_000})
    assert r.json()["detail"].startswith(f"unknown event type {shown_key('t' * 20_000)} (known")
    assert len(r.json()["detail"]) < 400


async def test_a_refused_cursor_is_quoted_escaped(client: AsyncTestClient[Any]) -> None:
    r = await client.get("/v1/projections/order_summary", params={"after": "\x1b" + "c" * 500})
    assert r.status_code == 400
    r = await client.get("/v1/projections/order_summary", params={"after": "\x1b" + "c" * 300})
    assert r.json()["detail"] == (
        f"malformed page cursor {shown_key(chr(27) + 'c' * 300)}: pass back a `next` value"
    )


# -- 6, 7: Accept ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        ("text/csv;q=0", None),
        ("application/json;q=0", None),
        ("text/csv;q=0, application/json", JSON),
        ("text/*;q=0.5, text/csv;q=0", None),
        ("*/*;q=0.1, application/json;q=0", NDJSON),
        ("application/x-ndjson;q=0, text/csv;q=0.1", CSV),
        ("text/csv;q=0.000", None),
        ("text/csv;q=bogus", None),
        ("text/csv, application/json", CSV),  # as named, on a tie
        ("text/*, application/json", JSON),  # the more specific, on a tie
        ("*/*", JSON),
        ("*", JSON),
        ("TEXT/CSV", CSV),
        ("text/csv;charset=utf-8;q=0.5, application/json;q=0.4", CSV),
        ("image/png", None),
    ],
)
def test_the_preferred_type_never_is_one_of_quality_zero(accept: str, chosen: str | None) -> None:
    assert preferred_media(accept, (JSON, NDJSON, CSV)) == chosen


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        ("text/csv;q=0", JSON),
        ("application/json;q=0", JSON),  # nothing acceptable: JSON, as for an unknown type
        ("text/*;q=0.5, text/csv;q=0", JSON),
        ("application/x-ndjson;q=0, text/csv;q=0.1", CSV),
    ],
)
async def test_a_type_of_quality_zero_is_not_sent(
    client: AsyncTestClient[Any], accept: str, media: str
) -> None:
    r = await client.get("/v1/events?stream=orders", headers={"accept": accept})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].split(";")[0] == media


def _vary(headers: Any) -> list[str]:
    return [t.strip().lower() for v in headers.get_list("vary") for t in v.split(",")]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(
    ("query", "accept", "status"),
    [
        ("?limit=5", CSV, 400),
        ("?limit=0", JSON, 400),
        ("?stream=nothing", NDJSON, 404),
        ("?since=2026-12-08T00:00:00Z&until=2026-12-07T00:00:00Z", CSV, 422),
        ("?bogus=1", CSV, 400),
        ("?limit=5", CSV + ";q=0", 200),
    ],
)
async def test_every_answer_of_the_audit_query_varies_on_accept(
    client: AsyncTestClient[Any], query: str, accept: str, status: int, method: str
) -> None:
    r = await client.request(method, f"/v1/events{query}", headers={"accept": accept})
    assert r.status_code == status, r.text
    assert _vary(r.headers) == ["accept", "accept-encoding"]


async def test_a_refusal_of_another_route_does_not_vary_on_accept(
    client: AsyncTestClient[Any],
) -> None:
    r = await client.get("/v1/streams?limit=0")
    assert r.status_code == 400
    assert _vary(r.headers) == ["accept-encoding"]


# -- 8: the rebuild's workers, as written ----------------------------------------------------
WHOLE = "workers must be a whole number from 1 to 16, got "


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"workers": 1e400}', WHOLE + "1e400"),
        (b'{"workers": 0.99999999999999999}', WHOLE + "0.99999999999999999"),
        (b'{"workers": 16.000000000000001}', WHOLE + "16.000000000000001"),
        (b'{"workers": 1.0000000000000000000001e0}', WHOLE + "1.0000000000000000000001e0"),
        (b'{"workers": 2.5}', WHOLE + "2.5"),
        (b'{"workers": 9007199254740993.0}', WHOLE + "9007199254740993.0"),
        (b'{"workers": "2"}', WHOLE + '"2"'),
        (b'{"workers": true}', WHOLE + "true"),
        (b'{"workers": null}', WHOLE + "null"),
        (b'{"workers": [1,\n2]}', WHOLE + "'[1,\\n2]'"),
        (b'{"workers": "\xe2\x80\xae"}', WHOLE + "'\"\\u202e\"'"),
        (
            b'{"workers": 1e400, "workers": 1}',
            'the body must be JSON: {"workers": N} '
            "(the key 'workers' appears twice in one object)",
        ),
        (b'{"workers": 1', 'the body must be JSON: {"workers": N}'),
    ],
)
async def test_a_workers_value_that_is_no_whole_number_is_refused_as_written(
    body: bytes, detail: str
) -> None:
    log = await build_log("memory", orders=2, changes=2)
    app = create_app(settings(admin_key=ADMIN_KEY), store=log.store)
    async with AsyncTestClient(app) as c:
        r = await c.post("/v1/admin/projections/order_summary/rebuild", headers=ADMIN, content=body)
        assert r.status_code == 400, r.text
        assert r.json()["detail"] == detail
        assert await log.store.jobs.active("order_summary") is None  # nothing was queued


def test_a_workers_literal_that_writes_a_whole_number_is_taken() -> None:
    for body, workers in [
        (b'{"workers": 2}', 2),
        (b'{"workers": 2.0}', 2),
        (b'{"workers": 20e-1}', 2),
        (b'{"workers": 1E1}', 10),
        (b'{"workers": 16.000000000000000}', 16),
        (b"{}", 1),
        (b"  ", 1),
    ]:
        assert _workers(body) == workers, body


def test_a_long_workers_literal_is_cut() -> None:
    literal = "1." + "0" * 300 + "1"
    with pytest.raises(Exception) as refused:
        _workers(b'{"workers": ' + literal.encode() + b"}")
    assert str(refused.value) == WHOLE + f"{literal[:200]}… ({len(literal)} characters)"
