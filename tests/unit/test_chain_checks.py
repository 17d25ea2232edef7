"""Each check of the two verifiers caught on its own.

Every case below is a tampering that exactly one check can see: the others pass
because the tamperer recomputed what they look at. Removing that check makes the
case verify as valid, so each test fails when its check is gone.
"""

from __future__ import annotations

import msgspec

from eventstore.chain import (
    EntityChecker,
    ErasureClaims,
    LogVerdict,
    LogVerifier,
    entity_hash,
    erasure_names,
    next_log_hash,
    payload_problem,
    seal,
    verify_entity,
)
from eventstore.model import (
    COMMIT_SCHEME,
    ERASED,
    GAP,
    GENESIS_HASH,
    PAYLOAD_SCHEME,
    Event,
    Head,
)
from tests.helpers import LogBuilder, fixed_salt, make_event


def log_of(*entity_ids: str) -> list[Event]:
    """A valid log with one event per argument, in order."""
    return LogBuilder().many(*entity_ids)


def verify_log(events: list[Event], head: Head | None = None) -> LogVerdict:
    verifier = LogVerifier(head)
    for event in events:
        verifier.feed(event)
    return verifier.verdict()


def head_of(events: list[Event]) -> Head:
    return Head(seq=events[-1].seq, log_hash=events[-1].log_hash)


def relinked_log(events: list[Event]) -> list[Event]:
    """Every `log_hash` recomputed along `seq` from the events' own hashes (nothing else)."""
    out: list[Event] = []
    prev = GENESIS_HASH
    for e in events:
        prev = next_log_hash(prev, e.hash)
        out.append(msgspec.structs.replace(e, log_hash=prev))
    return out


def rehashed(event: Event, **changes: object) -> Event:
    """`event` edited and its entity hash recomputed (its `prev_hash` and `log_hash` kept)."""
    edited = msgspec.structs.replace(event, **changes)
    return msgspec.structs.replace(edited, hash=entity_hash(edited))


# -- entity chain: the prev_hash link -------------------------------------------------------


def test_a_middle_version_rewritten_with_its_own_hash_breaks_the_link_of_the_next() -> None:
    v1, v2, v3 = log_of("A", "A", "A")
    forged = rehashed(v2, actor="mallory")
    # the forged version is self-consistent: its content matches its hash, it links to v1
    assert verify_entity([v1, forged]).valid
    verdict = verify_entity([v1, forged, v3])
    assert verdict.valid is False
    assert verdict.first_invalid_version == 3
    assert verdict.events_checked == 3
    assert verdict.reason == "prev_hash of version 3 does not link to version 2"


def test_a_version_sealed_on_a_foreign_chain_is_caught_by_its_link() -> None:
    a1, b1, a2 = log_of("A", "B", "A")
    # A's version 2 resealed to follow B's version 1: its own hash is right, its link is not
    stolen = seal(a2, prev_hash=b1.hash, prev_log_hash=b1.log_hash)
    verdict = verify_entity([a1, stolen])
    assert (verdict.valid, verdict.first_invalid_version) == (False, 2)
    assert verdict.reason == "prev_hash of version 2 does not link to version 1"


# -- whole log: the log_hash link -----------------------------------------------------------


def test_only_the_log_hash_of_a_middle_event_changed_is_caught_at_that_seq() -> None:
    events = log_of("A", "B", "A", "B")
    head = head_of(events)
    # log_hash is not covered by `hash`: every entity check still passes, and the head matches
    other = next_log_hash(GENESIS_HASH, "not the hash of seq 1")
    tampered = [events[0], msgspec.structs.replace(events[1], log_hash=other), *events[2:]]
    for entity in ("A", "B"):
        assert verify_entity([e for e in tampered if e.entity_key == entity]).valid
    verdict = verify_log(tampered, head)
    assert verdict.valid is False
    assert verdict.first_invalid_seq == 2
    assert verdict.reason == "log_hash of seq 2 does not chain from seq 1"
    assert verdict.head == head_of(events[:1])  # the head verified so far stops before the break


def test_a_log_hash_changed_without_a_recorded_head_is_still_caught() -> None:
    events = log_of("A", "A", "A")
    tampered = [*events[:2], msgspec.structs.replace(events[2], log_hash=events[1].log_hash)]
    verdict = verify_log(tampered)
    assert (verdict.valid, verdict.first_invalid_seq) == (False, 3)
    assert verdict.reason == "log_hash of seq 3 does not chain from seq 2"
    assert verdict.head_matches is None


# -- whole log: each entity's prev_hash along seq -------------------------------------------


