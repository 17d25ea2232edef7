"""Erasure end to end through the memory feed: payloads gone, every hash, chain and root intact."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from eventstore.chain import SALT_BYTES, LogVerifier, seal
from eventstore.checkpointing import Checkpointer
from eventstore.clock import FakeClock
from eventstore.erasure import ErasureOutcome, ErasureRefused, request_erasure
from eventstore.history import AmbiguousKey, History, HistoryError, UnknownEntity
from eventstore.memory.store import MemoryStore
from eventstore.merkle import leaf_hash, root_of, verify_consistency
from eventstore.model import (
    COMMIT_SCHEME,
    ERASED,
    GENESIS_HASH,
    PAYLOAD_SCHEME,
    EntitySnapshot,
    ErasureRequest,
    Event,
)
from eventstore.notes import Signer, Verifier, open_note, parse_checkpoint
from eventstore.ports import Store
from eventstore.proofs import event_proof, verify_proof_file
from eventstore.render import event_json
from eventstore.settings import Settings
from eventstore.sources.memory import MemoryChangeFeed
from eventstore.tree import LogTree, consistency_proof, event_leaf
from eventstore.verification import verify_entity, verify_log, verify_stream
from tests.helpers import LogBuilder, make_event
from tests.integration.ingest_helpers import ROLE, all_events, assert_log_intact, ingester


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
    # What was derived from A: a read-model row and a snapshot.
    rows = [("str:A", {"email": "ann@new.example"}), ("str:B", {"email": "bob@example.org"})]
    await store.read_models.write("rm_order_summary", rows)
    a_last = [e for e in before if e.entity_key == "A"][-1]
    snapshot = EntitySnapshot(
        stream="orders",
        entity_id="A",
        entity_key="A",
        version=a_last.version,
        occurred_at=a_last.occurred_at,
        exists=True,
        document={"_id": "A", "email": "ann@new.example"},
        event_hash=a_last.hash,
    )
    await store.snapshots.put_many([snapshot])
    assert await store.snapshots.latest("orders", "A") is not None
    request_id = await erase(store, "A", clock)
    await ingester(store, feed, clock, entity_rows=[("rm_order_summary", "orders")]).run(
        until_idle=True
    )
    left = await store.read_models.get_many("rm_order_summary", ["str:A", "str:B"])
    assert list(left) == ["str:B"]
    assert await store.snapshots.latest("orders", "A") is None

    after = await assert_log_intact(store)
    erased = after[-1]
    assert erased.type == ERASED and erased.entity_key == "$stream"
    assert erased.document == {
        "entity_key": "A",
        "typed_key": "str:A",
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
    old_store = MemoryStore()
    prev: dict[str, str] = {}
    log_hash = GENESIS_HASH
    old: list[Event] = []
    for e in events:
        plain = msgspec.structs.replace(e, hash_scheme=PAYLOAD_SCHEME, salt=None, commit=None)
        sealed = seal(plain, prev_hash=prev.get(e.entity_key, GENESIS_HASH), prev_log_hash=log_hash)
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


async def test_erasure_keeps_every_signed_checkpoint_and_proof_valid(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    signer = Signer.generate("erasure.test")
    verifier = Verifier.parse(signer.verifier_key())
    cp = Checkpointer(
        LogTree(store.merkle, store.events, page=7),
        origin="eventstore/test",
        clock=clock,
        signer=signer,
        state_path=str(tmp_path / "state"),
    )
    feed = MemoryChangeFeed(clock=clock)
    orders = feed.collection("orders")
    await orders.insert_one({"_id": "A", "email": "ann@example.org"})
    await orders.insert_one({"_id": "B", "email": "bob@example.org"})
    run = ingester(store, feed, clock)
    run.checkpointer = cp
    await run.run(until_idle=True)
    await orders.update_one({"_id": "A"}, {"$set": {"email": "ann@new.example"}})
    clock.advance(5)
    run = ingester(store, feed, clock)
    run.checkpointer = cp
    await run.run(until_idle=True)
    before = await all_events(store)
    old_checkpoint = await store.merkle.checkpoint()
    assert old_checkpoint is not None and old_checkpoint.signed
    old_size = old_checkpoint.size
    assert old_size == len(before)
    old_proofs = {
        e.seq: msgspec.json.encode(await event_proof(store, e.seq, old_size)) for e in before
    }

    await erase(store, "A", clock)
    clock.advance(5)
    run = ingester(store, feed, clock)
    run.checkpointer = cp
    await run.run(until_idle=True)

    after = await all_events(store)
    assert after[-1].type == ERASED and after[0].document is None
    # Every proof file made before the erasure still verifies offline, and so do new ones.
    for seq, data in old_proofs.items():
        verdict = verify_proof_file(data, verifier)
        assert verdict.valid, (seq, verdict.reason)
        renewed = msgspec.json.encode(await event_proof(store, seq, old_size))
        assert renewed == data
    latest = await store.merkle.checkpoint()
    assert latest is not None and latest.size == len(after) and latest.signed
    for e in before:
        fresh = msgspec.json.encode(await event_proof(store, e.seq, latest.size))
        assert verify_proof_file(fresh, verifier).valid
    # The new tree extends the old checkpoint: consistency proof and root recomputed from hashes.
    _, _, old_root = parse_checkpoint(open_note(old_checkpoint.note, verifier))
    _, _, new_root = parse_checkpoint(open_note(latest.note, verifier))
    proof = await consistency_proof(store.merkle, old_size, latest.size)
    verify_consistency(old_size, latest.size, old_root, new_root, proof)
    assert root_of([event_leaf(e) for e in after[:old_size]]) == old_root
    assert (await verify_log(store.events, None)).valid


def salted_log(versions: int, *, payload_scheme_at: int | None = None) -> list[Event]:
    """Entity A's events 1..versions sealed under COMMIT_SCHEME (one under PAYLOAD_SCHEME)."""
    out: list[Event] = []
    prev = log_hash = GENESIS_HASH
    for v in range(1, versions + 1):
        plain = make_event(seq=v, entity_id="A", version=v)
        salt = None if v == payload_scheme_at else bytes([v % 256]) * SALT_BYTES
        event = seal(plain, prev_hash=prev, prev_log_hash=log_hash, salt=salt)
        prev, log_hash = event.hash, event.log_hash
        out.append(event)
    return out


