"""Admin erasure requests over HTTP: status codes, the request's state, erasure end to end."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.api.conftest import ADMIN_KEY, READ_KEY, AppFactory, build_log
from tests.integration.ingest_helpers import all_events, ingester

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}", "Eventstore-Actor": "dpo@example.org"}
URL = "/v1/admin/erasures"
BODY = {"stream": "orders", "entity_key": "ORD-X", "reason": "GDPR art. 17 request #12"}


async def test_an_erasure_is_accepted_carried_out_by_capture_and_reported(
    make_app: AppFactory,
) -> None:
    log = await build_log("memory", orders=3, changes=6)
    try:
        async with AsyncTestClient(make_app(log.store, admin_key=ADMIN_KEY)) as client:
            # Read before the erasure: the app caches renderings and folded states.
            entity = "/v1/streams/orders/entities/ORD-X"
            for url in (f"{entity}/history", f"{entity}/state", f"{entity}/state?version=2"):
                r = await client.get(url)
                assert r.status_code == 200 and "xavier" in r.text.lower(), r.text
            r = await client.post(URL, json=BODY, headers=ADMIN)
            assert r.status_code == 202, r.text
            assert set(r.json()) == {"request"}
            request = r.json()["request"]
            r = await client.get(f"/v1/admin/requests/{request}", headers=ADMIN)
            assert r.status_code == 200
            assert (r.json()["state"], r.json()["seq"], r.json()["events_erased"]) == (
                "queued",
                None,
                None,
            )
            # The capturing instance carries it out between batches.
            await ingester(log.store, log.feed, log.clock).run(until_idle=True)
            r = await client.get(f"/v1/admin/requests/{request}", headers=ADMIN)
            events = await all_events(log.store)
            erased = events[-1]
            assert erased.type == "erased"
            assert (r.json()["state"], r.json()["seq"], r.json()["events_erased"]) == (
                "done",
                erased.seq,
                4,
            )
            assert erased.document is not None and erased.document["actor"] == "dpo@example.org"
            # Again: nothing new, and it says so.
            r = await client.post(URL, json=BODY, headers=ADMIN)
            assert r.status_code == 200, r.text
            assert r.json()["already_erased"] is True and r.json()["request"] == request
            # verify: still valid, the erased events reported as erased with the erased seq.
            r = await client.get("/v1/streams/orders/entities/ORD-X/verify")
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["valid"] is True
            assert [e["erased_by"] for e in body["erased"]] == [erased.seq] * 4
            r = await client.get("/v1/verify")
            assert r.json()["valid"] is True and r.json()["events_erased"] == 4
            # state and history of an erased version: erased, no document, no salt
            # (nothing served from what the app cached before).
            for query in ("", "?version=1", "?version=4"):
                r = await client.get(f"{entity}/state{query}")
                assert r.status_code == 200, r.text
                state = r.json()
                assert (state["erased"], state["document"], state["exists"]) == (True, None, True)
            r = await client.get(f"{entity}/history")
            assert r.status_code == 200, r.text
            history = r.json()["events"]
            assert [
                (e["version"], e["erased"], e["erased_by"], e["document"], e["changes"], e["salt"])
                for e in history
            ] == [(v, True, erased.seq, None, None, None) for v in (1, 2, 3, 4)]
            assert all(e["hash_scheme"] == 2 and len(e["commit"]) == 64 for e in history)
            assert all(e["diff"] == [] for e in history)
            assert "xavier" not in r.text.lower()
            # What changed between erased versions cannot be told: said, not "no changes".
            r = await client.get(f"{entity}/diff", params={"from_version": 1, "to_version": 3})
            assert r.status_code == 200, r.text
            assert r.json() == {"from_version": 1, "to_version": 3, "changes": [], "erased": True}
            r = await client.get(
                "/v1/streams/orders/entities/a%2Fb/diff?from_version=1&to_version=1"
            )
            assert r.json()["erased"] is False
            # The requester is the record's actor: the audit query by actor finds the erasure.
            r = await client.get("/v1/events", params={"actor": "dpo@example.org"})
            assert [(e["seq"], e["type"]) for e in r.json()["events"]] == [(erased.seq, "erased")]
            # Another entity keeps its data, salt and commit.
            r = await client.get("/v1/streams/orders/entities/a%2Fb/history")
            [other] = r.json()["events"]
            assert other["erased"] is False and other["document"]["_id"] == "a/b"
            assert other["salt"] is not None and len(other["salt"]) == 64
            # The erased record is a stream event like any other: in the stream's own
            # history, in audit queries and in the live tail consumers follow.
            r = await client.get("/v1/streams/orders/entities/$stream/history")
            record = r.json()["events"][-1]
            assert record["type"] == "erased" and record["document"]["entity_key"] == "ORD-X"
            r = await client.get("/v1/events", params={"type": "erased"})
            assert [e["seq"] for e in r.json()["events"]] == [erased.seq]
            r = await client.get(
                "/v1/events/live", params={"after": erased.seq - 1, "limit": 1, "timeout": 0.05}
            )
            assert r.status_code == 200 and f"id: {erased.seq}" in r.text
            assert "event: erased" in r.text
    finally:
        await log.store.close()


async def test_status_codes(make_app: AppFactory) -> None:
    log = await build_log("memory", orders=3, changes=6)
    try:
        app = make_app(log.store, admin_key=ADMIN_KEY, read_keys=(READ_KEY,))
        async with AsyncTestClient(app) as client:
            cases: list[tuple[dict[str, Any], dict[str, str], int]] = [
                (BODY, {"Eventstore-Actor": "dpo"}, 401),  # no key
                (BODY, {"authorization": f"Bearer {READ_KEY}", "Eventstore-Actor": "dpo"}, 403),
                (BODY, {"authorization": f"Bearer {ADMIN_KEY}"}, 400),  # no actor header
                ({**BODY, "entity_key": "nope"}, ADMIN, 404),
                ({**BODY, "entity_key": "42"}, ADMIN, 409),  # 42 and "42"
                ({**BODY, "entity_key": "$stream"}, ADMIN, 409),
                ({"stream": "orders", "entity_key": "ORD-X"}, ADMIN, 400),  # no reason
                ({**BODY, "extra": 1}, ADMIN, 400),
                ({**BODY, "reason": "   "}, ADMIN, 400),
            ]
            for body, headers, status in cases:
                r = await client.post(URL, json=body, headers=headers)
                assert r.status_code == status, (body, headers, r.text)
                assert r.headers["content-type"].startswith("application/problem+json")
            r = await client.post(URL, content=b"{not json", headers=ADMIN)
            assert r.status_code == 400
            r = await client.get("/v1/admin/requests/nope", headers=ADMIN)
            assert r.status_code == 404
            assert await log.store.erasures.queued() == []
    finally:
        await log.store.close()
