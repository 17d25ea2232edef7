"""The erasure and subscription routes declare every status they answer, with its body.

`POST /v1/admin/erasures` answered 200 (`already_erased`) and 409 (a bare key naming two
entities, `$stream`, events of hash scheme 1) without declaring them; every route that
reads a body answers 413 for one over the server's limit. Each answer met here is held
to the document: its status is declared, and its body validates against the schema
declared for it. A skip of a parked event names the subscription it did not find as
every other action does.
"""

from __future__ import annotations

import json
from typing import Any, Final

import jsonschema_rs
from litestar.testing import AsyncTestClient

from api.problems import MAX_BODY
from tests.api.conftest import ADMIN_KEY, AuditLog
from tests.integration.ingest_helpers import ingester
from tests.realsinks import SECRET

ADMIN: Final = {"authorization": f"Bearer {ADMIN_KEY}", "Eventstore-Actor": "dpo@example.org"}
ERASURES: Final = "/v1/admin/erasures"
BODY: Final = {"stream": "orders", "entity_key": "ORD-X", "reason": "GDPR art. 17 request #12"}
SUBS: Final = "/v1/admin/subscriptions"
HOOK: Final = {"kind": "webhook", "url": "https://example.test/hooks", "secret": SECRET}
# (method, path in the document, path requested) of every route here that reads a body.
BODY_ROUTES: Final = [
    ("post", ERASURES, ERASURES),
    ("put", SUBS + "/{name}", SUBS + "/s"),
    ("post", SUBS + "/{name}/pause", SUBS + "/s/pause"),
    ("post", SUBS + "/{name}/resume", SUBS + "/s/resume"),
    ("post", SUBS + "/{name}/reset", SUBS + "/s/reset"),
    ("post", SUBS + "/{name}/parked/replay", SUBS + "/s/parked/replay"),
    ("post", SUBS + "/{name}/parked/{seq}/skip", SUBS + "/s/parked/1/skip"),
    (
        "post",
        "/v1/admin/projections/{name}/rebuild",
        "/v1/admin/projections/order_summary/rebuild",
    ),
]


async def _document(client: AsyncTestClient[Any]) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = json.loads(response.text)
    return doc


