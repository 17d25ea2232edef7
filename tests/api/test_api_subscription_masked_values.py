"""`***` in a subscription body stands for the stored value(s); with nothing stored it is a 422.

The API shows every literal secret, header value and URL password as `***`, so a
body sent back as shown must keep what is stored, and never store `***` itself.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any, Final

import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.subscriptions import config as cfg
from tests.api.conftest import ADMIN_KEY, settings
from tests.realsinks import OLD_SECRET, SECRET

ADMIN: Final = {"authorization": f"Bearer {ADMIN_KEY}"}
BASE: Final = "/v1/admin/subscriptions"
URL: Final = "https://example.test/hooks/{entity_key}"
THIRD: Final = "whsec_" + base64.b64encode(b"t" * 32).decode()
NONE_STORED: Final = '"***" stands for a stored value'


@pytest.fixture
async def client() -> AsyncIterator[tuple[AsyncTestClient[Any], MemoryStore]]:
    store = MemoryStore()
    app = create_app(settings(admin_key=ADMIN_KEY), store=store, clock=FakeClock())
    async with AsyncTestClient(app=app) as c:
        yield c, store


async def _sink(store: MemoryStore, name: str) -> dict[str, Any]:
    record = await store.subscriptions.get(name)
    assert record is not None
    return dict(record.config["sink"])


async def test_a_rotation_new_plus_stars_keeps_the_stored_secret_after_the_new_one(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    c, store = client
    created = await c.put(
        f"{BASE}/hooks",
        json={"sink": {"kind": "webhook", "url": URL, "secret": OLD_SECRET}},
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    rotated = await c.put(
        f"{BASE}/hooks",
        json={"sink": {"kind": "webhook", "url": URL, "secret": [SECRET, "***"]}},
        headers=ADMIN,
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["sink"]["secret"] == ["***", "***"]
    assert (await _sink(store, "hooks"))["secret"] == [SECRET, OLD_SECRET]
    # Sent again as shown, or again as [new, ***]: nothing changes, nothing doubles.
    for secret in (["***", "***"], [SECRET, "***"], "***"):
        again = await c.put(
            f"{BASE}/hooks",
            json={"sink": {"kind": "webhook", "url": URL, "secret": secret}},
            headers=ADMIN,
        )
        assert again.status_code == 200, (secret, again.text)
        assert (await _sink(store, "hooks"))["secret"] == [SECRET, OLD_SECRET]
    # Both keys are whole webhook keys (the stored `***` used to fail every delivery).
    secrets = await _sink(store, "hooks")
    assert [cfg.webhook_key(s) for s in secrets["secret"]] == [b"s" * 32, b"o" * 32]


async def test_new_plus_stars_over_two_stored_secrets_is_refused_as_three(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    c, store = client
    body = {"sink": {"kind": "webhook", "url": URL, "secret": [SECRET, OLD_SECRET]}}
    assert (await c.put(f"{BASE}/hooks", json=body, headers=ADMIN)).status_code == 201
    three = {"sink": {"kind": "webhook", "url": URL, "secret": [THIRD, "***"]}}
    refused = await c.put(f"{BASE}/hooks", json=three, headers=ADMIN)
    assert refused.status_code == 422, refused.text
    (error,) = refused.json()["errors"]
    assert error["key"] == "sink.secret"
    assert error["message"].startswith("3 secrets: give one, or [new, old] during a rotation")
    assert (await _sink(store, "hooks"))["secret"] == [SECRET, OLD_SECRET]


@pytest.mark.parametrize(
    ("secret", "key"),
    [("***", "sink.secret"), ([SECRET, "***"], "sink.secret[1]"), (["***"], "sink.secret[0]")],
)
async def test_stars_for_a_secret_on_create_are_refused_naming_the_field(
    client: tuple[AsyncTestClient[Any], MemoryStore], secret: Any, key: str
) -> None:
    c, store = client
    body = {"sink": {"kind": "webhook", "url": URL, "secret": secret}}
    refused = await c.put(f"{BASE}/hooks", json=body, headers=ADMIN)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [
        {
            "key": key,
            "message": '"***" stands for a stored value (the API shows secrets as ***), '
            "and there is none: give the secret itself",
        }
    ]
    assert await store.subscriptions.get("hooks") is None


async def test_a_header_given_as_stars_keeps_its_stored_value_and_is_refused_without_one(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    c, store = client
    alone = {"kind": "webhook", "url": URL, "secret": SECRET, "headers": {"authorization": "***"}}
    refused = await c.put(f"{BASE}/hooks", json={"sink": alone}, headers=ADMIN)
    assert refused.status_code == 422, refused.text
    assert [e["key"] for e in refused.json()["errors"]] == ["sink.headers.authorization"]
    assert NONE_STORED in refused.json()["errors"][0]["message"]
    assert await store.subscriptions.get("hooks") is None

    first = {**alone, "headers": {"Authorization": "Bearer t0ken"}}
    assert (await c.put(f"{BASE}/hooks", json={"sink": first}, headers=ADMIN)).status_code == 201
    # A header that was never stored has nothing behind its `***`: refused, nothing changes.
    extra = {**alone, "headers": {"authorization": "***", "x-tenant": "***"}}
    refused = await c.put(f"{BASE}/hooks", json={"sink": extra}, headers=ADMIN)
    assert refused.status_code == 422, refused.text
    assert [e["key"] for e in refused.json()["errors"]] == ["sink.headers.x-tenant"]
    assert (await _sink(store, "hooks"))["headers"] == {"Authorization": "Bearer t0ken"}
    # The stored one, named in any case, is kept.
    kept = await c.put(f"{BASE}/hooks", json={"sink": alone}, headers=ADMIN)
    assert kept.status_code == 200, kept.text
    assert (await _sink(store, "hooks"))["headers"] == {"authorization": "Bearer t0ken"}


async def test_a_url_password_given_as_stars_is_kept_only_with_the_same_url(
    client: tuple[AsyncTestClient[Any], MemoryStore],
) -> None:
    c, store = client

    def pubsub(url: str) -> dict[str, Any]:
        return {"sink": {"kind": "redis-pubsub", "url": url, "channel": "c"}}

    fresh = await c.put(f"{BASE}/cache", json=pubsub("redis://u:***@h:1/0"), headers=ADMIN)
    assert fresh.status_code == 422, fresh.text
    assert [e["key"] for e in fresh.json()["errors"]] == ["sink.url"]
    assert await store.subscriptions.get("cache") is None
    created = await c.put(f"{BASE}/cache", json=pubsub("redis://u:pw@h:1/0"), headers=ADMIN)
    assert created.status_code == 201
    moved = await c.put(f"{BASE}/cache", json=pubsub("redis://u:***@elsewhere:1/0"), headers=ADMIN)
    assert moved.status_code == 422, moved.text
    assert [e["key"] for e in moved.json()["errors"]] == ["sink.url"]
    same = await c.put(f"{BASE}/cache", json=pubsub("redis://u:***@h:1/0"), headers=ADMIN)
    assert same.status_code == 200, same.text
    assert (await _sink(store, "cache"))["url"] == "redis://u:pw@h:1/0"


def test_keep_secrets_puts_the_stored_ones_in_place_of_the_stars_without_duplicates() -> None:
    old = {"kind": "webhook", "url": URL, "secret": [SECRET, {"env": "OLD_HOOK"}]}
    new = {"kind": "webhook", "url": URL, "secret": [THIRD, "***", SECRET]}
    assert cfg.keep_secrets(new, old)["secret"] == [THIRD, SECRET, {"env": "OLD_HOOK"}]
    # Another kind of sink stores no secret to stand for: the `***` is left for parse to refuse.
    redis = {"kind": "redis-pubsub", "url": "redis://h", "channel": "c"}
    assert cfg.keep_secrets({**new, "secret": "***"}, redis)["secret"] == "***"
