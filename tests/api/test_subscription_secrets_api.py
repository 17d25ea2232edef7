"""What a subscription body may not do with secrets and nulls over the admin API.

- A null is refused where the schema has none (a reset's `start`, a webhook `secret`),
  and never read as "the default" or "keep the stored one".
- A stored secret (`***`, or a webhook secret left out) is kept only while `sink.url`
  keeps its origin (scheme, host, port): another origin would be handed it.
- A `{"env"}`/`{"file"}` reference reads this server's environment or files: the API
  takes one only where it is already stored (same place, same origin), unless the
  operator sets EVENTSTORE_API_SECRET_REFERENCES.
- Two `headers` names differing only in case name one header: refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from eventstore.clock import FakeClock
from eventstore.memory.store import MemoryStore
from eventstore.settings import SettingsError, load, unknown_variables
from eventstore.subscriptions.control import SubscriptionAdmin
from tests.api.conftest import ADMIN_KEY, settings
from tests.helpers import LogBuilder
from tests.realsinks import OLD_SECRET, SECRET

ADMIN: Final = {"authorization": f"Bearer {ADMIN_KEY}"}
BASE: Final = "/v1/admin/subscriptions"
LEGIT: Final = "http://127.0.0.1:9/legit"
START_FORMS: Final = (
    'a start is "latest", "earliest", a seq ({"seq": N}) or an RFC 3339 time '
    '({"time": "2026-01-01T00:00:00Z"})'
)
KEPT_ELSEWHERE: Final = (
    "is kept only while sink.url keeps its origin (scheme, host and port); this update "
    "sends to another origin, which would receive it"
)
REFERENCES: Final = (
    "a secret reference reads this server's environment or files, and the admin API takes "
    "one only where the subscription already has it, with sink.url keeping its origin: "
    "define the subscription in the SUBSCRIPTIONS file or with `eventstore subscriptions "
    "add`, send the secret itself, or set EVENTSTORE_API_SECRET_REFERENCES=true"
)


async def _app(store: MemoryStore, **kw: Any) -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_app(settings(admin_key=ADMIN_KEY, **kw), store=store, clock=FakeClock())
    async with AsyncTestClient(app=app) as c:
        yield c


@pytest.fixture
async def store() -> MemoryStore:
    store = MemoryStore()
    log = LogBuilder()
    await store.events.append([log.next(k) for k in ("a", "b", "c")])
    return store


@pytest.fixture
async def client(store: MemoryStore) -> AsyncIterator[AsyncTestClient[Any]]:
    async for c in _app(store):
        yield c


@pytest.fixture
async def permissive(store: MemoryStore) -> AsyncIterator[AsyncTestClient[Any]]:
    async for c in _app(store, api_secret_references=True):
        yield c


async def _sink(store: MemoryStore, name: str) -> dict[str, Any]:
    record = await store.subscriptions.get(name)
    assert record is not None
    return dict(record.config["sink"])


async def _actions(c: AsyncTestClient[Any]) -> list[tuple[str, str, Any]]:
    items = (await c.get("/v1/admin/actions", headers=ADMIN)).json()["items"]
    return [(a["action"], a["target"], a["details"]) for a in items]


def _admin(store: MemoryStore) -> SubscriptionAdmin:
    """The operations as the CLI and the SUBSCRIPTIONS file reach them (no API)."""
    return SubscriptionAdmin(store, clock=FakeClock(), owner="cli", lease_seconds=10)


# -- 1. null where the schema has none ------------------------------------------------------------


async def test_a_reset_with_a_null_start_is_400_like_a_wrong_type_and_does_nothing(
    client: AsyncTestClient[Any], store: MemoryStore
) -> None:
    hook = {"kind": "webhook", "url": LEGIT, "secret": SECRET}
    body = {"sink": hook, "start": "earliest"}
    assert (await client.put(f"{BASE}/s", json=body, headers=ADMIN)).status_code == 201
    refused = await client.post(f"{BASE}/s/reset", json={"start": None}, headers=ADMIN)
    assert refused.status_code == 400, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["errors"] == [
        {"key": "start", "message": f"null is not a start: {START_FORMS}"}
    ]
    wrong = await client.post(f"{BASE}/s/reset", json={"start": 5}, headers=ADMIN)
    assert wrong.status_code == 400, wrong.text
    assert [e["key"] for e in wrong.json()["errors"]] == ["start"]
    # Nothing queued, nothing in the trail, the position where the creation put it.
    record = await store.subscriptions.get("s")
    assert record is not None and record.commands == []
    assert [a[0] for a in await _actions(client)] == ["create"]
    shown = (await client.get(f"{BASE}/s", headers=ADMIN)).json()
    assert shown["status"]["position"] == 0 and shown["status"]["lag"] == 3


async def test_a_null_webhook_secret_is_400_and_never_keeps_the_stored_one(
    client: AsyncTestClient[Any], store: MemoryStore
) -> None:
    hook: dict[str, Any] = {"kind": "webhook", "url": LEGIT, "secret": None}
    message = (
        'expected a string, {"env": NAME} or {"file": PATH} (or a list of them), not null: '
        'leave the field out, or give "***", to keep the stored secret'
    )
    fresh = await client.put(f"{BASE}/s", json={"sink": hook}, headers=ADMIN)
    assert fresh.status_code == 400, fresh.text
    assert fresh.json()["errors"] == [{"key": "sink.secret", "message": message}]
    assert await store.subscriptions.get("s") is None
    created = await client.put(
        f"{BASE}/s", json={"sink": {**hook, "secret": SECRET}}, headers=ADMIN
    )
    assert created.status_code == 201, created.text
    update = await client.put(f"{BASE}/s", json={"sink": hook, "lanes": 2}, headers=ADMIN)
    assert update.status_code == 400, update.text
    assert update.json()["errors"] == [{"key": "sink.secret", "message": message}]
    record = await store.subscriptions.get("s")
    assert record is not None and record.config["lanes"] == 1
    assert record.config["sink"]["secret"] == SECRET


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"lanes": None}, "lanes"),
        (
            {"sink": {"kind": "webhook", "url": LEGIT, "secret": SECRET, "timeout_s": None}},
            "sink.timeout_s",
        ),
        (
            {"sink": {"kind": "webhook", "url": LEGIT, "secret": SECRET, "headers": None}},
            "sink.headers",
        ),
        (
            {"sink": {"kind": "webhook", "url": LEGIT, "secret": SECRET, "headers": {"x": None}}},
            "sink.headers.x",
        ),
        ({"sink": {"kind": "webhook", "url": LEGIT, "secret": [SECRET, None]}}, "sink.secret[1]"),
        ({"sink": {"kind": "webhook", "url": None, "secret": SECRET}}, "sink.url"),
        ({"sink": {"kind": None, "url": LEGIT, "secret": SECRET}}, "sink.kind"),
        ({"sink": None}, "sink"),
        ({"sink": {"kind": "redis-pubsub", "url": "redis://r", "channel": None}}, "sink.channel"),
        ({"sink": {"kind": "redis-invalidate", "url": "redis://r", "keys": None}}, "sink.keys"),
        (
            {
                "sink": {
                    "kind": "redis-invalidate",
                    "url": "redis://r",
                    "keys": ["k"],
                    "again_after_ms": None,
                }
            },
            "sink.again_after_ms",
        ),
        ({"sink": {"kind": "redis-stream", "url": "redis://r", "stream": None}}, "sink.stream"),
        ({"retry": {"delays_s": None}}, "retry.delays_s"),
        ({"retry": {"jitter": None}}, "retry.jitter"),
        ({"start": {"seq": None}}, "start.seq"),
        ({"start": {"time": None}}, "start.time"),
    ],
)
async def test_a_null_the_schema_does_not_allow_is_400_naming_the_field(
    client: AsyncTestClient[Any], store: MemoryStore, body: dict[str, Any], key: str
) -> None:
    full = {"sink": {"kind": "webhook", "url": LEGIT, "secret": SECRET}, **body}
    refused = await client.put(f"{BASE}/s", json=full, headers=ADMIN)
    assert refused.status_code == 400, refused.text
    assert [e["key"] for e in refused.json()["errors"]] == [key]
    assert await store.subscriptions.get("s") is None


async def test_the_nulls_the_schema_allows_are_still_the_defaults(
    client: AsyncTestClient[Any], store: MemoryStore
) -> None:
    body = {
        "sink": {"kind": "redis-stream", "url": "redis://r", "stream": "s", "maxlen": None},
        "filter": None,
        "start": None,
        "retry": None,
    }
    created = await client.put(f"{BASE}/s", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    record = await store.subscriptions.get("s")
    assert record is not None
    assert (record.config["start"], record.config["sink"]["maxlen"]) == ("latest", None)
    assert record.config["filter"] == {"streams": [], "types": [], "actors": [], "fields": []}
    filt = {"streams": None, "types": None, "actors": None, "fields": None}
    again = await client.put(f"{BASE}/s", json={**body, "filter": filt}, headers=ADMIN)
    assert again.status_code == 200, again.text
    replay = await client.post(f"{BASE}/s/parked/replay", json={"up_to_seq": None}, headers=ADMIN)
    assert replay.status_code == 200, replay.text
    assert replay.json() == {"queued": 0, "up_to_seq": None}


# -- 2. a stored secret goes only to the same origin ----------------------------------------------


async def test_stars_for_a_header_and_the_secret_are_refused_when_the_url_changes_host(
    client: AsyncTestClient[Any], store: MemoryStore
) -> None:
    legit = {
        "kind": "webhook",
        "url": LEGIT,
        "secret": SECRET,
        "headers": {"authorization": "Bearer TOPSECRET"},
    }
    assert (await client.put(f"{BASE}/s", json={"sink": legit}, headers=ADMIN)).status_code == 201
    moved = {
        **legit,
        "url": "http://attacker.example:9/legit",
        "secret": "***",
        "headers": {"authorization": "***"},
    }
    refused = await client.put(f"{BASE}/s", json={"sink": moved}, headers=ADMIN)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["errors"] == [
        {
            "key": "sink.secret",
            "message": f'"***" stands for the stored secret, which {KEPT_ELSEWHERE}: '
            "give the secret itself",
        },
        {
            "key": "sink.headers.authorization",
            "message": '"***" stands for the stored value of header authorization, which '
            f"{KEPT_ELSEWHERE}: give its value itself",
        },
    ]
    assert await _sink(store, "s") == {**legit, "timeout_s": 15}
    assert [a[0] for a in await _actions(client)] == ["create"]


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:9/legit",  # another scheme
        "http://127.0.0.1:10/legit",  # another port
        "http://localhost:9/legit",  # another host name
        "http://u@127.0.0.2:9/legit",
    ],
)
async def test_any_other_origin_refuses_the_stars_and_a_secret_left_out(
    client: AsyncTestClient[Any], store: MemoryStore, url: str
) -> None:
    legit = {"kind": "webhook", "url": LEGIT, "secret": SECRET, "headers": {"x-k": "v1"}}
    assert (await client.put(f"{BASE}/s", json={"sink": legit}, headers=ADMIN)).status_code == 201
    header = {"kind": "webhook", "url": url, "secret": SECRET, "headers": {"X-K": "***"}}
    refused = await client.put(f"{BASE}/s", json={"sink": header}, headers=ADMIN)
    assert refused.status_code == 422, refused.text
    assert [e["key"] for e in refused.json()["errors"]] == ["sink.headers.X-K"]
    left_out = {"kind": "webhook", "url": url}
    refused = await client.put(f"{BASE}/s", json={"sink": left_out}, headers=ADMIN)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [
        {
            "key": "sink.secret",
            "message": f"an update without a secret keeps the stored one, which {KEPT_ELSEWHERE}: "
            "give the secret itself",
        }
    ]
    rotation = {"kind": "webhook", "url": url, "secret": [OLD_SECRET, "***"]}
    refused = await client.put(f"{BASE}/s", json={"sink": rotation}, headers=ADMIN)
    assert refused.status_code == 422, refused.text
    assert [e["key"] for e in refused.json()["errors"]] == ["sink.secret[1]"]
    assert (await _sink(store, "s"))["url"] == LEGIT
    # Given the values themselves, the move is taken.
    given = {**header, "headers": {"X-K": "v2"}}
    assert (await client.put(f"{BASE}/s", json={"sink": given}, headers=ADMIN)).status_code == 200
    assert await _sink(store, "s") == {**given, "timeout_s": 15}


async def test_the_same_origin_keeps_the_stars_whatever_the_path_and_default_port(
    client: AsyncTestClient[Any], store: MemoryStore
) -> None:
    first = {
        "kind": "webhook",
        "url": "https://Hooks.Example/a/{entity_key}",
        "secret": SECRET,
        "headers": {"authorization": "Bearer TOPSECRET"},
    }
    assert (await client.put(f"{BASE}/s", json={"sink": first}, headers=ADMIN)).status_code == 201
    moved = {
        "kind": "webhook",
        "url": "HTTPS://hooks.example:443/b?x=1",
        "headers": {"Authorization": "***"},
    }
    kept = await client.put(f"{BASE}/s", json={"sink": moved}, headers=ADMIN)
    assert kept.status_code == 200, kept.text
    assert await _sink(store, "s") == {
        **moved,
        "secret": SECRET,
        "headers": {"Authorization": "Bearer TOPSECRET"},
        "timeout_s": 15,
    }


async def test_a_url_password_stays_kept_only_with_the_very_url(
    client: AsyncTestClient[Any], store: MemoryStore
) -> None:
    def pubsub(url: str) -> dict[str, Any]:
        return {"sink": {"kind": "redis-pubsub", "url": url, "channel": "c"}}

    assert (
        await client.put(f"{BASE}/c", json=pubsub("redis://u:pw@h/0"), headers=ADMIN)
    ).status_code == 201
    for url in ("redis://u:***@h:6380/0", "rediss://u:***@h/0", "redis://u:***@h/1"):
        refused = await client.put(f"{BASE}/c", json=pubsub(url), headers=ADMIN)
        assert refused.status_code == 422, (url, refused.text)
        assert [e["key"] for e in refused.json()["errors"]] == ["sink.url"]
    assert (await _sink(store, "c"))["url"] == "redis://u:pw@h/0"


# -- 3. secret references over the API ------------------------------------------------------------


@pytest.mark.parametrize(
    ("sink", "key", "reference"),
    [
        (
            {"kind": "webhook", "url": LEGIT, "secret": {"file": "/etc/eventstore/log.key"}},
            "sink.secret",
            '{"file": "/etc/eventstore/log.key"}',
        ),
        (
            {"kind": "webhook", "url": LEGIT, "secret": [SECRET, {"env": "EVENTSTORE_URI"}]},
            "sink.secret[1]",
            '{"env": "EVENTSTORE_URI"}',
        ),
        (
            {
                "kind": "webhook",
                "url": LEGIT,
                "secret": SECRET,
                "headers": {"x-leak": {"env": "EVENTSTORE_URI"}},
            },
            "sink.headers.x-leak",
            '{"env": "EVENTSTORE_URI"}',
        ),
        (
            {"kind": "redis-pubsub", "url": {"env": "EVENTSTORE_URI"}, "channel": "c"},
            "sink.url",
            '{"env": "EVENTSTORE_URI"}',
        ),
    ],
)
async def test_a_new_secret_reference_over_the_api_is_422_naming_it_and_saying_what_to_do(
    client: AsyncTestClient[Any],
    store: MemoryStore,
    sink: dict[str, Any],
    key: str,
    reference: str,
) -> None:
    refused = await client.put(f"{BASE}/s", json={"sink": sink}, headers=ADMIN)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["errors"] == [{"key": key, "message": f"{reference}: {REFERENCES}"}]
    assert await store.subscriptions.get("s") is None
    assert await _actions(client) == []


async def test_a_reference_already_stored_is_kept_only_at_its_place_and_origin(
    client: AsyncTestClient[Any], store: MemoryStore
) -> None:
    # Defined by the operator (the CLI and the SUBSCRIPTIONS file write to the store).
    sink = {
        "kind": "webhook",
        "url": LEGIT,
        "secret": {"env": "HOOK_SECRET"},
        "headers": {"x-token": {"file": "/run/secrets/token"}},
    }
    await _admin(store).apply("s", {"sink": sink}, actor="ops")
    shown = (await client.get(f"{BASE}/s", headers=ADMIN)).json()
    assert shown["sink"]["secret"] == {"env": "HOOK_SECRET"}  # references shown as written
    # The subscription sent back as shown (and with a rotation keeping the reference): taken.
    body = {"sink": shown["sink"], "lanes": 2}
    assert (await client.put(f"{BASE}/s", json=body, headers=ADMIN)).status_code == 200
    rotation = {**shown["sink"], "secret": [SECRET, {"env": "HOOK_SECRET"}]}
    taken = await client.put(f"{BASE}/s", json={"sink": rotation}, headers=ADMIN)
    assert taken.status_code == 200, taken.text
    assert (await _sink(store, "s"))["secret"] == [SECRET, {"env": "HOOK_SECRET"}]
    # Another variable, the same file under another header, or the same ones elsewhere: refused.
    other = {**rotation, "secret": [SECRET, {"env": "EVENTSTORE_URI"}]}
    refused = await client.put(f"{BASE}/s", json={"sink": other}, headers=ADMIN)
    assert refused.status_code == 422, refused.text
    assert [e["key"] for e in refused.json()["errors"]] == ["sink.secret[1]"]
    renamed = {**rotation, "headers": {"authorization": {"file": "/run/secrets/token"}}}
    refused = await client.put(f"{BASE}/s", json={"sink": renamed}, headers=ADMIN)
    assert refused.status_code == 422, refused.text
    assert [e["key"] for e in refused.json()["errors"]] == ["sink.headers.authorization"]
    elsewhere = {**rotation, "url": "http://attacker.example/collect"}
    refused = await client.put(f"{BASE}/s", json={"sink": elsewhere}, headers=ADMIN)
    assert refused.status_code == 422, refused.text
    assert [e["key"] for e in refused.json()["errors"]] == [
        "sink.secret[1]",
        "sink.headers.x-token",
    ]
    assert await _sink(store, "s") == {**rotation, "timeout_s": 15}


async def test_the_operator_may_allow_references_over_the_api(
    permissive: AsyncTestClient[Any], store: MemoryStore
) -> None:
    sink = {
        "kind": "webhook",
        "url": LEGIT,
        "secret": {"env": "HOOK_SECRET"},
        "headers": {"x-token": {"file": "/run/secrets/token"}},
    }
    created = await permissive.put(f"{BASE}/s", json={"sink": sink}, headers=ADMIN)
    assert created.status_code == 201, created.text
    assert await _sink(store, "s") == {**sink, "timeout_s": 15}


async def test_the_cli_path_still_takes_references(store: MemoryStore) -> None:
    """`eventstore subscriptions add` and the SUBSCRIPTIONS file apply through the admin
    operations directly: a reference is the operator's own."""
    sink = {"kind": "redis-pubsub", "url": {"env": "REDIS_URL"}, "channel": "c"}
    done = await _admin(store).apply("s", {"sink": sink}, actor="ops")
    assert done.created
    assert await _sink(store, "s") == sink


