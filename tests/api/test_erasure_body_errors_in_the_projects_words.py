"""An erasure request's body and actor are refused in the words of the subscription routes.

No body is "a JSON body is required" (it was `body: 'data'`, a KeyError of Litestar's),
and a field missing, unknown, of the wrong type, empty or too long is named in
`errors: [{key, message}]` as `sink: required` is, never in msgspec's wording
("Object missing required field `stream`", "Expected `str` of length <= 200").
"""

from __future__ import annotations

import json
from typing import Any, Final

import pytest
from litestar.testing import AsyncTestClient

from tests.api.conftest import ADMIN_KEY, AuditLog

URL: Final = "/v1/admin/erasures"
KEY: Final = {"authorization": f"Bearer {ADMIN_KEY}"}
ADMIN: Final = {**KEY, "Eventstore-Actor": "dpo@example.org"}
BODY: Final = {"stream": "orders", "entity_key": "ORD-X", "reason": "GDPR art. 17 request #12"}
SUBSCRIPTIONS: Final = "/v1/admin/subscriptions/s"


def _problem(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == "https://eventstore.dev/problems/bad-request"
    assert (body["title"], body["status"]) == ("Bad Request", 400)
    return body


@pytest.mark.parametrize("content", [None, b"", b"  \r\n\t "])
async def test_no_body_is_a_json_body_is_required_as_on_the_subscription_routes(
    app_log: tuple[AsyncTestClient[Any], AuditLog], content: bytes | None
) -> None:
    client, log = app_log
    kw: dict[str, Any] = {} if content is None else {"content": content}
    erasure = _problem(await client.post(URL, headers=ADMIN, **kw))
    subscription = _problem(await client.put(SUBSCRIPTIONS, headers=ADMIN, **kw))
    assert erasure["detail"] == subscription["detail"] == "a JSON body is required"
    assert "errors" not in erasure
    assert await log.store.erasures.queued() == []


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"entity_key": "ORD-X", "reason": "why"},
            [{"key": "stream", "message": "required"}],
        ),
        (
            {},
            [
                {"key": "stream", "message": "required"},
                {"key": "entity_key", "message": "required"},
                {"key": "reason", "message": "required"},
            ],
        ),
        (
            {**BODY, "stream": "s" * 201},
            [{"key": "stream", "message": "at most 200 characters, got 201"}],
        ),
        (
            {**BODY, "reason": "r" * 2001, "entity_key": ""},
            [
                {"key": "entity_key", "message": "may not be empty"},
                {"key": "reason", "message": "at most 2000 characters, got 2001"},
            ],
        ),
        ({**BODY, "stream": 7}, [{"key": "stream", "message": "expected a string"}]),
        ({**BODY, "reason": None}, [{"key": "reason", "message": "expected a string"}]),
        ({**BODY, "colour": "red"}, [{"key": "colour", "message": "unknown field"}]),
        (
            None,
            [{"key": "", "message": "expected a JSON object (stream, entity_key, reason)"}],
        ),
        (
            ["orders", "ORD-X"],
            [{"key": "", "message": "expected a JSON object (stream, entity_key, reason)"}],
        ),
    ],
)
async def test_each_refused_field_is_named_in_the_projects_words(
    app_log: tuple[AsyncTestClient[Any], AuditLog], body: Any, errors: list[dict[str, str]]
) -> None:
    client, log = app_log
    sent = json.dumps(body).encode()  # `null` too (httpx sends no body for json=None)
    problem = _problem(await client.post(URL, content=sent, headers=ADMIN))
    assert problem["errors"] == errors
    assert problem["detail"] == "; ".join(
        f"{e['key'] or 'the body'}: {e['message']}" for e in errors
    )
    assert "Expected" not in problem["detail"] and "`" not in problem["detail"]
    assert await log.store.erasures.queued() == []


async def test_the_wording_is_the_subscription_routes_own(
    app_log: tuple[AsyncTestClient[Any], AuditLog],
) -> None:
    """The same mistakes on both routes read the same (a missing field, an unknown one)."""
    client, _ = app_log
    sub = _problem(await client.put(SUBSCRIPTIONS, json={"colour": "red"}, headers=ADMIN))
    erasure = _problem(
        await client.post(
            URL, json={"entity_key": "k", "reason": "r", "colour": "red"}, headers=ADMIN
        )
    )
    assert sub["errors"] == [
        {"key": "colour", "message": "unknown field"},
        {"key": "sink", "message": "required"},
    ]
    assert erasure["errors"] == [
        {"key": "colour", "message": "unknown field"},
        {"key": "stream", "message": "required"},
    ]


@pytest.mark.parametrize(
    ("actor", "message"),
    [
        ("a" * 201, "at most 200 characters, got 201"),
        ("a" * 513, "at most 200 characters, got 513"),
    ],
)
async def test_an_actor_header_too_long_is_named_in_the_same_words(
    app_log: tuple[AsyncTestClient[Any], AuditLog], actor: str, message: str
) -> None:
    client, log = app_log
    problem = _problem(
        await client.post(URL, json=BODY, headers={**KEY, "Eventstore-Actor": actor})
    )
    assert problem["errors"] == [{"key": "Eventstore-Actor", "message": message}]
    assert problem["detail"] == f"Eventstore-Actor: {message}"
    assert await log.store.erasures.queued() == []


async def test_a_body_that_reads_is_still_taken(
    app_log: tuple[AsyncTestClient[Any], AuditLog],
) -> None:
    client, log = app_log
    longest = {**BODY, "reason": "r" * 2000}
    accepted = await client.post(URL, json=longest, headers={**KEY, "Eventstore-Actor": "a" * 200})
    assert accepted.status_code == 202, accepted.text
    [queued] = await log.store.erasures.queued()
    assert (queued.id, queued.stream, queued.entity_key) == (
        accepted.json()["request"],
        "orders",
        "ORD-X",
    )
    assert (queued.reason, queued.actor) == ("r" * 2000, "a" * 200)
