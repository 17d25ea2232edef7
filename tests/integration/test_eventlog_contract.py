"""The EventLog contract, run over every adapter (memory, mongo on mongomock-motor)."""

from __future__ import annotations

import pytest
from bson import Int64, ObjectId
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from eventstore.chain import LogVerifier, verify_entity
from eventstore.keys import candidates, typed_key
from eventstore.model import CREATED, DELETED, GAP, STREAM_KEY, EntityHead, Event, Head
from eventstore.ports import LogConflict, Store
from tests.helpers import LogBuilder, make_event

OID = ObjectId("65f000000000000000000001")
COMPOUND = {"region": "eu", "n": 7}


def head_of(event: Event) -> EntityHead:
    return EntityHead(
        stream=event.stream,
        entity_id=event.entity_id,
        entity_key=event.entity_key,
        version=event.version,
        hash=event.hash,
        type=event.type,
        actor=event.actor,
    )


async def test_empty_log_has_the_genesis_head(store: Store) -> None:
    assert await store.events.head() == Head()
    assert await store.events.read() == []
    assert await store.events.read_entity("orders", 1) == []
    assert await store.events.entity_heads("orders", [1, "a"]) == {}
    assert await store.events.live_entities("orders") == []
    assert await store.events.existing_ids(["x"]) == set()
    assert await store.events.existing_entity_ids("orders", [1]) == []


async def test_appended_events_read_back_unchanged_and_verifiable(
    store: Store, log: LogBuilder
) -> None:
    events = [log.next(OID), log.next(42), log.next(OID), log.next(COMPOUND)]

    assert await store.events.append(events) == 4

    stored = await store.events.read()
    assert stored == events
    assert await store.events.head() == Head(seq=4, log_hash=events[-1].log_hash)
    verifier = LogVerifier(expected_head=log.head)
    for event in stored:
        verifier.feed(event)
    assert verifier.verdict().valid
    assert verify_entity(await store.events.read_entity("orders", OID)).events_checked == 2


async def test_a_read_without_a_limit_returns_a_page_of_1000(store: Store, log: LogBuilder) -> None:
    events = [log.next(n % 7) for n in range(1001)]
    assert await store.events.append(events) == 1001
    page = await store.events.read()
    assert [e.seq for e in page] == list(range(1, 1001))
    assert [e.seq for e in await store.events.read(after_seq=1000)] == [1001]


async def test_same_batch_twice_is_recorded_once(store: Store, log: LogBuilder) -> None:
    batch = log.many("a", "b", "a")
    assert await store.events.append(batch) == 3

    assert await store.events.append(batch) == 0

    assert await store.events.read() == batch
    assert await store.events.head() == Head(seq=3, log_hash=batch[-1].log_hash)


async def test_redelivered_prefix_is_skipped_and_the_rest_stored(
    store: Store, log: LogBuilder
) -> None:
    first = log.many("a", "b")
    rest = log.many("c", "a")
    await store.events.append(first)

    assert await store.events.append(first + rest) == 2

    assert await store.events.read() == first + rest


async def test_taken_seq_is_a_conflict_that_stores_nothing(store: Store, log: LogBuilder) -> None:
    stored = log.many("a", "b")
    await store.events.append(stored)
    # Another writer's idea of seq 2 and 3: seq 2 is taken by a different event.
    intruder = [
        make_event(seq=2, entity_id="x", version=1, prev_log_hash=stored[0].log_hash),
        make_event(seq=3, entity_id="y", version=1),
    ]

    with pytest.raises(LogConflict):
        await store.events.append(intruder)

    assert await store.events.read() == stored
    assert await store.events.existing_ids(["ev:orders:str:x:1", "ev:orders:str:y:1"]) == set()


async def test_taken_version_is_a_conflict_that_stores_nothing(
    store: Store, log: LogBuilder
) -> None:
    await store.events.append([log.next("a")])
    # Version 1 of "a" again, under a new id, as the first event of the batch.
    twin = make_event(seq=2, entity_id="a", version=1, id="other-writer")

    # the error names the entity and the version (what the ingester and the supervisor show)
    with pytest.raises(LogConflict, match=r"orders/a\b.* version 1\b"):
        await store.events.append([twin])

    assert await store.events.head() == log.head
    assert await store.events.existing_ids(["other-writer"]) == set()


