"""The Erasures port and the erasure writes of EventLog and Snapshots, on both adapters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from eventstore.chain import seal
from eventstore.clock import FakeClock
from eventstore.model import CREATED, DELETED, GENESIS_HASH, ErasureRequest, Event
from eventstore.ports import Store
from eventstore.verification import verify_log
from tests.helpers import LogBuilder, fixed_salt
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


def mixed_log() -> list[Event]:
    """Entity A: version 1 under the old scheme, versions 2-4 salted (2 a delete with a
    pre-image), and B's version 1 salted: seq 1-5, both chains linked."""
    b = LogBuilder()
    drafts = [
        b.next("A"),
        b.next("A", DELETED, before={"_id": "A", "email": "a@example.org"}),
        b.next("A", CREATED),
        b.next("A"),
        b.next("B"),
    ]
    out: list[Event] = []
    prev: dict[str, str] = {}
    for n, e in enumerate(drafts):
        out.append(
            seal(
                e,
                prev_hash=prev.get(e.entity_key, GENESIS_HASH),
                prev_log_hash=out[-1].log_hash if out else GENESIS_HASH,
                salt=None if n == 0 else fixed_salt(e.id),
            )
        )
        prev[e.entity_key] = out[-1].hash
    return out


async def test_erase_payloads_empties_only_salted_unerased_events_before_the_record(
    store: Store,
) -> None:
    log = mixed_log()
    await store.events.append(log)
    assert await store.events.erase_payloads("orders", "nobody", erased_by=6) == 0
    # Before seq 3: only version 2 (version 1 has no salt to remove; seq 3 is not before 3).
    assert await store.events.erase_payloads("orders", "A", erased_by=3) == 1
    gone = (await store.events.read(after_seq=1, limit=1))[0]
    assert (gone.seq, gone.erased_by, gone.salt) == (2, 3, None)
    assert (gone.document, gone.changes, gone.before) == (None, None, None)
    assert (gone.hash, gone.commit) == (log[1].hash, log[1].commit)  # the chains still hold
    # A later erasure (seq 6) passes the erased version 2 and takes versions 3 and 4.
    assert await store.events.erase_payloads("orders", "A", erased_by=6) == 2
    # An attempt stamped 6 that was never recorded is restamped; what seq 3 erased is not.
    assert await store.events.erase_payloads("orders", "A", erased_by=8, restamp=6) == 2
    entity = await store.events.read_entity("orders", "A")
    assert [(e.version, e.erased_by, e.salt is None) for e in entity] == [
        (1, None, True),
        (2, 3, True),
        (3, 8, True),
        (4, 8, True),
    ]
    assert entity[0].document == log[0].document  # the old scheme's payload is kept
    by_seq = await store.events.read(after_seq=0, limit=10)
    assert [e.erased_by for e in by_seq] == [None, 3, 8, 8, None]
    assert by_seq[4] == log[4]  # B untouched
    assert await store.events.existing_ids([e.id for e in log]) == {e.id for e in log}
    # Looked up by id, an event reads as it is stored now: erased, never its old payload.
    assert await store.events.events_by_id([e.id for e in log]) == {e.id: e for e in by_seq}
