"""A malformed query parameter is named in the problem as the client spelled it.

Litestar names a failing parameter by the handler's Python name (`first`,
`seconds`); a client that sent `from` or `timeout` must read `from` or `timeout`.
"""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from eventstore.memory.store import MemoryStore
from tests.api.conftest import ADMIN_KEY, AppFactory


@pytest.mark.parametrize(
    ("path", "params", "key"),
    [
        ("/v1/proof/consistency", {"from": "0", "to": "1"}, "from"),
        ("/v1/proof/consistency", {"from": "1", "to": "x"}, "to"),
        ("/v1/events/live", {"timeout": "-1"}, "timeout"),
        ("/v1/events", {"limit": "abc"}, "limit"),
    ],
)
async def test_a_bad_parameter_is_named_as_sent(
    make_app: AppFactory, path: str, params: dict[str, str], key: str
) -> None:
    async with AsyncTestClient(make_app(MemoryStore())) as c:
        r = await c.get(path, params=params)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert [e["key"] for e in body["errors"]] == [key]
    assert body["detail"].startswith(f"{key}: ")


async def test_a_body_of_the_wrong_shape_is_named_body(make_app: AppFactory) -> None:
    async with AsyncTestClient(make_app(MemoryStore(), admin_key=ADMIN_KEY)) as c:
        r = await c.post(
            "/v1/admin/erasures",
            content=b"null",
            headers={
                "Authorization": f"Bearer {ADMIN_KEY}",
                "Eventstore-Actor": "auditor",
                "content-type": "application/json",
            },
        )
    assert r.status_code == 400
    body = r.json()
    # as the subscription routes name the body itself: key "", "the body" in the detail
    assert [e["key"] for e in body["errors"]] == [""]
    assert body["detail"] == "the body: expected a JSON object (stream, entity_key, reason)"
