"""An export (CSV, NDJSON) streams every match: an explicit `limit` is refused, not ignored.

`limit` was checked (`limit=0` a 400) and then dropped: `limit=5` streamed every
match, as if it bounded them. The 400 says so, and how to bound an export.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Final

import pytest
from litestar.testing import AsyncTestClient

from tests.api.conftest import AuditLog

EXPORTS: Final = ("text/csv", "application/x-ndjson")


def seqs(r: Any, accept: str) -> list[int]:
    if accept == "text/csv":
        return [int(row["seq"]) for row in csv.DictReader(io.StringIO(r.text))]
    return [json.loads(line)["seq"] for line in r.text.splitlines()]


@pytest.mark.parametrize("accept", EXPORTS)
@pytest.mark.parametrize("limit", ["5", "1", "1000", "100"])
async def test_an_export_with_a_limit_is_a_400_saying_how_to_bound_it(
    client: AsyncTestClient[Any], accept: str, limit: str
) -> None:
    params = {"stream": "orders", "limit": limit}
    r = await client.get("/v1/events", params=params, headers={"accept": accept})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert (body["type"], body["status"]) == ("https://eventstore.dev/problems/bad-request", 400)
    [error] = body["errors"]
    assert (error["key"], error["source"]) == ("limit", "query")
    assert body["detail"] == f"limit: {error['message']}"
    head = await client.head("/v1/events", params=params, headers={"accept": accept})
    assert (head.status_code, head.headers["content-type"]) == (400, "application/problem+json")
    said = error["message"]
    assert "an export streams every match" in said
    assert all(f"`{name}`" in said for name in ("since", "until", "after")), said


@pytest.mark.parametrize("accept", EXPORTS)
async def test_an_export_without_a_limit_streams_every_match_and_after_is_honoured(
    client: AsyncTestClient[Any], audit_log: AuditLog, accept: str
) -> None:
    every = [e.seq for e in audit_log.events]
    assert len(every) > 100  # past a JSON page (the default limit): nothing bounds the export
    r = await client.get("/v1/events", headers={"accept": accept})
    assert r.status_code == 200, r.text
    assert seqs(r, accept) == every
    page = (await client.get("/v1/events", params={"limit": 10})).json()
    r = await client.get("/v1/events", params={"after": page["next"]}, headers={"accept": accept})
    assert r.status_code == 200, r.text
    assert seqs(r, accept) == every[10:]


async def test_the_json_answer_still_takes_a_limit(client: AsyncTestClient[Any]) -> None:
    r = await client.get("/v1/events", params={"limit": 5}, headers={"accept": "application/json"})
    assert r.status_code == 200
    assert [e["seq"] for e in r.json()["events"]] == [1, 2, 3, 4, 5]
