"""The admin API of subscriptions: status codes, masking, parked events, the action trail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.subscription_records import ParkedEvent
from tests.api.conftest import ADMIN_KEY, READ_KEY, settings
from tests.helpers import LogBuilder
from tests.realsinks import SECRET

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
HOOK = {"kind": "webhook", "url": "https://example.test/hooks/{entity_key}", "secret": SECRET}
BASE = "/v1/admin/subscriptions"


def parked_event(name: str, seq: int, *, attempts: int) -> ParkedEvent:
    """An event of entity `a` parked by subscription `name` after the receiver's 500s."""
    return ParkedEvent(
        name=name,
        seq=seq,
        stream="orders",
        entity_key="a",
        type="updated",
        attempts=attempts,
        last_error="the receiver answered 500",
        parked_at=FakeClock().now(),
    )


@pytest.fixture
async def client() -> AsyncIterator[tuple[AsyncTestClient[Any], MemoryStore]]:
    store = MemoryStore()
    log = LogBuilder()
    await store.events.append([log.next(k) for k in ("a", "b", "a", "c")])
    app = create_app(
        settings(admin_key=ADMIN_KEY, read_keys=(READ_KEY,)), store=store, clock=FakeClock()
    )
    async with AsyncTestClient(app=app) as c:
        yield c, store


