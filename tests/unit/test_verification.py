"""Verification over the store: pages bounded by `page`, verdicts of entities, streams and the log."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from eventstore.chain import EntityChecker, ErasedEvent, entity_hash, seal
from eventstore.keys import typed_key
from eventstore.memory.eventlog import MemoryEventLog
from eventstore.model import ERASED, GENESIS_HASH, Event, Head
from eventstore.verification import (
    InvalidEntity,
    all_events,
    verify_entity,
    verify_log,
    verify_stream,
)
from tests.helpers import LogBuilder, fixed_salt


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
