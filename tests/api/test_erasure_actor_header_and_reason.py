"""The erasure route's actor header and reason: UTF-8 as sent, one character rule, `errors`.

The in-process test client re-encodes header values; these requests go through
httpx's own ASGI transport, which hands the app the header's bytes as they are sent
(as uvicorn does), so a UTF-8 `José` and a byte that is not UTF-8 reach the app as such.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import httpx
import pytest
from litestar import Litestar, Request, get
from litestar.testing import AsyncTestClient

from api.actor_header import actor_header
from api.problems import EXCEPTION_HANDLERS
from tests.api.conftest import ADMIN_KEY, AuditLog
from tests.integration.ingest_helpers import all_events, ingester

URL: Final = "/v1/admin/erasures"
KEY: Final = (b"authorization", f"Bearer {ADMIN_KEY}".encode())
BODY: Final = {"stream": "orders", "entity_key": "ORD-X", "reason": "GDPR art. 17 request #12"}
ACTOR: Final = b"eventstore-actor"


@pytest.fixture
async def raw(
    app_log: tuple[AsyncTestClient[Any], AuditLog],
) -> AsyncIterator[tuple[httpx.AsyncClient, AuditLog]]:
    """A client sending header bytes untouched, to the app `app_log` started."""
    client, log = app_log
    transport = httpx.ASGITransport(app=client.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c, log


def _refusal(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["detail"] == "; ".join(f"{e['key']}: {e['message']}" for e in body["errors"])
    errors: list[dict[str, str]] = body["errors"]
    return errors


async def test_a_utf8_actor_is_recorded_as_sent_and_found_by_the_audit_query(
    raw: tuple[httpx.AsyncClient, AuditLog],
) -> None:
    client, log = raw
    r = await client.post(URL, json=BODY, headers=[KEY, (ACTOR, "José".encode())])
    assert r.status_code == 202, r.text
    request = r.json()["request"]
    r = await client.get(f"/v1/admin/requests/{request}", headers=[KEY])
    assert r.json()["actor"] == "José"
    await ingester(log.store, log.feed, log.clock).run(until_idle=True)
    erased = (await all_events(log.store))[-1]
    assert erased.type == "erased" and erased.document is not None
    assert (erased.actor, erased.document["actor"]) == ("José", "José")
    r = await client.get("/v1/events", params={"type": "erased", "actor": "José"})
    assert [e["seq"] for e in r.json()["events"]] == [erased.seq]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"Jos\xe9", "not valid UTF-8"),  # Latin-1 José
        (b"\xc3", "not valid UTF-8"),
        (b"", "may not be empty"),
        (b"   ", "may not be empty"),
        (b"a\x1bb", "holds control characters (U+001B)"),
        (b"a\x7fb", "holds control characters (U+007F)"),
        ("a\u0085b".encode(), "holds control characters (U+0085)"),
        ("a\u009bb".encode(), "holds control characters (U+009B)"),
        ("dpo\u202eorp".encode(), "holds control characters (U+202E)"),
        ("a\u202ab".encode(), "holds control characters (U+202A)"),
        ("a\u2066b".encode(), "holds control characters (U+2066)"),
        ("a\u2069b".encode(), "holds control characters (U+2069)"),
        ("é".encode() * 201, "at most 200 characters, got 201"),
    ],
)
async def test_a_bad_actor_header_is_refused_naming_it(
    raw: tuple[httpx.AsyncClient, AuditLog], value: bytes, message: str
) -> None:
    client, log = raw
    r = await client.post(URL, json=BODY, headers=[KEY, (ACTOR, value)])
    assert _refusal(r) == [{"key": "Eventstore-Actor", "message": message}]
    assert await log.store.erasures.queued() == []


async def test_an_absent_actor_header_is_refused_with_errors(
    raw: tuple[httpx.AsyncClient, AuditLog],
) -> None:
    client, log = raw
    r = await client.post(URL, json=BODY, headers=[KEY])
    assert _refusal(r) == [{"key": "Eventstore-Actor", "message": "required"}]
    assert await log.store.erasures.queued() == []


async def test_the_longest_utf8_actor_is_taken_by_characters_not_bytes(
    raw: tuple[httpx.AsyncClient, AuditLog],
) -> None:
    client, log = raw
    actor = "é" * 200  # 400 bytes, 200 characters
    r = await client.post(URL, json=BODY, headers=[KEY, (ACTOR, actor.encode())])
    assert r.status_code == 202, r.text
    [queued] = await log.store.erasures.queued()
    assert queued.actor == actor


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("   ", "may not be empty"),
        (" \t ", "may not be empty"),
        ("line\nbreak", "holds control characters (U+000A)"),
        ("a\x7fb", "holds control characters (U+007F)"),
        ("a\u0085b", "holds control characters (U+0085)"),
        ("ticket \u202e21# tekcit", "holds control characters (U+202E)"),
        ("a\u2067b", "holds control characters (U+2067)"),
    ],
)
async def test_a_bad_reason_is_refused_with_errors(
    raw: tuple[httpx.AsyncClient, AuditLog], reason: str, message: str
) -> None:
    client, log = raw
    r = await client.post(URL, json={**BODY, "reason": reason}, headers=[KEY, (ACTOR, b"dpo")])
    assert _refusal(r) == [{"key": "reason", "message": message}]
    assert await log.store.erasures.queued() == []


async def test_a_reason_with_a_tab_and_non_ascii_text_is_taken(
    raw: tuple[httpx.AsyncClient, AuditLog],
) -> None:
    client, log = raw
    reason = "  ticket\t#12 — Zoë's request  "
    r = await client.post(URL, json={**BODY, "reason": reason}, headers=[KEY, (ACTOR, b"dpo")])
    assert r.status_code == 202, r.text
    [queued] = await log.store.erasures.queued()
    assert (queued.reason, queued.actor) == ("ticket\t#12 — Zoë's request", "dpo")


@get("/who", sync_to_thread=False)
def _who(request: Request[Any, Any, Any]) -> dict[str, str | None]:
    return {"actor": actor_header(request, required=False)}


@pytest.mark.parametrize(
    ("headers", "status", "answer"),
    [
        ([], 200, {"actor": None}),  # absent: the caller's default (`unknown`)
        ([(ACTOR, "José".encode())], 200, {"actor": "José"}),
        ([(ACTOR, b"  ops  ")], 200, {"actor": "ops"}),
        ([(ACTOR, b"")], 400, [{"key": "Eventstore-Actor", "message": "may not be empty"}]),
        (
            [(ACTOR, b"a\x1bb")],
            400,
            [{"key": "Eventstore-Actor", "message": "holds control characters (U+001B)"}],
        ),
        ([(ACTOR, b"\xff")], 400, [{"key": "Eventstore-Actor", "message": "not valid UTF-8"}]),
    ],
)
async def test_an_optional_actor_header_is_none_when_absent_and_checked_when_present(
    headers: list[tuple[bytes, bytes]], status: int, answer: Any
) -> None:
    app: Any = Litestar([_who], exception_handlers=EXCEPTION_HANDLERS)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        r = await client.get("/who", headers=headers)
    assert r.status_code == status, r.text
    assert (r.json() if status == 200 else _refusal(r)) == answer
