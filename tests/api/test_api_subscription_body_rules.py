"""Subscription bodies and paths read by one rule: a wrong shape or an unknown field is 400,
a well-formed but impossible value 422, each naming the field; an unreadable path seq is 400.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.model import MAX_SEQ
from tests.api.conftest import ADMIN_KEY, settings
from tests.helpers import LogBuilder
from tests.realsinks import SECRET

ADMIN: Final = {"authorization": f"Bearer {ADMIN_KEY}"}
BASE: Final = "/v1/admin/subscriptions"
HOOK: Final = {"kind": "webhook", "url": "https://example.test/hooks", "secret": SECRET}
START_FORMS: Final = (
    'a start is "latest", "earliest", a seq ({"seq": N}) or an RFC 3339 time '
    '({"time": "2026-01-01T00:00:00Z"})'
)


@pytest.fixture
async def client() -> AsyncIterator[tuple[AsyncTestClient[Any], MemoryStore]]:
    store = MemoryStore()
    log = LogBuilder()
    await store.events.append([log.next(k) for k in ("a", "b")])
    app = create_app(settings(admin_key=ADMIN_KEY), store=store, clock=FakeClock())
    async with AsyncTestClient(app=app) as c:
        assert (await c.put(f"{BASE}/s", json={"sink": HOOK}, headers=ADMIN)).status_code == 201
        yield c, store


@pytest.mark.parametrize("action", ["pause", "resume", "reset", "parked/replay"])
async def test_every_action_refuses_an_unknown_field_naming_it(
    client: tuple[AsyncTestClient[Any], MemoryStore], action: str
) -> None:
    c, store = client
    body = {"x": 1, "start": "earliest"} if action == "reset" else {"x": 1}
    response = await c.post(f"{BASE}/s/{action}", json=body, headers=ADMIN)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"] == [{"key": "x", "message": "unknown field"}]
    record = await store.subscriptions.get("s")
    assert record is not None and not record.paused and record.commands == []
    trail = (await c.get("/v1/admin/actions", headers=ADMIN)).json()["items"]
    assert [a["action"] for a in trail] == ["create"]  # nothing done


async def test_pause_takes_no_body_or_an_empty_object_and_refuses_any_other_json(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    c, store = client
    for empty in (b"", b"{}"):
        paused = await c.post(f"{BASE}/s/pause", content=empty, headers=ADMIN)
        assert paused.status_code == 200 and paused.json()["status"]["state"] == "paused"
    for other in (b"[1]", b"null"):
        listed = await c.post(f"{BASE}/s/resume", content=other, headers=ADMIN)
        assert listed.status_code == 400, listed.text
        expected = [{"key": "", "message": "expected a JSON object (no field)"}]
        assert listed.json()["errors"] == expected
    null = await c.post(f"{BASE}/s/reset", content=b"null", headers=ADMIN)
    assert null.status_code == 400, null.text
    assert null.json()["errors"] == [{"key": "", "message": "expected a JSON object (start)"}]
    record = await store.subscriptions.get("s")
    assert record is not None and record.paused


async def test_a_skip_refuses_a_body_field_and_an_unreadable_seq_is_400(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    c, _ = client
    for written in ("abc", "0", "-1", "1_0", "010", str(MAX_SEQ + 1)):
        response = await c.post(f"{BASE}/s/parked/{written}/skip", headers=ADMIN)
        assert response.status_code == 400, (written, response.text)
        assert response.json()["detail"].startswith(f"seq must be 1..{MAX_SEQ} in decimal digits")
    assert "got 'abc'" in (await c.post(f"{BASE}/s/parked/abc/skip", headers=ADMIN)).text
    # A readable seq that is not parked is still a 404.
    missing = await c.post(f"{BASE}/s/parked/7/skip", headers=ADMIN)
    assert missing.status_code == 404, missing.text
    field = await c.post(f"{BASE}/s/parked/7/skip", json={"why": "x"}, headers=ADMIN)
    assert field.status_code == 400
    assert field.json()["errors"] == [{"key": "why", "message": "unknown field"}]


async def test_replay_up_to_seq_that_is_no_seq_is_400_and_out_of_range_422_naming_it(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    c, _ = client
    shape = await c.post(f"{BASE}/s/parked/replay", json={"up_to_seq": "3"}, headers=ADMIN)
    assert shape.status_code == 400
    assert [e["key"] for e in shape.json()["errors"]] == ["up_to_seq"]
    zero = await c.post(f"{BASE}/s/parked/replay", json={"up_to_seq": 0}, headers=ADMIN)
    assert zero.status_code == 422  # a whole number, out of range
    assert zero.json()["errors"] == [
        {"key": "up_to_seq", "message": f"up_to_seq: a seq is from 1 to {MAX_SEQ}, got 0"}
    ]


@pytest.mark.parametrize(
    ("sink", "key", "message"),
    [
        (
            {**HOOK, "headers": {"x-tenant": 5}},
            "sink.headers.x-tenant",
            'expected a string, {"env": NAME} or {"file": PATH}',
        ),
        (
            {**HOOK, "secret": 5},
            "sink.secret",
            'expected a string, {"env": NAME} or {"file": PATH}',
        ),
        (
            {**HOOK, "secret": {"vault": "x"}},
            "sink.secret",
            'expected a string, {"env": NAME} or {"file": PATH}',
        ),
        ({**HOOK, "secret": {"env": 5}}, "sink.secret.env", "expected a string"),
        ({**HOOK, "url": ["https://x"]}, "sink.url", "expected a string"),
    ],
)
async def test_a_wrong_type_anywhere_in_the_sink_is_400_like_a_wrong_type_of_lanes(
    client: tuple[AsyncTestClient[Any], MemoryStore], sink: dict[str, Any], key: str, message: str
) -> None:
    c, _ = client
    lanes = await c.put(f"{BASE}/t", json={"sink": HOOK, "lanes": "4"}, headers=ADMIN)
    assert lanes.status_code == 400
    response = await c.put(f"{BASE}/t", json={"sink": sink}, headers=ADMIN)
    assert response.status_code == 400, response.text
    assert response.json()["errors"] == [{"key": key, "message": message}]


async def test_an_impossible_secret_value_stays_422(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    c, _ = client
    for secret, key in (({"env": "not a name"}, "sink.secret.env"), ("", "sink.secret")):
        response = await c.put(
            f"{BASE}/t", json={"sink": {**HOOK, "secret": secret}}, headers=ADMIN
        )
        assert response.status_code == 422, response.text
        assert [e["key"] for e in response.json()["errors"]] == [key]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "Content-Length",
            "Content-Length may not be set: the HTTP client sets it from the body it sends "
            "(the request's framing)",
        ),
        (
            "Transfer-Encoding",
            "Transfer-Encoding may not be set: the HTTP client frames the request itself",
        ),
        ("connection", "connection may not be set: the HTTP client manages its connections"),
        ("Host", "Host may not be set: it is taken from the URL"),
        (
            "content-type",
            "content-type may not be set: the sink sends JSON and says so (application/json)",
        ),
        (
            "Webhook-Id",
            "Webhook-Id may not be set: webhook-* headers are the Standard Webhooks ones the "
            "sink signs with",
        ),
    ],
)
async def test_a_reserved_header_is_refused_by_its_name_and_why(
    client: tuple[AsyncTestClient[Any], MemoryStore], header: str, message: str
) -> None:
    c, _ = client
    sink = {**HOOK, "headers": {header: "1"}}
    response = await c.put(f"{BASE}/t", json={"sink": sink}, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [{"key": f"sink.headers.{header}", "message": message}]


@pytest.mark.parametrize("pattern", ["*", "**", "?*", "???", "[a-z]*", "*[^x]"])
async def test_an_invalidation_pattern_of_wildcards_alone_is_refused(
    client: tuple[AsyncTestClient[Any], MemoryStore], pattern: str
) -> None:
    c, store = client
    sink = {"kind": "redis-invalidate", "url": "redis://r", "keys": ["orders:list", pattern]}
    response = await c.put(f"{BASE}/cache", json={"sink": sink}, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {
            "key": "sink.keys[1]",
            "message": f"{pattern!r} matches every key of the database: a pattern needs a "
            "literal character or a placeholder (such as orders:* or order:{entity_key})",
        }
    ]
    assert await store.subscriptions.get("cache") is None


@pytest.mark.parametrize("pattern", ["orders:*", "*:list", "{entity_key}", "*{type}", r"\*", "a?"])
async def test_an_invalidation_pattern_with_something_literal_is_taken(
    client: tuple[AsyncTestClient[Any], MemoryStore], pattern: str
) -> None:
    c, store = client
    sink = {"kind": "redis-invalidate", "url": "redis://r", "keys": [pattern]}
    response = await c.put(f"{BASE}/cache", json={"sink": sink}, headers=ADMIN)
    assert response.status_code == 201, response.text
    record = await store.subscriptions.get("cache")
    assert record is not None and record.config["sink"]["keys"] == [pattern]


@pytest.mark.parametrize(
    ("start", "key", "message"),
    [
        ("bogus", "start", f"'bogus' is not a start: {START_FORMS}"),
        ({"time": "bogus"}, "start.time", f"'bogus' is not an RFC 3339 time: {START_FORMS}"),
    ],
)
async def test_a_start_that_does_not_read_lists_the_forms_a_start_takes(
    client: tuple[AsyncTestClient[Any], MemoryStore], start: Any, key: str, message: str
) -> None:
    c, _ = client
    response = await c.post(f"{BASE}/s/reset", json={"start": start}, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [{"key": key, "message": message}]


async def test_an_empty_list_of_keys_is_impossible_not_malformed(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    c, _ = client
    sink: dict[str, Any] = {"kind": "redis-invalidate", "url": "redis://r", "keys": []}
    empty = await c.put(f"{BASE}/cache", json={"sink": sink}, headers=ADMIN)
    assert empty.status_code == 422, empty.text
    assert empty.json()["errors"] == [
        {"key": "sink.keys", "message": "give at least one key or pattern to delete"}
    ]
    text = await c.put(f"{BASE}/cache", json={"sink": {**sink, "keys": "k"}}, headers=ADMIN)
    assert text.status_code == 400, text.text


async def test_a_reset_start_of_both_seq_and_time_says_to_give_one(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    # It answered "start: expected an object" for an object.
    c, _ = client
    start = {"seq": 1, "time": "2026-01-01T00:00:00Z"}
    response = await c.post(f"{BASE}/s/reset", json={"start": start}, headers=ADMIN)
    assert response.status_code == 400, response.text
    assert response.json()["errors"] == [
        {
            "key": "start",
            "message": 'give exactly one of "seq" or "time" in a start object (given: "seq", '
            f'"time"): {START_FORMS}',
        }
    ]


async def test_an_empty_stream_name_in_a_filter_is_422_and_nothing_is_stored(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    c, store = client
    body = {"sink": HOOK, "filter": {"streams": [""]}}
    response = await c.put(f"{BASE}/mx", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {
            "key": "filter.streams[0]",
            "message": "'' is not a stream name: a stream is a collection name (or $source)",
        }
    ]
    assert await store.subscriptions.get("mx") is None


async def test_a_secret_twice_in_a_rotation_list_is_422(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    c, store = client
    body = {"sink": {**HOOK, "secret": [SECRET, SECRET]}}
    response = await c.put(f"{BASE}/s", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert [e["key"] for e in response.json()["errors"]] == ["sink.secret[1]"]
    record = await store.subscriptions.get("s")
    assert record is not None and record.config["sink"]["secret"] == SECRET  # unchanged