async def test_every_page_of_a_long_history_is_checked_before_an_erasure_is_queued() -> None:
    def history_of(store: MemoryStore) -> History:
        return History.from_settings(store, Settings(uri="memory://", source="simulator"))

    when = FakeClock().now()
    old_last = MemoryStore()
    await old_last.events.append(salted_log(1001, payload_scheme_at=1001))  # on the second page
    with pytest.raises(ErasureRefused) as refused:
        await request_erasure(
            old_last,
            history_of(old_last),
            stream="orders",
            key="A",
            reason="r",
            actor="a",
            now=when,
        )
    assert str(refused.value) == (
        "version 1001 of orders/A was written under hash scheme 1, whose hash covers the payload"
        " itself: removing it would break the chain, so this entity cannot be erased"
    )
    salted = MemoryStore()
    await salted.events.append(salted_log(1001))
    outcome = await request_erasure(
        salted,
        history_of(salted),
        stream="orders",
        key="A",
        reason="  GDPR art. 17\t",
        actor=" dpo ",
        now=when,
        new_id=lambda: "req-1",
    )
    assert outcome == ErasureOutcome(
        request=ErasureRequest(
            id="req-1",
            stream="orders",
            entity_id="A",
            entity_key="A",
            reason="GDPR art. 17",
            actor="dpo",
            requested_at=when,
        )
    )
    assert await salted.erasures.queued() == [outcome.request]


async def test_an_erasure_request_needs_a_reason_and_an_actor_of_plain_bounded_text(
    store: Store, clock: FakeClock
) -> None:
    await captured(store, clock)
    history = History.from_settings(store, Settings(uri="memory://", source="simulator"))

    async def refusal(key: str = "A", reason: str = "r", actor: str = "a") -> str:
        with pytest.raises(HistoryError) as refused:
            await request_erasure(
                store,
                history,
                stream="orders",
                key=key,
                reason=reason,
                actor=actor,
                now=clock.now(),
            )
        return str(refused.value)

    assert await refusal(reason=" \t") == "reason is required"
    assert await refusal(actor="") == "actor is required"
    assert await refusal(reason="x" * 2001) == "reason has 2001 characters; at most 2000"
    assert await refusal(actor="x" * 201) == "actor has 201 characters; at most 200"
    assert await refusal(reason="line\nbreak") == "reason holds control characters (U+000A)"
    assert await refusal(actor="a\x1fb") == "actor holds control characters (U+001F)"
    # Bytes that were not UTF-8 on a command line (Python's `surrogateescape`).
    assert await refusal(actor="Jos\udce9") == "actor is not valid UTF-8"
    assert await refusal(reason="r\udcff") == "reason is not valid UTF-8"
    assert await refusal(key="$stream") == (
        "$stream is the stream's own record, not an entity: not erasable"
    )
    assert await store.erasures.queued() == []
    ok = await request_erasure(
        store,
        history,
        stream="orders",
        key="A",
        reason="x\ty" + "z" * 1997,  # a tab is text; exactly the limits
        actor="a" * 200,
        now=clock.now(),
    )
    assert len(ok.request.reason) == 2000 and not ok.already_queued
    # another entity's queued request is not this one's
    other = await request_erasure(
        store, history, stream="orders", key="B", reason="r", actor="a", now=clock.now()
    )
    assert not other.already_queued and other.request.entity_key == "B"
    assert [r.entity_key for r in await store.erasures.queued()] == ["A", "B"]


