"""`field` of the audit query is a field path, checked as a subscription's filter checks one.

`field=a..b` names no field: it matched no changed field, yet every `replaced` and
`snapshot` event (they match any field), so the answer looked like a result. A
subscription's `filter.fields` refuses the same text (422); the query refuses it as
it refuses its other malformed parameters: a 400 naming `field` and quoting the value.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from eventstore.memory.store import MemoryStore
from tests.api.conftest import ADMIN_KEY, settings
from tests.helpers import LogBuilder
from tests.realsinks import SECRET

NOT_PATHS: Final = (
    "a..b",
    "$a",
    "a.$b",
    "a b",
    ".a",
    "a.",
    "status.",
    "customer..email",
    "\x00",
    "a.b\x00",
)
HOOK: Final = {
    "kind": "webhook",
    "url": "https://example.test/hooks/{entity_key}",
    "secret": SECRET,
}
ADMIN: Final = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
async def admin_client() -> AsyncIterator[AsyncTestClient[Any]]:
    store = MemoryStore()
    log = LogBuilder()
    await store.events.append([log.next(k) for k in ("a", "b", "a")])
    async with AsyncTestClient(create_app(settings(admin_key=ADMIN_KEY), store=store)) as c:
        yield c


async def subscriptions_message(c: AsyncTestClient[Any], path: str) -> str:
    """What a subscription filter says of `path` (its 422's message for `filter.fields[0]`)."""
    r = await c.put(
        "/v1/admin/subscriptions/probe",
        json={"sink": HOOK, "filter": {"fields": [path]}},
        headers=ADMIN,
    )
    assert r.status_code == 422, r.text
    [error] = [e for e in r.json()["errors"] if e["key"] == "filter.fields[0]"]
    return str(error["message"])


@pytest.mark.parametrize("path", NOT_PATHS)
@pytest.mark.parametrize("accept", ["application/json", "text/csv", "application/x-ndjson"])
async def test_a_field_that_is_no_path_is_a_400_in_the_subscriptions_words(
    admin_client: AsyncTestClient[Any], path: str, accept: str
) -> None:
    said = await subscriptions_message(admin_client, path)
    assert said == f"{path!r} is not a field path (a.b.c)"
    r = await admin_client.get("/v1/events", params={"field": path}, headers={"accept": accept})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert (body["type"], body["status"]) == ("https://eventstore.dev/problems/bad-request", 400)
    assert body["detail"] == f"field: {said}"
    assert body["errors"] == [{"key": "field", "message": said, "source": "query"}]


async def test_a_long_value_is_quoted_shortened_as_other_parameters_are(
    admin_client: AsyncTestClient[Any],
) -> None:
    path = "a" * 100 + ".." + "b" * 100
    r = await admin_client.get("/v1/events", params={"field": path})
    assert r.status_code == 400
    message = r.json()["errors"][0]["message"]
    assert message == f"{'a' * 60!r}... ({len(path)} characters) is not a field path (a.b.c)"


@pytest.mark.parametrize("path", ["status", "customer.email", "items.0.qty", "a$b", "é.ü"])
async def test_a_field_path_is_taken(admin_client: AsyncTestClient[Any], path: str) -> None:
    r = await admin_client.get("/v1/events", params={"field": path})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"events", "next"}
