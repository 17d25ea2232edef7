"""An erasure of `int:42` beside the string "42" names its entity alone, and is its own.

The bare key `42` names two entities (the integer and the string): the request's record
says `typed_key` beside `entity_key`, a request for one is never taken for a request
for the other (queued or carried out), and each entity's erasure is reported as its own.
"""

from __future__ import annotations

from typing import Any, Final

from litestar.testing import AsyncTestClient

from tests.api.conftest import ADMIN_KEY, AuditLog
from tests.integration.ingest_helpers import all_events, ingester

URL: Final = "/v1/admin/erasures"
ADMIN: Final = {"authorization": f"Bearer {ADMIN_KEY}", "Eventstore-Actor": "dpo"}


def _asked(key: str) -> dict[str, str]:
    return {"stream": "orders", "entity_key": key, "reason": "GDPR art. 17 request #12"}


async def test_the_request_names_int_42_by_its_typed_key(
    app_log: tuple[AsyncTestClient[Any], AuditLog],
) -> None:
    client, log = app_log
    r = await client.post(URL, json=_asked("int:42"), headers=ADMIN)
    assert r.status_code == 202, r.text
    request = r.json()["request"]
    r = await client.get(f"/v1/admin/requests/{request}", headers=ADMIN)
    assert (r.json()["entity_key"], r.json()["typed_key"], r.json()["state"]) == (
        "42",
        "int:42",
        "queued",
    )
    await ingester(log.store, log.feed, log.clock).run(until_idle=True)
    r = await client.get(f"/v1/admin/requests/{request}", headers=ADMIN)
    assert (r.json()["typed_key"], r.json()["state"], r.json()["events_erased"]) == (
        "int:42",
        "done",
        1,
    )
    # The string "42" and an entity with a plain key.
    r = await client.post(URL, json=_asked("str:42"), headers=ADMIN)
    r = await client.get(f"/v1/admin/requests/{r.json()['request']}", headers=ADMIN)
    assert (r.json()["entity_key"], r.json()["typed_key"]) == ("42", "str:42")
    r = await client.post(URL, json=_asked("ORD-X"), headers=ADMIN)
    r = await client.get(f"/v1/admin/requests/{r.json()['request']}", headers=ADMIN)
    assert (r.json()["entity_key"], r.json()["typed_key"]) == ("ORD-X", "str:ORD-X")


async def test_a_request_for_str_42_is_not_the_one_queued_for_int_42(
    app_log: tuple[AsyncTestClient[Any], AuditLog],
) -> None:
    client, log = app_log
    first = await client.post(URL, json=_asked("int:42"), headers=ADMIN)
    second = await client.post(URL, json=_asked("str:42"), headers=ADMIN)
    assert (first.status_code, second.status_code) == (202, 202), second.text
    assert set(second.json()) == {"request"}  # not `already_queued` with int:42's request
    assert second.json()["request"] != first.json()["request"]
    queued = await log.store.erasures.queued()
    assert [(q.id, q.entity_id) for q in queued] == [
        (first.json()["request"], 42),
        (second.json()["request"], "42"),
    ]
    await ingester(log.store, log.feed, log.clock).run(until_idle=True)
    erased = [e for e in await all_events(log.store) if e.type == "erased"]
    assert [(e.document or {}).get("request") for e in erased] == [
        first.json()["request"],
        second.json()["request"],
    ]
    # Asked again, each answers with the request that erased it, not the newest for `42`.
    for key, answer in (("int:42", first), ("str:42", second)):
        r = await client.post(URL, json=_asked(key), headers=ADMIN)
        assert r.status_code == 200, r.text
        assert (r.json()["already_erased"], r.json()["request"]) == (
            True,
            answer.json()["request"],
        )
    for key, seq in (("int:42", erased[0].seq), ("str:42", erased[1].seq)):
        r = await client.get(f"/v1/streams/orders/entities/{key}/verify")
        assert r.json()["valid"] is True
        assert [e["erased_by"] for e in r.json()["erased"]] == [seq]