async def test_conflict_mid_batch_keeps_the_log_dense_and_stores_no_conflicting_event(
    store: Store, log: LogBuilder
) -> None:
    first = log.next("a")
    await store.events.append([first])
    fresh = log.next("b")  # seq 2: a valid continuation
    twin = make_event(seq=3, entity_id="a", version=1, id="other-writer")

    with pytest.raises(LogConflict):
        await store.events.append([fresh, twin])

    # Events are never deleted, so an adapter may keep the valid prefix (mongo, whose
    # unique indexes admitted it) or store nothing (memory validates first); either
    # way the log is dense, chained, and holds nothing of the conflict.
    stored = await store.events.read()
    assert stored in ([first], [first, fresh])
    assert await store.events.head() == Head(seq=stored[-1].seq, log_hash=stored[-1].log_hash)
    assert await store.events.existing_ids([twin.id]) == set()
    # Appending the batch again stores what is missing and nothing twice.
    assert await store.events.append([fresh]) == (1 if stored == [first] else 0)
    assert await store.events.read() == [first, fresh]


async def test_seq_after_a_hole_is_a_conflict(store: Store, log: LogBuilder) -> None:
    await store.events.append(log.many("a", "b"))
    skipped = make_event(seq=4, entity_id="c", version=1)

    with pytest.raises(
        LogConflict, match=rf"^event {skipped.id} has seq 4 where the log continues at 3$"
    ):
        await store.events.append([skipped])

    assert (await store.events.head()).seq == 2
    assert await store.events.existing_ids([skipped.id]) == set()


async def test_batch_that_is_not_one_run_is_refused(store: Store) -> None:
    batch = [
        make_event(seq=1, entity_id="a", version=1),
        make_event(seq=3, entity_id="b", version=1),
    ]

    with pytest.raises(LogConflict):
        await store.events.append(batch)

    assert await store.events.head() == Head()


async def test_skipped_event_cannot_leave_a_hole(store: Store, log: LogBuilder) -> None:
    stored = log.next("a")
    await store.events.append([stored])
    # seq 2 new, then an already-recorded id claiming seq 3, then seq 4: skipping
    # the recorded one would leave seq 3 empty.
    fresh = make_event(seq=2, entity_id="b", version=1)
    replay = make_event(seq=3, entity_id="a", version=1)
    after = make_event(seq=4, entity_id="c", version=1)
    assert replay.id == stored.id

    with pytest.raises(LogConflict):
        await store.events.append([fresh, replay, after])

    # the valid prefix may be kept (see above); the event after the hole never is
    assert await store.events.read() in ([stored], [stored, fresh])
    assert await store.events.existing_ids([after.id]) == set()


async def test_recorded_event_given_a_new_seq_cannot_leave_a_hole(
    store: Store, log: LogBuilder
) -> None:
    stored = log.next("a")
    await store.events.append([stored])
    # A re-delivered change numbered again (seq 2), then a new one at seq 3:
    # skipping the first leaves seq 2 empty.
    again = make_event(seq=2, entity_id="a", version=1)
    fresh = make_event(seq=3, entity_id="b", version=1)
    assert again.id == stored.id

    with pytest.raises(LogConflict):
        await store.events.append([again, fresh])

    assert await store.events.read() == [stored]


async def test_recorded_event_consumes_no_seq(store: Store, log: LogBuilder) -> None:
    first = log.many("a", "b")
    await store.events.append(first)
    new = log.next("c")  # seq 3

    assert await store.events.append([first[1], new]) == 1

    assert [e.seq for e in await store.events.read()] == [1, 2, 3]


@pytest.fixture
async def history(store: Store, log: LogBuilder) -> list[Event]:
    """Entity "e" at versions 1..6, interleaved with entity "f"."""
    events = [log.next(e) for e in ["e", "f", "e", "e", "f", "e", "e", "e"]]
    await store.events.append(events)
    return [e for e in events if e.entity_id == "e"]


