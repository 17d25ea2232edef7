"""The admin operations that read a JSON body document it, and the document and the server agree.

Five operations parse their body themselves (to tell a malformed body, 400, from an
impossible one, 422): a subscription's PUT, reset, replay of parked events, a
rebuild and an erasure. Their OpenAPI request bodies are written by hand
(`api.bodies`), so each is held here to the server: a body the document calls
valid is never refused as malformed (400), and one it calls invalid is refused
(400, or 422 where the document cannot say more). A whole JSON number written as a
double (`2.0`) is an integer to JSON Schema, and to the server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Final

import jsonschema_rs
import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from eventstore.clock import FakeClock
from eventstore.json_input import whole_number
from eventstore.memory.store import MemoryStore
from eventstore.model import MAX_SEQ
from tests.api.conftest import ADMIN_KEY, settings
from tests.helpers import LogBuilder
from tests.realsinks import SECRET

ADMIN: Final = {"authorization": f"Bearer {ADMIN_KEY}", "eventstore-actor": "ann"}
HOOK: Final = {
    "kind": "webhook",
    "url": "https://example.test/hooks/{entity_key}",
    "secret": SECRET,
}
SUBS: Final = "/v1/admin/subscriptions"
# (method, path in the document, path requested, whether the body is required)
OPERATIONS: Final = [
    ("put", SUBS + "/{name}", SUBS + "/orders", True),
    ("post", SUBS + "/{name}/reset", SUBS + "/orders/reset", True),
    ("post", SUBS + "/{name}/parked/replay", SUBS + "/orders/parked/replay", False),
    ("post", "/v1/admin/projections/{name}/rebuild", None, False),
    ("post", "/v1/admin/erasures", "/v1/admin/erasures", True),
]


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Any]]:
    store = MemoryStore()
    log = LogBuilder()
    await store.events.append([log.next(k) for k in ("a", "b", "a", "c")])
    # bodies with `{"env"}`/`{"file"}` references among the documented ones: allowed here
    app = create_app(
        settings(admin_key=ADMIN_KEY, api_secret_references=True), store=store, clock=FakeClock()
    )
    async with AsyncTestClient(app=app) as c:
        yield c


_DOCUMENT: dict[str, Any] = {}


async def _document(c: AsyncTestClient[Any]) -> dict[str, Any]:
    """The OpenAPI document (the same for every app of these settings: read once)."""
    if not _DOCUMENT:
        _DOCUMENT.update(json.loads((await c.get("/schema/openapi.json")).text))
    return _DOCUMENT


def _body_schema(doc: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    body = doc["paths"][path][method]["requestBody"]
    return dict(body["content"]["application/json"]["schema"])


async def test_each_operation_that_reads_a_body_documents_it(
    client: AsyncTestClient[Any],
) -> None:
    doc = await _document(client)
    for method, path, _, required in OPERATIONS:
        body = doc["paths"][path][method]["requestBody"]
        assert body["required"] is required, path
        schema = body["content"]["application/json"]["schema"]
        assert schema["type"] == "object" and schema["additionalProperties"] is False, path
    sub = _body_schema(doc, "put", SUBS + "/{name}")
    assert sub["required"] == ["sink"]
    assert set(sub["properties"]) == {"sink", "filter", "start", "lanes", "retry"}
    kinds = [s["properties"]["kind"]["const"] for s in sub["properties"]["sink"]["oneOf"]]
    assert kinds == ["webhook", "redis-pubsub", "redis-invalidate", "redis-stream"]
    lanes = sub["properties"]["lanes"]
    assert (lanes["minimum"], lanes["maximum"]) == (1, 64)
    workers = _body_schema(doc, "post", "/v1/admin/projections/{name}/rebuild")
    assert workers["properties"]["workers"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 16,
        "default": 1,
    }
    replay = _body_schema(doc, "post", SUBS + "/{name}/parked/replay")
    assert replay["properties"]["up_to_seq"]["oneOf"][0]["maximum"] == MAX_SEQ
    erasure = _body_schema(doc, "post", "/v1/admin/erasures")
    assert erasure["required"] == ["stream", "entity_key", "reason"]
    # A subscription's PUT answers 201 when it creates one: documented beside the 200.
    assert {"200", "201", "400", "422"} <= set(doc["paths"][SUBS + "/{name}"]["put"]["responses"])
    assert "422" in doc["paths"]["/v1/admin/projections/{name}/rebuild"]["post"]["responses"]


# (operation index, body, whether the document holds it valid)
CASES: Final[list[tuple[int, Any, bool]]] = [
    (0, {"sink": HOOK}, True),
    (0, {"sink": HOOK, "lanes": 2.0, "start": {"seq": 3.0}, "filter": None, "retry": None}, True),
    (0, {"sink": {"kind": "redis-stream", "url": "redis://r", "stream": "s", "maxlen": 5.0}}, True),
    (
        0,
        {"sink": {"kind": "redis-stream", "url": "redis://r", "stream": "s", "maxlen": None}},
        True,
    ),
    (0, {"sink": {"kind": "redis-invalidate", "url": "redis://r", "keys": ["k"]}}, True),
    (0, {"sink": {"kind": "redis-pubsub", "url": {"env": "REDIS_URL"}, "channel": "c"}}, True),
    (0, {"sink": HOOK, "filter": {"types": ["updated"], "fields": ["customer.email"]}}, True),
    (0, {"sink": HOOK, "retry": {"delays_s": [1, 2.5], "jitter": 0}}, True),
    (0, {"sink": {**HOOK, "secret": [SECRET, {"env": "OLD_SECRET"}], "timeout_s": 0.5}}, True),
    (0, {"sink": HOOK, "lanes": 2.5}, False),
    (0, {"sink": HOOK, "lanes": True}, False),
    (0, {"sink": HOOK, "lanes": 65}, False),
    (0, {"sink": HOOK, "start": {"seq": 0}}, False),
    (0, {"sink": HOOK, "start": "soon"}, False),
    (0, {"sink": HOOK, "colour": "red"}, False),
    (0, {"sink": {**HOOK, "colour": "red"}}, False),
    (0, {"sink": {"kind": "redis-pubsub", "url": "redis://r"}}, False),
    (0, {"sink": {**HOOK, "timeout_s": 0}}, False),
    (0, {"sink": HOOK, "filter": {"types": ["shipped"]}}, False),
    (0, {"sink": HOOK, "filter": {"fields": ["a..b"]}}, False),
    (0, {"sink": HOOK, "retry": {"delays_s": [-1]}}, False),
    (0, {"lanes": 1}, False),
    (1, {"start": "earliest"}, True),
    (1, {"start": {"seq": 2.0}}, True),
    (1, {"start": {"time": "2026-12-01T10:00:00Z"}}, True),
    (1, {"start": {"seq": 1.5}}, False),
    (1, {}, False),
    (2, {}, True),
    (2, {"up_to_seq": 3}, True),
    (2, {"up_to_seq": 3.0}, True),
    (2, {"up_to_seq": None}, True),
    (2, {"up_to_seq": 0}, False),
    (2, {"up_to_seq": "3"}, False),
    (3, {"workers": 2.0}, True),
    (3, {}, True),
    (3, {"workers": 17}, False),
    (3, {"workers": 1.5}, False),
    (3, {"workers": None}, False),
    (4, {"stream": "orders", "entity_key": "a", "reason": "asked\tby mail"}, True),
    (4, {"stream": "orders", "entity_key": "a", "reason": " \t "}, False),
    (4, {"stream": "orders", "entity_key": "a", "reason": "line\nbreak"}, False),
    (4, {"stream": "orders", "entity_key": "a", "reason": "why", "colour": "red"}, False),
]


@pytest.mark.parametrize(("index", "body", "valid"), CASES)
async def test_the_document_and_the_server_agree_on_each_body(
    client: AsyncTestClient[Any], index: int, body: Any, valid: bool
) -> None:
    method, path, requested, _ = OPERATIONS[index]
    validator = jsonschema_rs.validator_for(_body_schema(await _document(client), method, path))
    assert validator.is_valid(body) is valid, validator.iter_errors(body)
    if index == 1 or index == 2:  # reset and replay need the subscription
        created = await client.put(f"{SUBS}/orders", json={"sink": HOOK}, headers=ADMIN)
        assert created.status_code == 201, created.text
    url = requested or "/v1/admin/projections/order_summary/rebuild"
    response = await client.request(method.upper(), url, json=body, headers=ADMIN)
    if valid:
        # Taken (or refused for what the body names: no such row, a scheme-1 log's 409).
        assert response.status_code in (200, 201, 202, 404, 409), response.text
    else:
        assert response.status_code in (400, 422), response.text
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_whole_numbers_written_as_doubles_are_stored_as_integers(
    client: AsyncTestClient[Any],
) -> None:
    body = {
        "sink": {"kind": "redis-stream", "url": "redis://r", "stream": "s", "maxlen": 1e3},
        "lanes": 1.0,
        "start": {"seq": 2.0},
    }
    created = await client.put(f"{SUBS}/orders", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    shown = created.json()
    assert (shown["lanes"], shown["start"], shown["sink"]["maxlen"]) == (1, {"seq": 2}, 1000)
    assert json.dumps(shown["lanes"]) == "1"  # an int again, not 1.0
    # Past 2^53 a double no longer stands for one integer: refused, not rounded.
    too_big = await client.put(
        f"{SUBS}/orders", json={**body, "start": {"seq": float(2**60)}}, headers=ADMIN
    )
    assert too_big.status_code == 400, too_big.text
    assert too_big.json()["errors"] == [{"key": "start.seq", "message": "expected an integer"}]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3),
        (3.0, 3),
        (-0.0, 0),
        (2.0**53, 2**53),
        (2.0**53 + 2, None),
        (3.5, None),
        (True, None),
        (float("inf"), None),
        (float("nan"), None),
        ("3", None),
        (None, None),
        (10**30, 10**30),  # an int is exact at any size; the callers bound it
    ],
)
def test_whole_number(value: Any, expected: int | None) -> None:
    got = whole_number(value)
    assert got == expected and (got is None or type(got) is int)