async def test_put_creates_201_then_updates_200_and_never_returns_secrets(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    c, store = client
    body = {"sink": {**HOOK, "headers": {"authorization": "Bearer hidden"}}, "start": "earliest"}
    created = await c.put(f"{BASE}/orders", json=body, headers={**ADMIN, "eventstore-actor": "ann"})
    assert created.status_code == 201, created.text
    shown = created.json()
    assert shown["sink"]["secret"] == "***" and shown["sink"]["headers"] == {"authorization": "***"}
    assert SECRET not in created.text and "hidden" not in created.text
    assert shown["status"]["position"] == 0 and shown["status"]["lag"] == 4
    assert shown["status"]["state"] == "stopped"  # no instance runs it here
    # An update without the secret keeps the stored one.
    no_secret = {"sink": {k: v for k, v in HOOK.items() if k != "secret"}, "lanes": 3}
    updated = await c.put(f"{BASE}/orders", json=no_secret, headers=ADMIN)
    assert updated.status_code == 200, updated.text
    assert updated.json()["lanes"] == 3
    record = await store.subscriptions.get("orders")
    assert record is not None and record.config["sink"]["secret"] == SECRET
    listed = await c.get(BASE, headers=ADMIN)
    assert [s["name"] for s in listed.json()] == ["orders"]
    assert SECRET not in listed.text
    actions = (await c.get("/v1/admin/actions", headers=ADMIN)).json()
    assert [(a["action"], a["actor"]) for a in actions["items"]] == [
        ("create", "ann"),
        ("update", "unknown"),
    ]
    assert actions["next"] is None


@pytest.mark.parametrize(
    ("body", "status", "key"),
    [
        (b"{not json", 400, None),
        ({"sink": HOOK, "colour": "red"}, 400, "colour"),
        ({"sink": HOOK, "lanes": "x"}, 400, "lanes"),
        ({"sink": {"kind": "kafka"}}, 422, "sink.kind"),
        ({"sink": {**HOOK, "url": "gopher://x.test"}}, 422, "sink.url"),
        ({"sink": {**HOOK, "secret": "nope"}}, 422, "sink.secret"),
        ({"sink": HOOK, "filter": {"fields": ["a..b"]}}, 422, "filter.fields[0]"),
        ({"sink": {**HOOK, "url": "https://x.test/{nope}"}}, 422, "sink.url"),
        (
            {"sink": {"kind": "redis-stream", "url": "redis://r", "stream": "s"}, "lanes": 4},
            422,
            "lanes",
        ),
        # Found by trying: each was a 500, or stored and then failing every delivery.
        ({"sink": {**HOOK, "url": "http://[::1/h"}}, 422, "sink.url"),
        ({"sink": {**HOOK, "url": "https://x.test:99999/h"}}, 422, "sink.url"),
        ({"sink": {**HOOK, "url": "https://x.test:0/h"}}, 422, "sink.url"),
        # Stored, then every delivery sent a malformed request line (a header injected).
        (
            {"sink": {**HOOK, "url": "http://127.0.0.1:8201/x HTTP/1.1\r\nX-Injected: yes"}},
            422,
            "sink.url",
        ),
        ({"sink": {**HOOK, "url": "http://a b/"}}, 422, "sink.url"),
        (
            {"sink": {"kind": "redis-pubsub", "url": "redis://r:port", "channel": "c"}},
            422,
            "sink.url",
        ),
        (
            {"sink": {"kind": "redis-pubsub", "url": "redis://r/x1", "channel": "c"}},
            422,
            "sink.url",
        ),
        (
            {"sink": {"kind": "redis-pubsub", "url": "redis://r/99999999999", "channel": "c"}},
            422,
            "sink.url",
        ),
        ({"sink": {**HOOK, "headers": {"x-a": "v\r\nx-b: injected"}}}, 422, "sink.headers.x-a"),
        ({"sink": HOOK, "start": {"seq": 10**40}}, 422, "start.seq"),
        # A final newline passed each pattern (`$` of re.match matches before it).
        ({"sink": {**HOOK, "headers": {"x-a": "v\n"}}}, 422, "sink.headers.x-a"),
        ({"sink": {**HOOK, "headers": {"x-a\n": "v"}}}, 422, "sink.headers.x-a\n"),
        ({"sink": HOOK, "filter": {"fields": ["status\n"]}}, 422, "filter.fields[0]"),
    ],
)
async def test_bad_bodies_are_400_or_422_naming_the_field_and_store_nothing(
    client: tuple[AsyncTestClient[Any], MemoryStore], body: Any, status: int, key: str | None
) -> None:
    c, store = client
    if isinstance(body, bytes):
        response = await c.put(f"{BASE}/orders", content=body, headers=ADMIN)
    else:
        response = await c.put(f"{BASE}/orders", json=body, headers=ADMIN)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    if key is not None:
        assert key in [e["key"] for e in response.json()["errors"]]
    assert await store.subscriptions.get("orders") is None
    assert (await c.get("/v1/admin/actions", headers=ADMIN)).json()["items"] == []


async def test_unknown_names_are_404_and_a_read_key_cannot_administer(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    c, _ = client
    for method, path in (
        ("GET", f"{BASE}/nope"),
        ("DELETE", f"{BASE}/nope"),
        ("POST", f"{BASE}/nope/pause"),
        ("POST", f"{BASE}/nope/resume"),
        ("GET", f"{BASE}/nope/parked"),
        ("POST", f"{BASE}/nope/parked/replay"),
        ("POST", f"{BASE}/nope/parked/3/skip"),
    ):
        response = await c.request(method, path, headers=ADMIN)
        assert response.status_code == 404, (method, path, response.text)
    read = await c.get(BASE, headers={"authorization": f"Bearer {READ_KEY}"})
    assert read.status_code == 403
    bad = await c.post(f"{BASE}/nope/reset", json={"start": "someday"}, headers=ADMIN)
    assert bad.status_code == 422


async def test_pause_resume_reset_parked_replay_skip_and_delete_are_in_the_trail(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    c, store = client
    who = {**ADMIN, "eventstore-actor": "ops"}
    assert (await c.put(f"{BASE}/s", json={"sink": HOOK}, headers=who)).status_code == 201
    paused = await c.post(f"{BASE}/s/pause", headers=who)
    assert paused.status_code == 200 and paused.json()["status"]["state"] == "paused"
    resumed = await c.post(f"{BASE}/s/resume", headers=who)
    assert resumed.json()["status"]["state"] == "stopped"
    reset = await c.post(f"{BASE}/s/reset", json={"start": {"seq": 2}}, headers=who)
    assert reset.status_code == 200, reset.text
    assert reset.json()["status"]["position"] == 1  # carried out here: nobody delivers
    assert (await c.post(f"{BASE}/s/reset", json={}, headers=who)).status_code == 400
    await store.deliveries.park([parked_event("s", seq, attempts=8) for seq in (1, 3)])
    parked = (await c.get(f"{BASE}/s/parked?limit=1", headers=ADMIN)).json()
    assert [p["seq"] for p in parked["items"]] == [1] and parked["next"] == 1
    rest = (await c.get(f"{BASE}/s/parked?after=1", headers=ADMIN)).json()
    assert [p["seq"] for p in rest["items"]] == [3] and rest["next"] is None
    assert set(rest["items"][0]) == {
        "seq",
        "stream",
        "entity_key",
        "type",
        "attempts",
        "last_error",
        "parked_at",
    }
    assert (await c.post(f"{BASE}/s/parked/3/skip", headers=who)).json() == {"skipped": 3}
    assert (await c.post(f"{BASE}/s/parked/3/skip", headers=who)).status_code == 404
    replay = await c.post(f"{BASE}/s/parked/replay", json={"up_to_seq": 1}, headers=who)
    assert replay.json() == {"queued": 1, "up_to_seq": 1}
    assert (
        await c.post(f"{BASE}/s/parked/replay", json={"up_to_seq": "x"}, headers=who)
    ).status_code == 400
    assert (await c.delete(f"{BASE}/s", headers=who)).status_code == 204
    assert (await c.get(f"{BASE}/s", headers=ADMIN)).status_code == 404
    trail = (await c.get("/v1/admin/actions?limit=100", headers=ADMIN)).json()["items"]
    assert [(a["action"], a["actor"], a["target"]) for a in trail] == [
        ("create", "ops", "s"),
        ("pause", "ops", "s"),
        ("resume", "ops", "s"),
        ("reset", "ops", "s"),
        ("skip", "ops", "s"),
        ("replay", "ops", "s"),
        ("delete", "ops", "s"),
    ]
    assert trail[4]["details"] == {"seq": 3, "stream": "orders", "entity_key": "a"}
    assert set(trail[0]) == {"id", "at", "actor", "action", "target", "details"}


async def test_metrics_show_each_subscription(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    c, store = client
    await c.put(f"{BASE}/hooks", json={"sink": HOOK, "start": "earliest"}, headers=ADMIN)
    await store.subscriptions.patch("hooks", {"delivered": 7, "failed_attempts": 2})
    text = (await c.get("/metrics")).text
    assert 'eventstore_subscription_delivered_total{subscription="hooks"} 7' in text
    assert 'eventstore_subscription_failures_total{subscription="hooks"} 2' in text
    assert 'eventstore_subscription_lag_events{subscription="hooks"} 4' in text
    assert 'eventstore_subscription_parked{subscription="hooks"} 0' in text
    assert 'eventstore_subscription_state{subscription="hooks",state="stopped"} 1' in text


async def test_the_subscription_series_parse_as_prometheus_text(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    c, store = client
    await c.put(f"{BASE}/hooks", json={"sink": HOOK, "start": "earliest"}, headers=ADMIN)
    await store.subscriptions.patch("hooks", {"delivered": 7})
    families = {f.name: f for f in text_string_to_metric_families((await c.get("/metrics")).text)}
    delivered = families["eventstore_subscription_delivered"]
    assert delivered.type == "counter"
    assert [(s.labels, s.value) for s in delivered.samples] == [({"subscription": "hooks"}, 7.0)]
    assert families["eventstore_subscription_lag_events"].samples[0].value == 4.0


ROUTES = {
    BASE: {"GET", "HEAD"},
    f"{BASE}/orders": {"GET", "HEAD", "PUT", "DELETE"},
    f"{BASE}/orders/pause": {"POST"},
    f"{BASE}/orders/resume": {"POST"},
    f"{BASE}/orders/reset": {"POST"},
    f"{BASE}/orders/parked": {"GET", "HEAD"},
    f"{BASE}/orders/parked/replay": {"POST"},
    f"{BASE}/orders/parked/2/skip": {"POST"},
    "/v1/admin/actions": {"GET", "HEAD"},
}


@pytest.mark.parametrize("path", list(ROUTES))
async def test_every_method_on_every_route_is_an_answer_or_405_with_allow_never_500(
    client: tuple[AsyncTestClient[Any], MemoryStore], path: str
) -> None:
    c, _ = client
    await c.put(f"{BASE}/orders", json={"sink": HOOK}, headers=ADMIN)
    for method in ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "TRACE"):
        response = await c.request(method, path, headers=ADMIN)
        allowed = ROUTES[path]
        assert response.status_code < 500, (method, path, response.text)
        if method == "OPTIONS":
            assert response.status_code == 204
            assert set(response.headers["allow"].split(", ")) == {*allowed, "OPTIONS"}
        elif method not in allowed:
            assert response.status_code == 405, (method, path)
            assert set(response.headers["allow"].split(", ")) == {*allowed, "OPTIONS"}
            if method != "HEAD":
                assert response.headers["content-type"].startswith("application/problem+json")
                assert response.json()["status"] == 405
        elif response.status_code >= 400:  # a body was needed, or nothing is parked
            assert response.status_code in (400, 404), (method, path, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
        if method == "DELETE" and response.status_code == 204:
            await c.put(f"{BASE}/orders", json={"sink": HOOK}, headers=ADMIN)


async def test_seqs_beyond_what_a_database_stores_are_refused_not_500(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    c, store = client
    await c.put(f"{BASE}/orders", json={"sink": HOOK}, headers=ADMIN)
    huge = 10**30
    replay = await c.post(f"{BASE}/orders/parked/replay", json={"up_to_seq": huge}, headers=ADMIN)
    assert replay.status_code == 422 and "up_to_seq" in replay.json()["detail"]
    assert [e["key"] for e in replay.json()["errors"]] == ["up_to_seq"]
    skip = await c.post(f"{BASE}/orders/parked/{huge}/skip", headers=ADMIN)
    assert skip.status_code == 400  # a path seq is 1 to 2^62, as /v1/events/{seq}/proof reads it
    reset = await c.post(f"{BASE}/orders/reset", json={"start": {"seq": huge}}, headers=ADMIN)
    assert reset.status_code == 422
    assert [e["key"] for e in reset.json()["errors"]] == ["start.seq"]
    record = await store.subscriptions.get("orders")
    assert record is not None and record.commands == []  # nothing queued


async def test_a_start_seq_beyond_the_next_event_is_refused_as_it_would_skip_events(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    """The log's head is 4. A subscription starting at seq 6 would pass over seq 5 and
    every event after it until the log reached 6, without a word: refused (422) on
    creation, update and reset. Seq 5, the next event, is a start; an update of a
    subscription that exists checks its start as a creation does, and keeps its position."""
    c, store = client
    far = await c.put(f"{BASE}/far", json={"sink": HOOK, "start": {"seq": 6}}, headers=ADMIN)
    assert far.status_code == 422, far.text
    [error] = far.json()["errors"]
    assert error["key"] == "start.seq"
    assert "head is seq 4" in error["message"] and "at most at seq 5" in error["message"]
    assert await store.subscriptions.get("far") is None  # nothing stored
    nxt = await c.put(f"{BASE}/far", json={"sink": HOOK, "start": {"seq": 5}}, headers=ADMIN)
    assert nxt.status_code == 201 and nxt.json()["status"]["position"] == 4
    beyond = await c.put(f"{BASE}/far", json={"sink": HOOK, "start": {"seq": 99}}, headers=ADMIN)
    assert beyond.status_code == 422 and beyond.json()["errors"][0]["key"] == "start.seq"
    body = {"sink": HOOK, "start": {"seq": 5}, "lanes": 2}
    kept = await c.put(f"{BASE}/far", json=body, headers=ADMIN)
    assert kept.status_code == 200 and kept.json()["status"]["position"] == 4
    assert "note" not in kept.json()  # the start did not change
    reset = await c.post(f"{BASE}/far/reset", json={"start": {"seq": 6}}, headers=ADMIN)
    assert reset.status_code == 422 and reset.json()["errors"][0]["key"] == "start.seq"
    record = await store.subscriptions.get("far")
    assert record is not None and record.commands == []  # nothing queued
    again = await c.post(f"{BASE}/far/reset", json={"start": {"seq": 5}}, headers=ADMIN)
    assert again.status_code == 200 and again.json()["status"]["position"] == 4
    trail = (await c.get("/v1/admin/actions", headers=ADMIN)).json()["items"]
    assert [a["action"] for a in trail] == ["create", "update", "reset"]


async def test_a_name_with_a_final_newline_is_refused(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    """`orders\n` passed the name's pattern (`$` of re.match matches before a final newline)."""
    c, store = client
    response = await c.put(f"{BASE}/orders%0A", json={"sink": HOOK}, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["key"] == "name"
    assert await store.subscriptions.get("orders\n") is None
    assert (await c.get(f"{BASE}/orders%0A", headers=ADMIN)).status_code == 404


async def test_a_parked_seq_is_read_only_as_decimal_digits(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    """`1_0` and `+10` were read as seq 10 by Litestar's int(), and that event skipped."""
    c, store = client
    assert (await c.put(f"{BASE}/orders", json={"sink": HOOK}, headers=ADMIN)).status_code == 201
    await store.deliveries.park([parked_event("orders", 10, attempts=1)])
    for written in ("1_0", "+10", "010", "%2010"):
        response = await c.post(f"{BASE}/orders/parked/{written}/skip", headers=ADMIN)
        assert response.status_code == 400, (written, response.text)
    parked = (await c.get(f"{BASE}/orders/parked", headers=ADMIN)).json()["items"]
    assert [p["seq"] for p in parked] == [10]
    skipped = await c.post(f"{BASE}/orders/parked/10/skip", headers=ADMIN)
    assert skipped.status_code == 200 and skipped.json() == {"skipped": 10}


async def test_the_action_trail_pages_with_its_own_cursors_and_refuses_any_other(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    c, _ = client
    for name in ("a", "b", "c"):
        put = await c.put(f"{BASE}/{name}", json={"sink": HOOK}, headers=ADMIN)
        assert put.status_code == 201, put.text
    whole_trail = (await c.get("/v1/admin/actions", headers=ADMIN)).json()
    assert [a["target"] for a in whole_trail["items"]] == ["a", "b", "c"]
    # Paged one by one with the `next` it hands out: the same trail, in order.
    seen, after = [], None
    while True:
        params = {"limit": "1", **({"after": after} if after is not None else {})}
        page = await c.get("/v1/admin/actions", params=params, headers=ADMIN)
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        after = page.json()["next"]
        if after is None:
            break
        assert all(a["id"] not in after for a in whole_trail["items"])  # opaque, not an id
    assert seen == whole_trail["items"]
    events = (await c.get("/v1/events", params={"limit": "1"}, headers=ADMIN)).json()["next"]
    first_id = whole_trail["items"][0]["id"]
    for cursor, detail in [
        ("!!!", "page cursor '!!!' does not belong to this listing"),
        ("", "page cursor '' does not belong to this listing"),
        ("ZXZlbnRzOjE", "page cursor 'ZXZlbnRzOjE' does not belong to this listing"),
        (events, f"page cursor {events!r} does not belong to this listing"),
        (first_id, f"malformed page cursor {first_id!r}: pass back a `next` value"),
    ]:
        r = await c.get("/v1/admin/actions", params={"after": cursor}, headers=ADMIN)
        assert r.status_code == 400, (cursor, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["detail"] == detail