def test_a_resealed_first_version_with_every_log_hash_recomputed_is_caught_at_the_next_version() -> (
    None
):
    events = log_of("A", "B", "A", "B")
    # A's version 1 rewritten with a fresh, valid hash; every later log_hash and the head
    # recomputed; A's version 2 keeps its (now dangling) prev_hash and its own hash.
    forged = seal(
        msgspec.structs.replace(events[0], actor="mallory"),
        prev_hash=GENESIS_HASH,
        prev_log_hash=GENESIS_HASH,
    )
    tampered = relinked_log([forged, *events[1:]])
    assert tampered[2].hash == events[2].hash and tampered[2].prev_hash == events[0].hash
    # every event's content matches its hash and the log_hash chain holds up to the new head
    assert all(entity_hash(e) == e.hash for e in tampered)
    verdict = verify_log(tampered, head_of(tampered))
    assert verdict.valid is False
    assert verdict.first_invalid_seq == 3
    assert verdict.reason == "seq 3: prev_hash of orders/A version 2 does not link to version 1"
    # the entity verifier, reading the same events by version, agrees
    entity = verify_entity([e for e in tampered if e.entity_key == "A"])
    assert (entity.first_invalid_version, entity.reason) == (
        2,
        "prev_hash of version 2 does not link to version 1",
    )


def test_a_version_skipped_along_seq_is_named_with_the_version_due() -> None:
    events = log_of("A", "A", "A")
    # A's version 2 dropped, version 3 renumbered to 2 and every chain rebuilt except its link
    renumbered = seal(
        msgspec.structs.replace(events[2], seq=2, version=3),
        prev_hash=events[0].hash,
        prev_log_hash=events[0].log_hash,
    )
    verdict = verify_log([events[0], renumbered])
    assert (verdict.valid, verdict.first_invalid_seq) == (False, 2)
    assert verdict.reason == "seq 2 breaks the chain of orders/A: version 3 where 2 was due"


# -- whole log: dense seq --------------------------------------------------------------------


def test_a_missing_seq_and_a_repeated_seq_are_told_apart() -> None:
    e1, e2, e3 = log_of("A", "B", "A")
    missing = verify_log([e1, e3])
    assert (missing.first_invalid_seq, missing.reason) == (2, "seq 2 missing (found seq 3)")
    repeated = verify_log([e1, e2, e2])
    assert (repeated.first_invalid_seq, repeated.reason) == (
        2,
        "seq 3 duplicated or reordered (found seq 2)",
    )
    assert missing.events_checked == 2 and repeated.events_checked == 3
    assert missing.head == head_of([e1]) and repeated.head == head_of([e1, e2])


# -- whole log: against a recorded head ------------------------------------------------------


def test_the_verdict_against_a_recorded_head() -> None:
    events = log_of("A", "B", "A", "B")
    # an empty head (nothing recorded yet) matches any log
    empty = verify_log(events, Head())
    assert (empty.valid, empty.head_matches, empty.first_invalid_seq, empty.reason) == (
        True,
        True,
        None,
        None,
    )
    assert empty.head == head_of(events) and empty.events_checked == 4
    # the log may have grown past the head: it passes through it
    grown = verify_log(events, head_of(events[:2]))
    assert (grown.valid, grown.head_matches, grown.reason) == (True, True, None)
    # no head given: nothing to match
    assert verify_log(events).head_matches is None and verify_log(events).valid
    # truncated: the log ends before the head
    short = verify_log(events[:3], head_of(events))
    assert (short.valid, short.head_matches, short.first_invalid_seq) == (False, False, 4)
    assert short.reason == "log ends at seq 3 but the recorded head is seq 4: truncated"
    # passing through the head's seq with another log_hash
    other = Head(seq=2, log_hash=events[0].log_hash)
    off = verify_log(events, other)
    assert (off.valid, off.head_matches, off.first_invalid_seq) == (False, False, 2)
    assert off.reason == "log_hash at seq 2 differs from the recorded head"
    assert off.head == head_of(events)


def test_a_break_after_the_recorded_head_still_says_whether_the_head_matched() -> None:
    events = log_of("A", "B", "A", "B")
    broken = [*events[:3], msgspec.structs.replace(events[3], log_hash=events[2].log_hash)]
    after = verify_log(broken, head_of(events[:2]))
    assert (after.valid, after.head_matches, after.first_invalid_seq) == (False, True, 4)
    assert after.reason == "log_hash of seq 4 does not chain from seq 3"
    before = verify_log(broken, head_of(events))
    assert (before.valid, before.head_matches, before.first_invalid_seq) == (False, False, 4)
    assert before.reason == "log_hash of seq 4 does not chain from seq 3"
    # once broken, later events are not examined
    five = log_of("A", "B", "A", "B", "A")
    cut = [five[0], msgspec.structs.replace(five[1], log_hash=five[0].log_hash), *five[2:]]
    assert verify_log(cut).events_checked == 2


