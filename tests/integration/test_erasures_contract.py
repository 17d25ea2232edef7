"""The Erasures port and the erasure writes of EventLog and Snapshots, on both adapters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from eventstore.clock import FakeClock
from eventstore.model import ErasureRequest
from eventstore.ports import Store
from eventstore.verification import verify_log
from tests.integration.ingest_helpers import all_events, ingester
from tests.integration.test_erasure import captured, erase

T = datetime(2026, 11, 26, 14, 3, tzinfo=UTC)


def request(n: int, **kw: object) -> ErasureRequest:
    fields: dict[str, object] = {
        "id": f"r{n}",
        "stream": "orders",
        "entity_id": n,
        "entity_key": str(n),
        "reason": "why",
        "actor": "dpo",
        "requested_at": T + timedelta(seconds=n),
    }
    fields.update(kw)
    return ErasureRequest(**fields)  # type: ignore[arg-type]


async def test_requests_are_kept_queued_in_order_and_done_found_by_entity(store: Store) -> None:
    for n in (3, 1, 2):
        await store.erasures.create(request(n))
    assert [r.id for r in await store.erasures.queued()] == ["r1", "r2", "r3"]
    got = await store.erasures.get("r2")
    assert got == request(2)
    assert await store.erasures.get("nope") is None
    assert await store.erasures.done_for("orders", "2") is None
    done = msgspec.structs.replace(request(2), state="done", seq=40, events_erased=3, finished_at=T)
    await store.erasures.update(done)
    assert [r.id for r in await store.erasures.queued()] == ["r1", "r3"]
    assert await store.erasures.done_for("orders", "2") == done
    later = msgspec.structs.replace(request(4, entity_id=2, entity_key="2"), state="done", seq=90)
    await store.erasures.update(later)
    found = await store.erasures.done_for("orders", "2")
    assert found is not None and found.id == "r4"
    assert await store.erasures.done_for("other", "2") is None


async def test_erase_payloads_is_idempotent_and_restamps_an_unrecorded_attempt(
    store: Store, clock: FakeClock
) -> None:
    feed = await captured(store, clock)
    head = len(await all_events(store))
    # An attempt that stamped A's events with seq head+1 and crashed before appending.
    assert await store.events.erase_payloads("orders", "A", erased_by=head + 1) == 2
    assert await store.events.erase_payloads("orders", "A", erased_by=head + 1) == 0
    assert not (await verify_log(store.events, None)).valid  # no erased record yet
    request_id = await erase(store, "A", clock)
    queued = await store.erasures.get(request_id)
    assert queued is not None
    await store.erasures.update(msgspec.structs.replace(queued, seq=head + 1))
    # Meanwhile capture moved on: seq head+1 is another event now.
    await feed.collection("orders").insert_one({"_id": "C", "email": "c@example.org"})
    await ingester(store, feed, clock).run(until_idle=True)

    events = await all_events(store)
    record = events[-1]
    assert record.type == "erased" and record.seq == head + 2
    assert [e.erased_by for e in events if e.entity_key == "A"] == [record.seq] * 2
    assert record.document is not None and record.document["events_erased"] == 2
    verdict = await verify_log(store.events, None)
    assert verdict.valid and verdict.events_erased == 2
    assert await store.snapshots.purge_entity("orders", "A") == 0


async def test_a_request_without_a_time_is_queued_first_and_only_done_ones_count_as_done(
    store: Store,
) -> None:
    await store.erasures.create(request(2))
    await store.erasures.create(request(1, requested_at=None))  # MongoDB sorts null first
    await store.erasures.create(request(3))
    assert [r.id for r in await store.erasures.queued()] == ["r1", "r2", "r3"]
    refused = msgspec.structs.replace(request(2), state="refused", error="hash scheme 1")
    await store.erasures.update(refused)
    assert await store.erasures.done_for("orders", "2") is None  # refused is not done
    assert [r.id for r in await store.erasures.queued()] == ["r1", "r3"]
    other_key = msgspec.structs.replace(request(3), state="done", seq=7)
    await store.erasures.update(other_key)
    assert await store.erasures.done_for("orders", "2") is None
    assert await store.erasures.done_for("orders", "3") == other_key