def _held_to_the_document(
    doc: dict[str, Any], method: str, path: str, response: Any, media_type: str
) -> None:
    """`response`'s status is declared on the operation, with its media type and a schema
    its body validates against."""
    declared = doc["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in declared, (method, path, status, sorted(declared))
    assert response.headers["content-type"] == media_type, response.headers["content-type"]
    schema = declared[status]["content"][media_type]["schema"]
    validator = jsonschema_rs.validator_for({**schema, "components": doc["components"]})
    body = response.json()
    assert validator.is_valid(body), list(validator.iter_errors(body))


async def test_an_erasure_declares_its_200_and_409_with_their_bodies(
    app_log: tuple[AsyncTestClient[Any], AuditLog],
) -> None:
    client, _ = app_log
    doc = await _document(client)
    responses = doc["paths"][ERASURES]["post"]["responses"]
    assert {"200", "202", "400", "401", "403", "404", "409", "413", "503"} <= set(responses)
    created = {"$ref": "#/components/schemas/ErasureCreated"}
    assert responses["200"]["content"] == {"application/json": {"schema": created}}
    assert responses["202"]["content"] == {"application/json": {"schema": created}}
    assert "already_erased" in responses["200"]["description"]
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for status in ("409", "413"):
        assert responses[status]["content"] == problem, status
    said = responses["409"]["description"]
    assert "$stream" in said and "typed_keys" in said and "hash scheme 1" in said
    assert set(doc["components"]["schemas"]["ErasureCreated"]["properties"]) == {
        "request",
        "already_erased",
        "already_queued",
        "detail",
    }


async def test_every_answer_of_an_erasure_is_declared_with_its_body(
    app_log: tuple[AsyncTestClient[Any], AuditLog],
) -> None:
    client, log = app_log
    doc = await _document(client)

    def held(response: Any, media_type: str = "application/problem+json") -> None:
        _held_to_the_document(doc, "post", ERASURES, response, media_type)

    ambiguous = await client.post(ERASURES, json={**BODY, "entity_key": "42"}, headers=ADMIN)
    assert ambiguous.status_code == 409, ambiguous.text
    assert sorted(ambiguous.json()["typed_keys"]) == ["int:42", "str:42"]
    held(ambiguous)
    stream = await client.post(ERASURES, json={**BODY, "entity_key": "$stream"}, headers=ADMIN)
    assert stream.status_code == 409 and "not erasable" in stream.json()["detail"]
    held(stream)
    too_large = await client.post(ERASURES, content=b" " * (MAX_BODY + 1), headers=ADMIN)
    assert too_large.status_code == 413, too_large.text
    held(too_large)
    queued = await client.post(ERASURES, json=BODY, headers=ADMIN)
    assert queued.status_code == 202, queued.text
    held(queued, "application/json")
    again = await client.post(ERASURES, json=BODY, headers=ADMIN)
    assert again.status_code == 202 and again.json()["already_queued"] is True
    held(again, "application/json")
    await ingester(log.store, log.feed, log.clock).run(until_idle=True)  # carried out
    erased = await client.post(ERASURES, json=BODY, headers=ADMIN)
    assert erased.status_code == 200, erased.text
    assert erased.json()["already_erased"] is True
    assert erased.json()["request"] == queued.json()["request"]
    held(erased, "application/json")


async def test_every_route_that_reads_a_body_declares_and_answers_413(
    app_log: tuple[AsyncTestClient[Any], AuditLog],
) -> None:
    client, _ = app_log
    doc = await _document(client)
    assert (await client.put(f"{SUBS}/s", json={"sink": HOOK}, headers=ADMIN)).status_code == 201
    for method, path, requested in BODY_ROUTES:
        response = await client.request(
            method.upper(), requested, content=b" " * (MAX_BODY + 1), headers=ADMIN
        )
        assert response.status_code == 413, (path, response.text)
        assert response.json()["type"] == "https://eventstore.dev/problems/request-entity-too-large"
        assert response.json()["title"] == "Content Too Large"  # RFC 9110's name
        assert response.json()["detail"] == (
            "the request body is larger than the server takes (64 KiB, 65,536 bytes)"
        )
        _held_to_the_document(doc, method, path, response, "application/problem+json")


async def test_a_skip_names_the_subscription_it_did_not_find_as_every_action_does(
    app_log: tuple[AsyncTestClient[Any], AuditLog],
) -> None:
    client, _ = app_log
    doc = await _document(client)
    missing = "no subscription named 'nosuch'"
    for method, path, requested in (
        ("post", SUBS + "/{name}/pause", SUBS + "/nosuch/pause"),
        ("post", SUBS + "/{name}/parked/replay", SUBS + "/nosuch/parked/replay"),
        ("post", SUBS + "/{name}/parked/{seq}/skip", SUBS + "/nosuch/parked/5/skip"),
    ):
        response = await client.request(method.upper(), requested, headers=ADMIN)
        assert response.status_code == 404, (requested, response.text)
        problem = response.json()
        assert problem["type"] == "https://eventstore.dev/problems/not-found"
        assert problem["detail"] == missing, requested
        _held_to_the_document(doc, method, path, response, "application/problem+json")
    # A subscription that exists, without that parked event: said so, naming both.
    assert (await client.put(f"{SUBS}/s", json={"sink": HOOK}, headers=ADMIN)).status_code == 201
    none = await client.post(f"{SUBS}/s/parked/5/skip", headers=ADMIN)
    assert none.status_code == 404
    assert none.json()["detail"] == "subscription 's' has no parked event at seq 5"