async def test_an_entity_is_already_erased_only_while_none_of_its_events_has_a_salt() -> None:
    def history_of(store: MemoryStore) -> History:
        return History.from_settings(store, Settings(uri="memory://", source="simulator"))

    when = FakeClock().now()
    first_old = MemoryStore()
    await first_old.events.append(salted_log(3, payload_scheme_at=1))  # only version 1 is old
    with pytest.raises(ErasureRefused, match=r"^version 1 of orders/A was written under"):
        await request_erasure(
            first_old,
            history_of(first_old),
            stream="orders",
            key="A",
            reason="r",
            actor="a",
            now=when,
        )
    done = ErasureRequest(
        id="old",
        stream="orders",
        entity_id="A",
        entity_key="A",
        reason="r",
        actor="a",
        state="done",
        seq=4,
    )
    # every event erased (no salt left): the request that erased them answers
    erased = MemoryStore()
    await erased.events.append(
        [msgspec.structs.replace(e, salt=None, erased_by=4) for e in salted_log(3)]
    )
    await erased.erasures.create(done)
    again = await request_erasure(
        erased, history_of(erased), stream="orders", key="A", reason="r", actor="a", now=when
    )
    assert (again.already_erased, again.request) == (True, done)
    # events that still have their salt (written after that erasure): a new request
    salted = MemoryStore()
    await salted.events.append(salted_log(3))
    await salted.erasures.create(done)
    fresh = await request_erasure(
        salted,
        history_of(salted),
        stream="orders",
        key="A",
        reason="r",
        actor="a",
        now=when,
        new_id=lambda: "new",
    )
    assert (fresh.already_erased, fresh.already_queued, fresh.request.id) == (False, False, "new")


async def test_a_history_met_with_an_erased_entity_forgets_the_states_it_remembered(
    store: Store, clock: FakeClock
) -> None:
    """Remembered states hold the data: once an entity reads as erased, its are dropped
    (its own only: another entity's stay)."""
    feed = await captured(store, clock)
    history = History(store, streams=["orders"], remember=16)
    for key in ("A", "B"):
        assert (await history.state("orders", key)).document is not None
    assert (await history.state("orders", "A", version=1)).document == {
        "_id": "A",
        "email": "ann@example.org",
        "updatedBy": "alice",
    }
    assert "ann@" in repr(history._folded)
    # a state read at exactly a snapshot's version is not remembered (the snapshot is its memo)
    await History(store, snapshot_every=1).ensure_snapshots("orders", "B")
    assert (await history.state("orders", "B", version=1)).document is not None
    assert len(history._folded) == 3
    await erase(store, "A", clock)
    await ingester(store, feed, clock).run(until_idle=True)
    gone = await history.state("orders", "A")
    assert (gone.erased, gone.document) == (True, None)
    kept = [(stream, key, version) for stream, key, version, _ in history._folded]
    assert kept == [("orders", "str:B", 1)]
    assert "ann@example.org" not in repr(history._folded)
    assert "ann@new.example" not in repr(history._folded)


async def test_erasures_chain_on_the_stream_record_and_leave_checkpoint_and_request_current(
    store: Store, clock: FakeClock
) -> None:
    feed = await captured(store, clock)
    capture = ingester(store, feed, clock)
    queued = store.erasures.queued

    async def a_second_later() -> list[ErasureRequest]:
        clock.advance(1)  # erasures are carried out a moment after the batch before them
        return await queued()

    store.erasures.queued = a_second_later  # type: ignore[method-assign]
    first_id = await erase(store, "A", clock)
    clock.advance(7)
    stats = await capture.run(until_idle=True)
    assert stats.erasures == 1
    second_id = await erase(store, "B", clock)
    clock.advance(7)
    stats = await capture.run(until_idle=True)  # capture restarts from the stored heads
    assert stats.erasures == 2  # counted over the ingester's life
    events = await assert_log_intact(store)
    records = [e for e in events if e.type == ERASED]
    assert [(e.version, e.prev_hash, e.document["entity_key"]) for e in records] == [  # type: ignore[index]
        (1, GENESIS_HASH, "A"),
        (2, records[0].hash, "B"),
    ]
    assert events[-1] == records[1]
    cp = await store.checkpoints.get(ROLE)
    assert cp is not None
    assert (cp.head.seq, cp.head.log_hash, cp.updated_at) == (
        records[1].seq,
        records[1].log_hash,
        records[1].occurred_at,
    )
    for request_id, record in ((first_id, records[0]), (second_id, records[1])):
        done = await store.erasures.get(request_id)
        assert done is not None
        assert (done.state, done.seq, done.events_erased, done.finished_at) == (
            "done",
            record.seq,
            record.document["events_erased"],  # type: ignore[index]
            record.occurred_at,
        )


