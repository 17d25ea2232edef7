"""The `erased` record names its entity alone: `typed_key` beside `entity_key` (PROPOSED).

Needs eventstore/ingester.py (the document), eventstore/chain.py (`erasure_names`) and
eventstore/verification.py (the reasons): see /tmp/fixB/REPORT.md.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar.testing import AsyncTestClient

from eventstore.chain import erasure_names
from tests.api.conftest import ADMIN_KEY, AuditLog
from tests.integration.ingest_helpers import all_events, ingester

URL: Final = "/v1/admin/erasures"
ADMIN: Final = {"authorization": f"Bearer {ADMIN_KEY}", "Eventstore-Actor": "dpo"}
ASKED: Final = {"stream": "orders", "entity_key": "int:42", "reason": "GDPR art. 17 request #12"}


async def test_the_erased_record_names_int_42_and_only_int_42(
    app_log: tuple[AsyncTestClient[Any], AuditLog],
) -> None:
    client, log = app_log
    r = await client.post(URL, json=ASKED, headers=ADMIN)
    assert r.status_code == 202, r.text
    request = r.json()["request"]
    await ingester(log.store, log.feed, log.clock).run(until_idle=True)
    erased = (await all_events(log.store))[-1]
    assert erased.document == {
        "entity_key": "42",
        "typed_key": "int:42",
        "events_erased": 1,
        "reason": "GDPR art. 17 request #12",
        "actor": "dpo",
        "request": request,
    }
    r = await client.get("/v1/streams/orders/entities/int:42/verify")
    assert (r.json()["valid"], [e["erased_by"] for e in r.json()["erased"]]) == (
        True,
        [erased.seq],
    )
    # The string "42"'s payload removed in the log, claiming int:42's record: tampering,
    # said with the key that names the string alone.
    removed = await log.store.events.erase_payloads("orders", "42", erased_by=erased.seq)
    assert removed == 1
    r = await client.get("/v1/streams/orders/entities/str:42/verify")
    assert r.json()["valid"] is False
    assert r.json()["reason"] == (
        "payload of version 1 is missing without an erased record "
        f"(seq {erased.seq} does not record erasing orders/str:42)"
    )
    r = await client.get("/v1/verify")
    assert r.json()["valid"] is False


async def test_a_record_written_before_typed_key_still_names_its_entity(
    app_log: tuple[AsyncTestClient[Any], AuditLog],
) -> None:
    """An `erased` document without `typed_key` is matched by `entity_key`, as before."""
    client, log = app_log
    await client.post(URL, json={**ASKED, "entity_key": "ORD-X"}, headers=ADMIN)
    await ingester(log.store, log.feed, log.clock).run(until_idle=True)
    erased = (await all_events(log.store))[-1]
    assert erased.document is not None
    old = msgspec.structs.replace(
        erased, document={k: v for k, v in erased.document.items() if k != "typed_key"}
    )
    assert erasure_names(old, "orders", "ORD-X", entity_id="ORD-X") is True
    assert erasure_names(old, "orders", "ORD-Y", entity_id="ORD-Y") is False
    assert erasure_names(erased, "orders", "ORD-X", entity_id="ORD-X") is True
    assert erasure_names(erased, "orders", "42", entity_id=42) is False