@pytest.mark.parametrize(
    ("from_version", "to_version", "limit", "versions"),
    [
        (1, None, None, [1, 2, 3, 4, 5, 6]),
        (3, None, None, [3, 4, 5, 6]),
        (2, 4, None, [2, 3, 4]),
        (4, 4, None, [4]),
        (5, 2, None, []),
        (1, None, 2, [1, 2]),
        (3, 5, 10, [3, 4, 5]),
        (2, None, 0, []),
        (7, None, None, []),
    ],
)
async def test_read_entity_returns_the_version_range_in_order(
    store: Store,
    history: list[Event],
    from_version: int,
    to_version: int | None,
    limit: int | None,
    versions: list[int],
) -> None:
    found = await store.events.read_entity(
        "orders", "e", from_version=from_version, to_version=to_version, limit=limit
    )

    assert [e.version for e in found] == versions
    assert found == [e for e in history if e.version in versions]


@hsettings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    from_version=st.integers(-1, 8),
    to_version=st.none() | st.integers(-1, 8),
    limit=st.none() | st.integers(0, 8),
)
async def test_read_entity_agrees_with_filtering_the_history(
    store: Store, history: list[Event], from_version: int, to_version: int | None, limit: int | None
) -> None:
    found = await store.events.read_entity(
        "orders", "e", from_version=from_version, to_version=to_version, limit=limit
    )

    wanted = [
        e
        for e in history
        if e.version >= from_version and (to_version is None or e.version <= to_version)
    ]
    assert found == (wanted if limit is None else wanted[:limit])


@pytest.mark.parametrize(
    ("after_seq", "limit", "seqs"),
    [(0, 1000, [1, 2, 3, 4, 5]), (0, 2, [1, 2]), (2, 2, [3, 4]), (4, 10, [5]), (5, 10, []),
     (9, 10, []), (0, 0, []), (-3, 1, [1])],
)  # fmt: skip
async def test_read_by_position_returns_a_seq_window(
    store: Store, log: LogBuilder, after_seq: int, limit: int, seqs: list[int]
) -> None:
    events = log.many("a", "b", "c", "a", "b")
    await store.events.append(events)

    found = await store.events.read(after_seq=after_seq, limit=limit)

    assert [e.seq for e in found] == seqs
    assert found == [e for e in events if e.seq in seqs]


async def test_entity_heads_are_keyed_by_typed_key(store: Store, log: LogBuilder) -> None:
    ids = [OID, str(OID), 42, "42", COMPOUND, "plain"]
    events = [log.next(i) for i in ids] + [log.next(42), log.next(COMPOUND)]
    await store.events.append(events)

    heads = await store.events.entity_heads("orders", [*ids, 7, "missing", ObjectId()])

    newest = {typed_key(e.entity_id): e for e in events}  # later events overwrite
    assert heads == {tk: head_of(e) for tk, e in newest.items()}
    assert heads["int:42"].version == 2 and heads["str:42"].version == 1
    assert isinstance(heads["int:42"].entity_id, int)
    assert heads["str:42"].entity_id == "42"
    assert isinstance(heads[f"oid:{OID}"].entity_id, ObjectId)
    assert heads[f"str:{OID}"].entity_id == str(OID)
    assert heads[typed_key(COMPOUND)].entity_id == COMPOUND


async def test_entity_heads_of_the_stream_pseudo_entity(store: Store, log: LogBuilder) -> None:
    await store.events.append([log.next("a"), log.next(None, GAP), log.next(None, GAP)])

    heads = await store.events.entity_heads("orders", [None])

    assert list(heads) == [typed_key(None)]
    assert heads[typed_key(None)].entity_key == STREAM_KEY
    assert heads[typed_key(None)].version == 2


async def test_entity_heads_are_per_stream(store: Store, log: LogBuilder) -> None:
    await store.events.append([log.next(1, stream="orders"), log.next(1, stream="invoices")])
    await store.events.append([log.next(1, stream="invoices")])

    orders = await store.events.entity_heads("orders", [1])
    invoices = await store.events.entity_heads("invoices", [1])

    assert orders["int:1"].version == 1 and orders["int:1"].stream == "orders"
    assert invoices["int:1"].version == 2 and invoices["int:1"].stream == "invoices"


