"""The subscription admin trail reads `Eventstore-Actor` as the erasure route does (PROPOSED:
needs api/routes/subscriptions.py's `actor_of` to call `api.actor_header.actor_header`).

UTF-8 as sent (not Latin-1 mojibake); absent is `unknown`; present but empty, not UTF-8,
too long, or holding a control or bidirectional character is 400 naming the header, and
nothing is done or recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

import httpx
import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from tests.api.conftest import ADMIN_KEY, settings

KEY: Final = (b"authorization", f"Bearer {ADMIN_KEY}".encode())
ACTOR: Final = b"eventstore-actor"
BASE: Final = "/v1/admin/subscriptions"
SINK: Final = {"sink": {"kind": "redis-pubsub", "url": "redis://127.0.0.1:1", "channel": "c"}}


@pytest.fixture
async def raw() -> AsyncIterator[httpx.AsyncClient]:
    """A client sending header bytes untouched (httpx's ASGI transport, as uvicorn hands
    them over), to an app whose lifespan the test client runs."""
    app = create_app(settings(admin_key=ADMIN_KEY), store=MemoryStore(), clock=FakeClock())
    async with AsyncTestClient(app) as started:
        transport = httpx.ASGITransport(app=started.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def _trail(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    r = await client.get("/v1/admin/actions", headers=[KEY])
    return [(a["action"], a["actor"]) for a in r.json()["items"]]


async def test_a_utf8_actor_is_recorded_as_sent_and_an_absent_one_as_unknown(
    raw: httpx.AsyncClient,
) -> None:
    r = await raw.put(f"{BASE}/s", json=SINK, headers=[KEY, (ACTOR, "José".encode())])
    assert r.status_code == 201, r.text
    r = await raw.post(f"{BASE}/s/pause", headers=[KEY])
    assert r.status_code == 200, r.text
    assert await _trail(raw) == [("create", "José"), ("pause", "unknown")]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"", "may not be empty"),
        (b"a\x1bb", "holds control characters (U+001B)"),
        (b"a\x7fb", "holds control characters (U+007F)"),
        ("a\u202eb".encode(), "holds control characters (U+202E)"),
        (b"Jos\xe9", "not valid UTF-8"),
        (b"a" * 201, "at most 200 characters, got 201"),
    ],
)
async def test_a_bad_actor_is_refused_and_nothing_is_done(
    raw: httpx.AsyncClient, value: bytes, message: str
) -> None:
    assert (await raw.put(f"{BASE}/s", json=SINK, headers=[KEY])).status_code == 201
    r = await raw.post(f"{BASE}/s/pause", headers=[KEY, (ACTOR, value)])
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"] == [{"key": "Eventstore-Actor", "message": message}]
    assert r.json()["detail"] == f"Eventstore-Actor: {message}"
    r = await raw.get(f"{BASE}/s", headers=[KEY])
    assert r.json()["status"]["state"] != "paused"
    assert await _trail(raw) == [("create", "unknown")]
