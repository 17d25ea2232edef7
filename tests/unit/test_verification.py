"""Verification over the store: pages bounded by `page`, verdicts of entities, streams and the log."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import msgspec
import pytest

from eventstore.chain import EntityChecker, ErasedEvent, entity_hash, seal
from eventstore.keys import typed_key
from eventstore.memory.eventlog import MemoryEventLog
from eventstore.merkle import Frontier
from eventstore.model import ERASED, GENESIS_HASH, Event, Head, TreeCheckpoint
from eventstore.notes import checkpoint_text
from eventstore.tree import event_leaf
from eventstore.verification import (
    InvalidEntity,
    all_events,
    verify_entity,
    verify_log,
    verify_stream,
)
from tests.helpers import T0, LogBuilder, fixed_salt
from tests.merkle_helpers import signed_log


class StoredLog(MemoryEventLog):
    """A log holding events as stored, tampered ones included (append would refuse them).

    Reads answer from that list; every read's `limit` (what one page holds) is recorded.
    """

    def __init__(self, events: list[Event]) -> None:
        super().__init__()
        self.stored = events
        self.limits: list[int | None] = []

    async def read(self, *, after_seq: int = 0, limit: int = 1000) -> list[Event]:
        self.limits.append(limit)
        return [e for e in self.stored if e.seq > after_seq][:limit]

    async def read_entity(
        self,
        stream: str,
        entity_id: Any,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        self.limits.append(limit)
        found = sorted(
            (
                e
                for e in self.stored
                if (e.stream, e.entity_id) == (stream, entity_id)
                and e.version >= from_version
                and (to_version is None or e.version <= to_version)
            ),
            key=lambda e: e.version,
        )
        return found[:limit] if limit is not None else found


def rehashed(event: Event, **changes: Any) -> Event:
    edited = msgspec.structs.replace(event, **changes)
    return msgspec.structs.replace(edited, hash=entity_hash(edited))


# -- pages ----------------------------------------------------------------------------------


async def test_an_entity_is_read_in_pages_of_the_size_asked() -> None:
    log = StoredLog(LogBuilder().many(*["A"] * 7))
    verdict = await verify_entity(log, "orders", "A", page=3)
    assert verdict is not None and verdict.valid and verdict.events_checked == 7
    assert log.limits == [3, 3, 3]  # 3 + 3 + 1: the short page ends it


async def test_a_stream_and_the_log_are_read_in_pages_of_the_size_asked() -> None:
    log = StoredLog(LogBuilder().many("A", "B", "A", "B", "A"))
    stream = await verify_stream(log, "orders", page=2)
    assert stream.valid and (stream.entities_checked, stream.events_checked) == (2, 5)
    assert log.limits == [2, 2, 2]
    log.limits.clear()
    verdict = await verify_log(log, None, page=2)
    assert verdict.valid and verdict.events_checked == 5
    assert log.limits == [2, 2, 2]
    log.limits.clear()
    assert [e.seq async for e in all_events(log, page=4)] == [1, 2, 3, 4, 5]
    assert log.limits == [4, 4]


async def test_an_entity_verification_stops_reading_at_the_first_break() -> None:
    events = LogBuilder().many(*["A"] * 6)
    events[1] = rehashed(events[1], actor="mallory")  # version 3 no longer links
    log = StoredLog(events)
    verdict = await verify_entity(log, "orders", "A", page=2)
    assert verdict is not None and (verdict.valid, verdict.first_invalid_version) == (False, 3)
    assert verdict.events_checked == 3
    assert log.limits == [2, 2]  # the third page is never read


async def test_an_entity_without_events_has_no_verdict() -> None:
    log = StoredLog(LogBuilder().many("A"))
    assert await verify_entity(log, "orders", "B") is None
    assert await verify_entity(log, "refunds", "A") is None


# -- verdicts of a stream -------------------------------------------------------------------


async def test_a_stream_verdict_counts_only_its_own_stream() -> None:
    b = LogBuilder()
    events = [
        b.next("R1", stream="refunds"),
        b.next("A"),
        b.next("R1", stream="refunds"),
        b.next("B"),
        b.next("A"),
    ]
    log = StoredLog(events)
    orders = await verify_stream(log, "orders")
    assert orders.valid and (orders.entities_checked, orders.events_checked) == (2, 3)
    refunds = await verify_stream(log, "refunds")
    assert refunds.valid and (refunds.entities_checked, refunds.events_checked) == (1, 2)


async def test_a_stream_names_every_broken_entity_at_its_first_break() -> None:
    b = LogBuilder()
    events = [b.next(e) for e in ("A", "B", "C", "A", "B", "A", "B", "C")]
    # A: version 2 rehashed, so version 3 does not link; B: version 2 stored twice
    events[3] = rehashed(events[3], actor="mallory")
    events[6] = msgspec.structs.replace(events[4], seq=7, id="again")
    log = StoredLog(events)
    verdict = await verify_stream(log, "orders")
    assert verdict.valid is False
    assert (verdict.entities_checked, verdict.events_checked) == (3, 8)
    assert [(i.entity_key, i.first_invalid_version, i.reason) for i in verdict.invalid] == [
        ("A", 3, "prev_hash of version 3 does not link to version 2"),
        ("B", 2, "version 2 stored twice or out of order"),
    ]


async def test_a_stream_names_a_missing_version_as_the_first_invalid() -> None:
    b = LogBuilder()
    events = [b.next("A"), b.next("A"), b.next("A"), b.next("B")]
    log = StoredLog([events[0], events[2], events[3]])  # A's version 2 never stored
    verdict = await verify_stream(log, "orders")
    assert [(i.entity_key, i.first_invalid_version, i.reason) for i in verdict.invalid] == [
        ("A", 2, "missing version 2 (next stored is 3)")
    ]
    assert verdict.entities_checked == 2


# -- the whole log --------------------------------------------------------------------------


async def test_the_log_verdict_stops_at_the_first_break_and_checks_the_head() -> None:
    events = LogBuilder().many("A", "B", "A", "B")
    head = Head(seq=4, log_hash=events[-1].log_hash)
    log = StoredLog(events)
    verdict = await verify_log(log, head, page=1)
    assert (verdict.valid, verdict.head_matches, verdict.events_checked) == (True, True, 4)
    broken = [events[0], rehashed(events[1], actor="mallory"), *events[2:]]
    log = StoredLog(broken)
    verdict = await verify_log(log, head, page=1)
    assert (verdict.valid, verdict.first_invalid_seq, verdict.events_checked) == (False, 2, 2)
    assert log.limits == [1, 1]  # nothing read past the break


# -- the entity checker fed one event at a time ---------------------------------------------


def test_the_entity_checker_ignores_everything_after_the_first_break() -> None:
    v1, v2, v3 = LogBuilder().many("A", "A", "A")
    checker = EntityChecker()
    assert checker.feed(v1) is True
    assert checker.feed(v3) is False  # version 2 missing
    assert checker.feed(v2) is False  # ignored: the first break is the one reported
    verdict = checker.verdict()
    assert (verdict.valid, verdict.events_checked, verdict.first_invalid_version) == (False, 2, 2)
    assert verdict.reason == "missing version 2 (next stored is 3)"


@pytest.mark.parametrize(
    ("versions", "first", "reason"),
    [
        ((1, 2, 2), 2, "version 2 stored twice or out of order"),
        ((1, 1), 1, "version 1 stored twice or out of order"),
        ((1, 3), 2, "missing version 2 (next stored is 3)"),
        ((2,), 1, "missing version 1 (next stored is 2)"),
    ],
)
def test_the_entity_checker_names_the_first_invalid_version(
    versions: tuple[int, ...], first: int, reason: str
) -> None:
    events = LogBuilder().many(*["A"] * 3)
    checker = EntityChecker()
    for v in versions:
        if not checker.feed(events[v - 1]):
            break
    verdict = checker.verdict()
    assert (verdict.valid, verdict.first_invalid_version, verdict.reason) == (False, first, reason)


async def test_a_stream_names_an_entity_broken_at_its_first_event() -> None:
    b = LogBuilder()
    a1, a2, c1 = b.next("A"), b.next("A"), b.next("C")
    verdict = await verify_stream(StoredLog([a2, c1]), "orders")  # A's version 1 is gone
    assert [(i.entity_key, i.first_invalid_version, i.reason) for i in verdict.invalid] == [
        ("A", 1, "missing version 1 (next stored is 2)")
    ]
    assert (verdict.entities_checked, verdict.events_checked) == (2, 2)
    forged = rehashed(a1, actor="mallory")
    verdict = await verify_stream(
        StoredLog([msgspec.structs.replace(forged, hash="0" * 64)]), "orders"
    )
    assert [(i.entity_key, i.first_invalid_version) for i in verdict.invalid] == [("A", 1)]


async def test_a_stream_reads_on_past_the_later_events_of_a_broken_entity() -> None:
    b = LogBuilder()
    events = [b.next(e) for e in ("A", "A", "A", "A", "B", "B")]
    events[2] = msgspec.structs.replace(events[2], actor="mallory")  # A's version 3 edited
    events[5] = msgspec.structs.replace(events[5], actor="mallory")  # B's version 2 edited
    verdict = await verify_stream(StoredLog(events), "orders")
    assert [(i.entity_key, i.first_invalid_version) for i in verdict.invalid] == [
        ("A", 3),
        ("B", 2),
    ]
    assert (verdict.entities_checked, verdict.events_checked) == (2, 6)


# -- erasure claims in a stream ------------------------------------------------------------


def salted(events: list[Event]) -> list[Event]:
    """The events sealed under the salted scheme (chains relinked), as capture writes them now."""
    out: list[Event] = []
    prev: dict[tuple[str, str], str] = {}
    for e in events:
        key = (e.stream, typed_key(e.entity_id))
        sealed = seal(
            e,
            prev_hash=prev.get(key, GENESIS_HASH),
            prev_log_hash=out[-1].log_hash if out else GENESIS_HASH,
            salt=fixed_salt(e.id),
        )
        prev[key] = sealed.hash
        out.append(sealed)
    return out


def erased(event: Event, by: int) -> Event:
    """`event` as an erasure leaves it: payload and salt gone, `erased_by` set (hashes hold)."""
    return msgspec.structs.replace(event, document=None, changes=None, salt=None, erased_by=by)


async def test_an_erasure_claim_nothing_backs_breaks_its_entity_in_its_stream_only() -> None:
    b = LogBuilder()
    events = salted(
        [
            b.next("A"),
            b.next("B"),
            b.next("U", stream="users"),
            b.next("A"),
            b.next(None, ERASED, document={"entity_key": "B"}),  # seq 5 erased orders/B
            b.next("C"),
        ]
    )
    # A's version 1 claims seq 5, which erased B; U's version 1 claims seq 99, past the end.
    events[0] = erased(events[0], 5)
    events[2] = erased(events[2], 99)
    log = StoredLog(events)
    orders = await verify_stream(log, "orders")
    assert orders.valid is False
    assert orders.invalid == [
        InvalidEntity(
            entity_key="A",
            first_invalid_version=1,
            reason="payload of seq 1 is missing without an erased record "
            "(seq 5 does not record erasing orders/A)",
        )
    ]
    # A, B and C (the stream pseudo-entity is checked too): A counted once, as broken
    assert (orders.entities_checked, orders.events_checked, orders.events_erased) == (4, 5, 1)
    users = await verify_stream(log, "users")
    assert users.invalid == [
        InvalidEntity(
            entity_key="U",
            first_invalid_version=1,
            reason="payload of seq 3 is missing without an erased record "
            "(seq 99 does not record erasing users/U)",
        )
    ]
    assert (users.entities_checked, users.events_erased) == (1, 1)
    nothing = await verify_stream(log, "refunds")
    assert (nothing.valid, nothing.entities_checked, nothing.events_erased) == (True, 0, 0)


async def test_an_entity_already_broken_keeps_its_first_break_over_an_unbacked_claim() -> None:
    b = LogBuilder()
    events = salted([b.next("A"), b.next("A"), b.next("B")])
    events[0] = rehashed(events[0], actor="mallory")  # version 2 no longer links to it
    events[1] = erased(events[1], 99)
    verdict = await verify_stream(StoredLog(events), "orders")
    assert [(i.entity_key, i.first_invalid_version, i.reason) for i in verdict.invalid] == [
        ("A", 2, "prev_hash of version 2 does not link to version 1")
    ]
    assert verdict.entities_checked == 2


async def test_an_entitys_erasure_claims_are_checked_against_the_record_at_that_seq() -> None:
    b = LogBuilder()
    drafts = [
        b.next("A"),
        b.next("A"),
        b.next(""),  # an entity whose key is the empty string
        b.next(None, ERASED, document={"entity_key": "A"}),  # seq 4 erased orders/A
        b.next(None, ERASED, document={"entity_key": ""}),  # seq 5 erased orders/""
    ]
    events = salted(drafts)
    events[0], events[1] = erased(events[0], 4), erased(events[1], 4)
    events[2] = erased(events[2], 5)
    log = StoredLog(events)
    verdict = await verify_entity(log, "orders", "A")
    assert verdict is not None and verdict.valid and len(verdict.erased) == 2
    assert log.limits[-1] == 1  # the record is one event read once for both claims
    assert log.limits.count(1) == 1
    empty = await verify_entity(log, "orders", "")
    assert empty is not None and empty.valid
    # the claimed seq 3 is missing: the record that follows it (seq 4, naming A) does not count
    b2 = LogBuilder()
    second = salted(
        [
            b2.next("A"),
            b2.next("B"),
            b2.next(None, ERASED, document={"entity_key": "A"}),
            b2.next(None, ERASED, document={"entity_key": "A"}),
        ]
    )
    second[0] = erased(second[0], 3)
    gapped = StoredLog([e for e in second if e.seq != 3])
    broken = await verify_entity(gapped, "orders", "A")
    assert broken is not None and not broken.valid
    assert (broken.first_invalid_version, broken.reason) == (
        1,
        "payload of version 1 is missing without an erased record "
        "(seq 3 does not record erasing orders/A)",
    )
    assert broken.erased == [ErasedEvent(seq=1, version=1, erased_by=3)]
    intact = await verify_entity(StoredLog(second), "orders", "A")
    assert intact is not None and intact.valid
    # a claim past the end of the log
    cut = StoredLog(events[:3])
    past = await verify_entity(cut, "orders", "")
    assert past is not None and not past.valid
    assert past.reason == (
        "payload of version 1 is missing without an erased record "
        "(seq 5 does not record erasing orders/)"
    )


# -- the latest stored checkpoint held to the events ---------------------------------------


def checkpoint_of(events: list[Event], size: int) -> TreeCheckpoint:
    """An unsigned checkpoint of the first `size` events (their root from their own hashes)."""
    frontier = Frontier()
    for e in events[:size]:
        frontier.append(event_leaf(e))
    root = frontier.root()
    return TreeCheckpoint(
        size=size,
        root=base64.b64encode(root).decode(),
        note=checkpoint_text("eventstore/test", size, root),
        signed=False,
        created_at=T0,
    )


UNSIGNED = "unsigned (no signing key)"


async def test_a_later_version_forged_onto_an_earlier_seq_is_held_to_the_checkpoint(
    tmp_path: Path,
) -> None:
    log = await signed_log(tmp_path, sign=False)  # o0's events: seqs 1, 5, ..., 21
    latest = await log.store.merkle.checkpoint()
    assert latest is not None and latest.size == 21
    # o0's version 6 (seq 21) rewritten, moved onto version 5's seq 17 and rehashed: its
    # chain still links, and the highest seq inside (17) is version 5's, which is genuine.
    forged = rehashed(log.events[20], seq=17, document={"_id": "o0", "amount": 10**6})
    stored = StoredLog([*log.events[:20], forged])
    verdict = await verify_entity(
        stored, "orders", "o0", checkpoint=latest, merkle=log.store.merkle
    )
    assert verdict is not None and verdict.events_checked == 6
    # the chain itself sees the move (versions follow seq) ...
    assert (verdict.valid, verdict.first_invalid_version) == (False, 6)
    assert verdict.reason == "version 6 has seq 17, not after version 5's seq 17"
    # ... and the checkpoint, holding the newest version inside it, sees the rewrite too
    check = verdict.checkpoint
    assert check is not None and (check.matches, check.pending, check.seq) == (False, False, 17)
    assert check.reason.startswith(
        "seq 17 is not shown to be in the tree of the latest checkpoint (21 events): "
    )
    assert check.reason.endswith("; events or the stored tree were rewritten")


async def test_a_checkpoint_root_that_is_not_base64_is_reported(tmp_path: Path) -> None:
    log = await signed_log(tmp_path, sign=False)
    latest = await log.store.merkle.checkpoint()
    assert latest is not None
    garbled = msgspec.structs.replace(latest, root="!" + latest.root)
    verdict = await verify_entity(
        log.store.events, "orders", "o1", checkpoint=garbled, merkle=log.store.merkle
    )
    assert verdict is not None and verdict.valid is False
    assert verdict.checkpoint is not None and verdict.checkpoint.matches is False
    assert (
        verdict.reason
        == verdict.checkpoint.reason
        == (
            "the latest checkpoint (21): its note names another size or root than the one stored"
            " with it"
        )
    )


async def test_checkpoints_of_0_and_1_events_are_held_to_the_log_and_a_stream() -> None:
    events = LogBuilder().many("A", "B", "A", "B", "A")
    head = Head(seq=5, log_hash=events[-1].log_hash)
    log = StoredLog(events)
    verdict = await verify_log(log, head, checkpoint=checkpoint_of(events, 0))
    assert verdict.valid and verdict.checkpoint is not None and verdict.checkpoint.matches
    assert verdict.checkpoint.reason == (
        f"the first 0 events have the root of the latest checkpoint ({UNSIGNED})"
    )
    verdict = await verify_log(log, head, checkpoint=checkpoint_of(events, 1))
    assert verdict.valid and verdict.checkpoint is not None and verdict.checkpoint.matches
    # A checkpoint of 1 event over an empty log: that event was removed.
    empty = await verify_log(StoredLog([]), None, checkpoint=checkpoint_of(events, 1))
    assert empty.valid is False and empty.checkpoint is not None
    assert (
        empty.reason
        == empty.checkpoint.reason
        == "the log has 0 events, fewer than the latest checkpoint's 1: events were removed"
    )
    # A stream: at size 0 none of its events is inside yet; at size 1 its seq 1 is held.
    stream = await verify_stream(log, "orders", checkpoint=checkpoint_of(events, 0))
    assert stream.valid and stream.checkpoint is not None
    assert (stream.checkpoint.pending, stream.checkpoint.seq) == (True, None)
    assert stream.checkpoint.reason == (
        f"no event of stream orders is in the latest checkpoint (0 events, {UNSIGNED}) yet:"
        " its events (up to seq 5) are newer"
    )
    stream = await verify_stream(log, "orders", checkpoint=checkpoint_of(events, 1))
    assert stream.valid and stream.checkpoint is not None
    assert (stream.checkpoint.matches, stream.checkpoint.seq) == (True, 1)
    assert stream.checkpoint.reason == (
        f"the newest event of stream orders in the latest checkpoint (1 events, {UNSIGNED}),"
        " seq 1, is in its tree (the root of the first 1 events, recomputed from their hashes);"
        " its events after seq 1 are not in a checkpoint yet"
    )


async def test_a_stream_without_events_under_a_checkpoint_is_pending() -> None:
    events = LogBuilder().many("A", "B", "A")
    verdict = await verify_stream(StoredLog(events), "refunds", checkpoint=checkpoint_of(events, 3))
    assert (verdict.valid, verdict.entities_checked, verdict.events_checked) == (True, 0, 0)
    check = verdict.checkpoint
    assert check is not None and (check.pending, check.matches, check.seq) == (True, False, None)
    assert check.reason == (
        f"no event of stream refunds is in the latest checkpoint (3 events, {UNSIGNED}) yet:"
        " it has no events"
    )


async def test_a_seq_skipped_under_the_checkpoint_fails_the_log_and_every_stream() -> None:
    b = LogBuilder()
    events = [
        b.next("A"),
        b.next("B"),
        b.next("R", stream="refunds"),
        b.next("A"),
        b.next("B"),
        b.next("A"),
    ]
    checkpoint = checkpoint_of(events, 5)
    log = StoredLog([e for e in events if e.seq != 3])  # a refunds event removed
    verdict = await verify_log(log, None, checkpoint=checkpoint)
    assert (verdict.valid, verdict.first_invalid_seq) == (False, 3)
    assert verdict.reason == "seq 3 missing (found seq 4)"
    assert verdict.checkpoint is not None and verdict.checkpoint.matches is False
    removed = "seq 3 is missing from the latest checkpoint's 5 events: events were removed"
    assert verdict.checkpoint.reason == removed
    # The orders chains all link: only the root of the checkpoint's size shows the removal.
    orders = await verify_stream(log, "orders", checkpoint=checkpoint)
    assert (orders.valid, orders.invalid, orders.events_checked) == (False, [], 5)
    check = orders.checkpoint
    assert check is not None and (check.matches, check.pending, check.seq) == (False, False, 2)
    assert check.reason == removed


async def test_a_log_missing_its_first_event_is_read_no_further() -> None:
    events = LogBuilder().many("A", "B", "A", "B")
    log = StoredLog(events[1:])
    verdict = await verify_log(log, None, page=1, checkpoint=checkpoint_of(events, 3))
    assert (verdict.valid, verdict.first_invalid_seq, verdict.events_checked) == (False, 1, 1)
    assert verdict.reason == "seq 1 missing (found seq 2)"
    assert verdict.checkpoint is not None and verdict.checkpoint.reason == (
        "seq 1 is missing from the latest checkpoint's 3 events: events were removed"
    )
    assert log.limits == [1]  # nothing read past the break