async def test_live_entities_leave_out_deleted_ones_and_the_stream(
    store: Store, log: LogBuilder
) -> None:
    events = [
        log.next("a"),
        log.next(42),
        log.next("42"),
        log.next(42, DELETED),
        log.next(None, GAP),
        log.next("b"),
        log.next("b"),
        log.next("z", stream="invoices"),
        log.next("c"),
        log.next("c", DELETED),
        log.next("c", CREATED),  # re-created after its deletion
    ]
    await store.events.append(events)

    live = await store.events.live_entities("orders")

    assert [(typed_key(h.entity_id), h.version, h.type) for h in live] == [
        ("str:42", 1, "created"),
        ("str:a", 1, "created"),
        ("str:b", 2, "updated"),
        ("str:c", 3, "created"),
    ]
    assert live[2] == head_of(events[6])


async def test_existing_ids_reports_only_stored_ones(store: Store, log: LogBuilder) -> None:
    events = log.many("a", "b")
    await store.events.append(events)

    found = await store.events.existing_ids([events[1].id, "nope", events[0].id])

    assert found == {events[0].id, events[1].id}
    assert await store.events.existing_ids([]) == set()


async def test_events_by_id_returns_the_stored_events_of_the_ids_found(
    store: Store, log: LogBuilder
) -> None:
    events = log.many("a", "b", "c")
    await store.events.append(events)

    found = await store.events.events_by_id([events[2].id, "nope", events[0].id])

    assert found == {events[0].id: events[0], events[2].id: events[2]}
    assert await store.events.events_by_id([]) == {}
    assert await store.events.events_by_id(["nope"]) == {}


async def test_existing_entity_ids_keep_bson_types_apart(store: Store, log: LogBuilder) -> None:
    await store.events.append([log.next(42), log.next(OID), log.next("7", stream="invoices")])

    assert await store.events.existing_entity_ids("orders", candidates("42")) == [42]
    assert await store.events.existing_entity_ids("orders", candidates(str(OID))) == [OID]
    assert await store.events.existing_entity_ids("orders", candidates("7")) == []
    assert await store.events.existing_entity_ids("invoices", candidates("7")) == ["7"]

    await store.events.append([log.next("42")])
    both = await store.events.existing_entity_ids("orders", candidates("42"))
    assert both == ["42", 42]
    assert [type(v) for v in both] == [str, int]
    # each entity once, in the order first asked, however often it is asked
    again = await store.events.existing_entity_ids("orders", [42, "42", 42, OID, "42"])
    assert again == [42, "42", OID]


async def test_int64_and_int_ids_name_the_same_entity(store: Store, log: LogBuilder) -> None:
    await store.events.append([log.next(Int64(5))])

    assert await store.events.existing_entity_ids("orders", [5]) == [5]
    assert (await store.events.entity_heads("orders", [5]))["int:5"].version == 1
    assert [e.version for e in await store.events.read_entity("orders", 5)] == [1]


async def test_an_entity_reads_in_version_order_whatever_order_its_versions_came_in(
    store: Store,
) -> None:
    # The port refuses a version twice, not a version older than the entity's newest:
    # an entity read is in version order all the same, and its head is the newest version.
    v1, v3, v2 = (make_event(seq=n, entity_id=7, version=v) for n, v in ((1, 1), (2, 3), (3, 2)))
    await store.events.append([v1, v3])
    await store.events.append([v2])
    assert [e.version for e in await store.events.read_entity("orders", 7)] == [1, 2, 3]
    (head,) = (await store.events.entity_heads("orders", [7])).values()
    assert head.version == 3


async def test_a_batch_that_is_not_one_run_of_the_log_is_refused_whole(store: Store) -> None:
    first, third = (
        make_event(seq=1, entity_id=1, version=1),
        make_event(seq=3, entity_id=2, version=1),
    )
    with pytest.raises(
        LogConflict, match=r"^batch is not one run of the log: seq 3 follows seq 1$"
    ):
        await store.events.append([first, third])
    assert await store.events.read() == []