async def test_the_history_of_an_erased_entity_lists_its_events_without_diffs_or_snapshots(
    store: Store, clock: FakeClock
) -> None:
    feed = await captured(store, clock)
    await erase(store, "A", clock)
    await ingester(store, feed, clock).run(until_idle=True)
    history = History(store, snapshot_every=1)
    first = await history.history("orders", "A", limit=1)
    assert [(e.event.version, e.event.erased, e.diff) for e in first.events] == [(1, True, [])]
    assert first.next == "1"
    whole = await history.history("orders", "A")
    assert [(e.event.version, e.event.erased, e.diff) for e in whole.events] == [
        (1, True, []),
        (2, True, []),
    ]
    assert whole.next is None
    assert await store.snapshots.latest("orders", "A") is None  # no state is known to lay
    # B was not erased: its history folds, diffs and lays snapshots as usual
    b = await history.history("orders", "B")
    assert [e.diff != [] for e in b.events] == [True]
    assert await store.snapshots.latest("orders", "B") is not None


async def test_the_stream_s_record_is_not_erasable_by_any_key_that_names_it(store: Store) -> None:
    # Its events answer `typed_key: "$stream"`; `json:null` (the typed key of its null `_id`)
    # named it too, and an erasure by it was carried out: the record of an earlier erasure
    # lost its payload, and the whole log then verified as tampered.
    log = LogBuilder()
    events = [log.next("A"), log.next(None, type="gap", document={"reason": "lost"})]
    await store.events.append(events)
    history = History.from_settings(store, Settings(uri="memory://", source="simulator"))
    for key in ("$stream", "json:null"):
        with pytest.raises(HistoryError) as refused:
            await request_erasure(
                store,
                history,
                stream="orders",
                key=key,
                reason="r",
                actor="a",
                now=events[0].occurred_at,
            )
        assert (
            str(refused.value) == "$stream is the stream's own record, not an entity: not erasable"
        )
    assert await store.erasures.queued() == []
    assert event_json(events[1])["typed_key"] == "$stream"
    assert event_json(events[0])["typed_key"] == "str:A"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("a\x7fb", "U+007F"),  # DEL
        ("a\x80b", "U+0080"),  # C1, first
        ("a\x85b", "U+0085"),  # NEL
        ("a\x9fb", "U+009F"),  # C1, last
        ("ticket \u202e21#", "U+202E"),  # right-to-left override
        ("a\u202ab", "U+202A"),
        ("a\u2066b", "U+2066"),  # isolates
        ("a\u2069b", "U+2069"),
    ],
)
async def test_the_reason_and_actor_refuse_del_c1_and_bidirectional_controls(
    store: Store, clock: FakeClock, text: str, code: str
) -> None:
    """What the log keeps for good holds none of them: the CLI refuses them as the API does."""
    await captured(store, clock)
    history = History.from_settings(store, Settings(uri="memory://", source="simulator"))
    for field in ("reason", "actor"):
        asked = {"reason": "r", "actor": "a", field: text}
        with pytest.raises(HistoryError) as refused:
            await request_erasure(
                store,
                history,
                stream="orders",
                key="A",
                reason=asked["reason"],
                actor=asked["actor"],
                now=clock.now(),
            )
        assert str(refused.value) == f"{field} holds control characters ({code})"
    assert await store.erasures.queued() == []
    # Beside them, other non-ASCII text is taken as it is.
    ok = await request_erasure(
        store,
        history,
        stream="orders",
        key="A",
        reason="Zoë \u2014 \u202f\u200e ticket",
        actor="José",
        now=clock.now(),
    )
    assert (ok.request.reason, ok.request.actor) == ("Zoë \u2014 \u202f\u200e ticket", "José")