def test_an_erasure_is_named_only_by_an_erased_event_of_the_same_stream_and_key() -> None:
    b = LogBuilder()
    record = b.next(None, ERASED, document={"entity_key": "A"})
    refund = b.next(None, ERASED, stream="refunds", document={"entity_key": "A"})
    gap = b.next(None, GAP, document={"entity_key": "A"})
    assert erasure_names(record, "orders", "A") is True
    assert erasure_names(record, "orders", "B") is False
    assert erasure_names(record, "refunds", "A") is False
    assert erasure_names(refund, "orders", "A") is False
    assert erasure_names(gap, "orders", "A") is False  # not an erased event
    assert erasure_names(b.next("A"), "orders", "A") is False


# -- payload checks under both hash schemes (payload_problem) ------------------------------


def salted(**changes: object) -> Event:
    """Version 1 of order A sealed under the commit scheme, then edited (no reseal)."""
    event = make_event(seq=7, entity_id="A", version=1)
    sealed = seal(event, prev_hash=GENESIS_HASH, prev_log_hash=GENESIS_HASH, salt=fixed_salt("x"))
    assert sealed.hash_scheme == COMMIT_SCHEME
    return msgspec.structs.replace(sealed, **changes)


def erased(**changes: object) -> Event:
    """`salted()` as an erasure leaves it: no salt, no payload, naming the erased event at seq 9."""
    cleared: dict[str, object] = {
        "salt": None,
        "document": None,
        "changes": None,
        "before": None,
        "erased_by": 9,
    }
    return salted(**{**cleared, **changes})


def test_an_old_scheme_event_may_not_claim_an_erasure() -> None:
    old = make_event(seq=3, entity_id="A", version=1)
    assert old.hash_scheme == PAYLOAD_SCHEME
    assert payload_problem(old, "version 1") is None
    claimed = msgspec.structs.replace(old, erased_by=9)
    assert payload_problem(claimed, "version 1") == (
        "version 1 claims an erasure under the old scheme"
    )


def test_an_erased_event_holds_no_part_of_its_payload() -> None:
    assert payload_problem(erased(), "version 1") is None
    lefts: list[dict[str, object]] = [
        {"document": {"_id": "A"}},
        {"changes": {"updatedFields": {}}},
        {"before": {}},
    ]
    for left in lefts:
        assert payload_problem(erased(**left), "version 1") == (
            "version 1 is marked erased but still holds a payload without its salt"
        ), left


def test_an_erased_event_names_an_erased_event_after_itself() -> None:
    assert payload_problem(erased(erased_by=8), "seq 7") is None
    for before_or_self in (7, 6):
        assert payload_problem(erased(erased_by=before_or_self), "seq 7") == (
            f"seq 7 names erased event seq {before_or_self}, which does not follow it"
        )


def test_a_salt_that_is_not_hex_is_a_payload_that_does_not_match() -> None:
    assert payload_problem(salted(), "version 1") is None
    for salt in ("not hex", "abc"):
        assert payload_problem(salted(salt=salt), "version 1") == (
            "hash of version 1 does not match its content (payload differs from its commit)"
        )


def test_erasure_claims_count_the_erased_events_of_each_stream() -> None:
    claims = ErasureClaims()
    for seq, stream in ((1, "orders"), (2, "orders"), (3, "refunds"), (4, "orders")):
        claims.feed(erased(seq=seq, stream=stream, erased_by=10))
    claims.feed(salted(seq=5))  # kept its payload: no claim
    assert (claims.count_in("orders"), claims.count_in("refunds"), claims.count_in("x")) == (
        3,
        1,
        0,
    )
    assert claims.count == 4


def test_an_entity_checker_knows_its_entity_only_once_fed() -> None:
    checker = EntityChecker()
    assert (checker.entity_key, checker.checked) == (None, 0)
    checker.feed(log_of("A")[0])
    assert (checker.entity_key, checker.checked) == ("A", 1)


def test_a_later_version_moved_onto_an_earlier_seq_is_caught_by_the_entity_chain() -> None:
    """Versions are appended in seq order; one moved back (and rehashed) is named."""
    events = log_of("A", "B", "A", "A")  # A: versions 1-3 at seqs 1, 3, 4
    for seq in (3, 2):
        moved = rehashed(events[3], seq=seq)
        verdict = verify_entity([events[0], events[2], moved])
        assert (verdict.valid, verdict.first_invalid_version, verdict.events_checked) == (
            False,
            3,
            3,
        )
        assert verdict.reason == f"version 3 has seq {seq}, not after version 2's seq 3"
    assert verify_entity([events[0], events[2], events[3]]).valid
    checker = EntityChecker()
    assert [checker.feed(e) for e in (events[0], events[2], rehashed(events[3], seq=2))] == [
        True,
        True,
        False,
    ]
