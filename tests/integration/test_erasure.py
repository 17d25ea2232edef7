"""Erasure end to end through the memory feed: payloads gone, every hash, chain and root intact."""

from __future__ import annotations

import msgspec
import pytest

from eventstore.chain import LogVerifier
from eventstore.clock import FakeClock
from eventstore.erasure import ErasureRefused, request_erasure
from eventstore.history import AmbiguousKey, History, UnknownEntity
from eventstore.merkle import leaf_hash, root_of
from eventstore.model import COMMIT_SCHEME, ERASED, PAYLOAD_SCHEME, Event
from eventstore.ports import Store
from eventstore.settings import Settings
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.verification import verify_entity, verify_log, verify_stream
from tests.integration.ingest_helpers import all_events, assert_log_intact, ingester


def roots(events: list[Event]) -> list[bytes]:
    """The Merkle root at every tree size: equal roots mean every proof and checkpoint still holds."""
    leaves = [leaf_hash(bytes.fromhex(e.hash)) for e in events]
    return [root_of(leaves[:n]) for n in range(1, len(leaves) + 1)]


async def captured(store: Store, clock: FakeClock) -> MemoryChangeFeed:
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    await orders.insert_one({"_id": "A", "email": "ann@example.org", "updatedBy": "alice"})
    await orders.insert_one({"_id": "B", "email": "bob@example.org", "updatedBy": "bob"})
    await ingester(store, feed, clock).run(until_idle=True)
    await orders.update_one({"_id": "A"}, {"$set": {"email": "ann@new.example"}})
    await ingester(store, feed, clock).run(until_idle=True)
    return feed


async def erase(store: Store, key: str, clock: FakeClock) -> str:
    history = History.from_settings(store, Settings(uri="memory://", source="simulator"))
    outcome = await request_erasure(
        store,
        history,
        stream="orders",
        key=key,
        reason="GDPR art. 17",
        actor="dpo",
        now=clock.now(),
    )
    assert not outcome.already_erased
    return outcome.request.id


async def test_erasure_removes_payload_and_salt_and_every_hash_still_verifies(
    store: Store, clock: FakeClock
) -> None:
    feed = await captured(store, clock)
    before = await all_events(store)
    assert all(e.hash_scheme == COMMIT_SCHEME and e.salt and e.commit for e in before)
    request_id = await erase(store, "A", clock)
    await ingester(store, feed, clock).run(until_idle=True)

    after = await assert_log_intact(store)
    erased = after[-1]
    assert erased.type == ERASED and erased.entity_key == "$stream"
    assert erased.document == {
        "entity_key": "A",
        "events_erased": 2,
        "reason": "GDPR art. 17",
        "actor": "dpo",
        "request": request_id,
    }
    a_events = [e for e in after if e.entity_key == "A"]
    assert [(e.document, e.changes, e.before, e.salt, e.erased_by) for e in a_events] == [
        (None, None, None, None, erased.seq)
    ] * 2
    assert "ann@" not in repr(after)
    # Hashes untouched, so the chains, the tree at every size, every old checkpoint and proof hold.
    assert [(e.hash, e.log_hash, e.commit) for e in after[:-1]] == [
        (e.hash, e.log_hash, e.commit) for e in before
    ]
    assert roots(after)[: len(before)] == roots(before)
    # B is untouched.
    b_docs = [e.document for e in after if e.entity_key == "B"]
    assert b_docs[0] is not None and b_docs[0]["email"] == "bob@example.org"

    log_verdict = await verify_log(store.events, None)
    assert log_verdict.valid and log_verdict.events_erased == 2
    entity = await verify_entity(store.events, "orders", "A")
    assert entity is not None and entity.valid
    assert [(x.version, x.erased_by) for x in entity.erased] == [(1, erased.seq), (2, erased.seq)]
    stream = await verify_stream(store.events, "orders")
    assert stream.valid
    done = await store.erasures.get(request_id)
    assert done is not None
    assert (done.state, done.seq, done.events_erased) == ("done", erased.seq, 2)


