"""An unknown `stream` on /v1/events and /v1/events/live: the 404 every other route answers.

A misspelled filter is refused, never ignored: `stream=nosuch` answered 200 with no
events, and a live tail of it waited forever for events that could never come.
"""

from __future__ import annotations

from typing import Any, Final

import pytest
from litestar.testing import AsyncTestClient

from tests.api.conftest import AppFactory, AuditLog

UNKNOWN: Final = {
    "type": "https://eventstore.dev/problems/unknown-stream",
    "title": "Not Found",
    "status": 404,
    "detail": "unknown stream 'nosuch' (captured: orders)",
}
ACCEPTS: Final = ("application/json", "text/csv", "application/x-ndjson")


def assert_unknown_stream(r: Any) -> None:
    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == UNKNOWN


async def test_the_other_routes_answer_an_unknown_stream_with_this_problem(
    client: AsyncTestClient[Any],
) -> None:
    # The expectation above is the streams routes' own answer, word for word.
    assert_unknown_stream(await client.get("/v1/streams/nosuch/entities"))
    assert_unknown_stream(await client.get("/v1/streams/nosuch/verify"))


@pytest.mark.parametrize("accept", ACCEPTS)
async def test_the_audit_query_of_an_unknown_stream_is_that_404(
    client: AsyncTestClient[Any], accept: str
) -> None:
    r = await client.get("/v1/events", params={"stream": "nosuch"}, headers={"accept": accept})
    assert_unknown_stream(r)
    # Other filters beside it change nothing: the stream is what is unknown.
    r = await client.get(
        "/v1/events",
        params={"stream": "nosuch", "type": "updated", "field": "status"},
        headers={"accept": accept},
    )
    assert_unknown_stream(r)
    head = await client.head("/v1/events", params={"stream": "nosuch"}, headers={"accept": accept})
    assert (head.status_code, head.headers["content-type"]) == (404, "application/problem+json")


async def test_the_live_tail_of_an_unknown_stream_is_that_404_at_once(
    client: AsyncTestClient[Any],
) -> None:
    # (`timeout` bounds what the tail would otherwise be: an open stream of nothing.)
    for query in ("stream=nosuch&timeout=0.3", "stream=nosuch&after=0&limit=1&timeout=0.3"):
        assert_unknown_stream(await client.get(f"/v1/events/live?{query}"))
    head = await client.head("/v1/events/live?stream=nosuch")
    assert (head.status_code, head.headers["content-type"]) == (404, "application/problem+json")


async def test_a_known_stream_is_answered_with_or_without_events_of_it(
    audit_log: AuditLog, make_app: AppFactory
) -> None:
    """Known: captured (even before its first event), or holding events (even if not captured)."""
    orders = [e for e in audit_log.events if e.stream == "orders"]
    app = make_app(audit_log.store, collections=("customers",))
    async with AsyncTestClient(app) as c:
        r = await c.get("/v1/events", params={"stream": "customers"})
        assert (r.status_code, r.json()) == (200, {"events": [], "next": None})
        r = await c.get("/v1/events", params={"stream": "orders", "limit": 1000})
        assert r.status_code == 200
        assert [e["seq"] for e in r.json()["events"]] == [e.seq for e in orders]
        for stream in ("customers", "orders"):
            r = await c.get(f"/v1/events/live?stream={stream}&after={orders[-1].seq}&timeout=0.05")
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith("text/event-stream")
        r = await c.get("/v1/events", params={"stream": "nosuch"})
        assert r.status_code == 404
        assert r.json()["detail"] == "unknown stream 'nosuch' (captured: customers, orders)"