def test_the_setting_is_a_boolean_read_from_its_variable_default_false() -> None:
    assert load({}).api_secret_references is False
    assert load({"EVENTSTORE_API_SECRET_REFERENCES": "true"}).api_secret_references is True
    assert load({"EVENTSTORE_API_SECRET_REFERENCES": " FALSE "}).api_secret_references is False
    with pytest.raises(SettingsError) as raised:
        load({"EVENTSTORE_API_SECRET_REFERENCES": "yes"})
    assert str(raised.value) == "EVENTSTORE_API_SECRET_REFERENCES takes true or false, got 'yes'"
    with pytest.raises(SettingsError) as raised:
        load({"EVENTSTORE_API_SECRET_REFERENCES": "  "})
    assert str(raised.value) == "EVENTSTORE_API_SECRET_REFERENCES must not be empty"
    assert unknown_variables({"EVENTSTORE_API_SECRET_REFERENCES": "true"}) == []


# -- 4. one header, one name ----------------------------------------------------------------------


async def test_two_header_names_differing_only_in_case_are_422_naming_the_headers(
    client: AsyncTestClient[Any], store: MemoryStore
) -> None:
    sink = {
        "kind": "webhook",
        "url": LEGIT,
        "secret": SECRET,
        "headers": {"x-a": "lower", "X-A": "upper"},
    }
    refused = await client.put(f"{BASE}/s", json={"sink": sink}, headers=ADMIN)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [
        {
            "key": "sink.headers",
            "message": "'x-a' and 'X-A' name the same header (HTTP header names are "
            "case-insensitive, RFC 9110 5.1): give it once",
        }
    ]
    assert await store.subscriptions.get("s") is None