async def test_a_repeated_request_does_nothing_new(store: Store, clock: FakeClock) -> None:
    feed = await captured(store, clock)
    first = await erase(store, "A", clock)
    history = History.from_settings(store, Settings(uri="memory://", source="simulator"))
    queued = await request_erasure(
        store, history, stream="orders", key="A", reason="again", actor="dpo", now=clock.now()
    )
    assert queued.already_queued and queued.request.id == first
    await ingester(store, feed, clock).run(until_idle=True)
    count = len(await all_events(store))
    again = await request_erasure(
        store, history, stream="orders", key="A", reason="again", actor="dpo", now=clock.now()
    )
    assert again.already_erased and again.request.id == first
    await ingester(store, feed, clock).run(until_idle=True)
    assert len(await all_events(store)) == count


async def test_unknown_and_ambiguous_keys_are_refused(store: Store, clock: FakeClock) -> None:
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    await orders.insert_one({"_id": 7, "email": "x"})
    await orders.insert_one({"_id": "7", "email": "y"})
    await ingester(store, feed, clock).run(until_idle=True)
    history = History.from_settings(store, Settings(uri="memory://", source="simulator"))
    with pytest.raises(UnknownEntity):
        await request_erasure(
            store, history, stream="orders", key="nope", reason="r", actor="a", now=clock.now()
        )
    with pytest.raises(AmbiguousKey):
        await request_erasure(
            store, history, stream="orders", key="7", reason="r", actor="a", now=clock.now()
        )


async def test_old_scheme_events_refuse_erasure(store: Store, clock: FakeClock) -> None:
    await captured(store, clock)
    events = await all_events(store)
    # A log written before erasure existed: same events sealed under PAYLOAD_SCHEME.
    from eventstore import chain
    from eventstore.memory.store import MemoryStore

    old_store = MemoryStore()
    prev: dict[str, str] = {}
    log_hash = chain.GENESIS_HASH
    old: list[Event] = []
    for e in events:
        plain = msgspec.structs.replace(e, hash_scheme=PAYLOAD_SCHEME, salt=None, commit=None)
        sealed = chain.seal(
            plain, prev_hash=prev.get(e.entity_key, chain.GENESIS_HASH), prev_log_hash=log_hash
        )
        prev[e.entity_key], log_hash = sealed.hash, sealed.log_hash
        old.append(sealed)
    await old_store.events.append(old)
    history = History.from_settings(old_store, Settings(uri="memory://", source="simulator"))
    with pytest.raises(ErasureRefused, match="hash scheme 1"):
        await request_erasure(
            old_store, history, stream="orders", key="A", reason="r", actor="a", now=clock.now()
        )
    assert (await verify_log(old_store.events, None)).valid
    assert await old_store.erasures.queued() == []


async def test_a_payload_deleted_without_erasure_is_tampering(
    store: Store, clock: FakeClock
) -> None:
    await captured(store, clock)
    events = await all_events(store)
    victim = events[0]
    # What an attacker (or a careless operator) does: drop the payload and salt, no erased record.
    stripped = msgspec.structs.replace(victim, document=None, salt=None)
    verifier = LogVerifier()
    verifier.feed(stripped)
    for e in events[1:]:
        verifier.feed(e)
    verdict = verifier.verdict()
    assert not verdict.valid and verdict.first_invalid_seq == victim.seq
    assert verdict.reason == f"payload of seq {victim.seq} is missing without an erased record"
    # Claiming an erasure that no `erased` event records is tampering too.
    claimed = msgspec.structs.replace(stripped, erased_by=len(events) + 5)
    verifier = LogVerifier()
    for e in [claimed, *events[1:]]:
        verifier.feed(e)
    verdict = verifier.verdict()
    assert not verdict.valid and verdict.first_invalid_seq == victim.seq
    assert verdict.reason is not None and "without an erased record" in verdict.reason
    # An altered payload that keeps its salt no longer matches its commit.
    altered = msgspec.structs.replace(victim, document={**(victim.document or {}), "email": "x"})
    verifier = LogVerifier()
    verifier.feed(altered)
    verdict = verifier.verdict()
    assert verdict.reason == (
        f"hash of seq {victim.seq} does not match its content (payload differs from its commit)"
    )
