"""The EventLog's audit query, stream statistics, entity listing and wake-on-append,
run over every adapter (memory, mongo on mongomock-motor), the mongo one twice: as capture
leaves it (its listings' index written after each batch) and with no index at all (the
listings read the log; tests/integration/test_log_index.py has every state in between)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

from eventstore.keys import candidates
from eventstore.model import (
    DELETED,
    GAP,
    REPLACED,
    UPDATED,
    EntitySummary,
    Event,
    EventQuery,
    StreamStats,
)
from eventstore.ports import EventLog, Store
from tests.helpers import T0, LogBuilder
from tests.integration.conftest import open_test_store

OID = ObjectId("65f000000000000000000001")


def at(seq: int) -> datetime:
    """The `occurred_at` the helpers give the event with this seq."""
    return T0 + timedelta(seconds=seq)


def audit_log(log: LogBuilder) -> list[Event]:
    """Two streams, three actors, nested and look-alike fields, int 42 and string "42"."""
    return [
        log.next(1, actor="alice"),  # 1
        log.next(42, actor="bob"),  # 2
        log.next("42", actor="alice"),  # 3
        log.next(1, changed_fields=["customer.email"], actor="bob"),  # 4
        log.next(42, changed_fields=["customerNote"], actor="alice"),  # 5
        log.next("c1", stream="customers", actor="alice"),  # 6
        log.next(1, changed_fields=["customer", "status"], actor="alice"),  # 7
        log.next(None, GAP, actor=None),  # 8: the orders stream's $stream pseudo-entity
        log.next("42", changed_fields=["items.0.qty"], actor="carol"),  # 9
        log.next(42, DELETED, actor="bob"),  # 10
        log.next("c1", stream="customers", changed_fields=["customer.name"], actor="bob"),  # 11
        log.next(OID, actor="carol"),  # 12
        log.next("42", REPLACED, changed_fields=["customer.email.verified"], actor="alice"),  # 13
    ]


@pytest.fixture(params=["memory", "mongo", "mongo-indexed"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """A fresh store of each adapter; `mongo-indexed` indexes each batch as capture does."""
    opened = await open_test_store(request.param.removesuffix("-indexed"))
    if request.param.endswith("-indexed"):
        events = opened.events
        append = events.append

        async def append_and_index(batch: Sequence[Event], *, session: Any = None) -> int:
            stored = await append(batch, session=session)
            await events.index_listings(batch)
            return stored

        events.append = append_and_index  # type: ignore[method-assign,assignment]
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def events(store: Store, log: LogBuilder) -> EventLog:
    """The store's event log holding `audit_log`."""
    await store.events.append(audit_log(log))
    return store.events


async def seqs(events: EventLog, q: EventQuery, **kw: Any) -> list[int]:
    return [event.seq for event in await events.query(q, **kw)]


async def walk(events: EventLog, q: EventQuery, *, page: int) -> list[int]:
    """Every match, read in pages of `page` with `after_seq`."""
    found: list[int] = []
    after = 0
    while True:
        batch = await seqs(events, q, after_seq=after, limit=page)
        assert len(batch) <= page
        if not batch:
            return found
        found += batch
        after = batch[-1]


# --- query: each criterion alone, then combined ------------------------------------------------

CRITERIA = [
    pytest.param(EventQuery(), list(range(1, 14)), id="nothing: the whole log"),
    pytest.param(EventQuery(stream="customers"), [6, 11], id="stream"),
    pytest.param(
        EventQuery(stream="orders"), [1, 2, 3, 4, 5, 7, 8, 9, 10, 12, 13], id="stream-with-gap"
    ),
    pytest.param(EventQuery(stream="nowhere"), [], id="unknown-stream"),
    pytest.param(EventQuery(stream="orders", entity_ids=(1,)), [1, 4, 7], id="entity"),
    pytest.param(EventQuery(stream="orders", entity_ids=(42,)), [2, 5, 10], id="int-42"),
    pytest.param(EventQuery(stream="orders", entity_ids=("42",)), [3, 9, 13], id="string-42"),
    pytest.param(
        EventQuery(stream="orders", entity_ids=(42, "42")), [2, 3, 5, 9, 10, 13], id="both-42s"
    ),
    pytest.param(EventQuery(stream="orders", entity_ids=(OID,)), [12], id="object-id"),
    pytest.param(EventQuery(stream="orders", entity_ids=(str(OID),)), [], id="hex-is-not-oid"),
    pytest.param(EventQuery(stream="customers", entity_ids=(1,)), [], id="entity-other-stream"),
    pytest.param(EventQuery(stream="orders", entity_ids=()), [], id="no-entities"),
    pytest.param(EventQuery(types=(UPDATED,)), [4, 5, 7, 9, 11], id="type"),
    pytest.param(EventQuery(types=(DELETED, GAP)), [8, 10], id="types-any-of"),
    pytest.param(EventQuery(types=("unknown",)), [], id="unknown-type"),
    pytest.param(EventQuery(actor="bob"), [2, 4, 10, 11], id="actor"),
    pytest.param(EventQuery(actor="nobody"), [], id="unknown-actor"),
    # 10 is a deletion: it removes every field, so it matches every field.
    pytest.param(EventQuery(field="customer"), [4, 7, 10, 11, 13], id="field-and-beneath"),
    # 7 set `customer` whole: it changed `customer.email` too.
    pytest.param(EventQuery(field="customer.email"), [4, 7, 10, 13], id="nested-field"),
    # 13 is a replace: it writes the whole document over, so it matches every field (its
    # changed_fields are the new document's and cannot name what it removed).
    pytest.param(EventQuery(field="customerNote"), [5, 10, 13], id="look-alike-field"),
    pytest.param(EventQuery(field="items"), [9, 10, 13], id="array-path"),
    pytest.param(EventQuery(field="items.0"), [9, 10, 13], id="array-index-path"),
    pytest.param(EventQuery(field="cust", until=at(10)), [], id="a-prefix-is-not-a-path"),
    pytest.param(
        EventQuery(field="customer.e", until=at(7)), [], id="a-nested-prefix-is-not-a-path"
    ),
    pytest.param(EventQuery(field="nowhere"), [10, 13], id="a-replace-matches-every-field"),
    pytest.param(EventQuery(since=at(11)), [11, 12, 13], id="since-inclusive"),
    pytest.param(EventQuery(until=at(3)), [1, 2], id="until-exclusive"),
    pytest.param(EventQuery(since=at(3), until=at(6)), [3, 4, 5], id="time-window"),
    pytest.param(EventQuery(since=at(6), until=at(6)), [], id="empty-window"),
    pytest.param(
        EventQuery(since=at(3) + timedelta(microseconds=1)), list(range(4, 14)), id="since-sub-ms"
    ),
    pytest.param(EventQuery(until=at(3) + timedelta(microseconds=1)), [1, 2, 3], id="until-sub-ms"),
    pytest.param(EventQuery(since=at(3).replace(tzinfo=None), until=at(5)), [3, 4], id="naive"),
    # Combined: every criterion must hold.
    pytest.param(EventQuery(stream="orders", field="customer"), [4, 7, 10, 13], id="stream+field"),
    pytest.param(EventQuery(actor="alice", field="customer"), [7, 13], id="actor+field"),
    pytest.param(EventQuery(actor="bob", types=(UPDATED,)), [4, 11], id="actor+type"),
    pytest.param(
        EventQuery(stream="orders", entity_ids=(1, 42), actor="bob"), [2, 4, 10], id="entity+actor"
    ),
    pytest.param(
        EventQuery(stream="orders", entity_ids=("42",), types=(UPDATED, REPLACED), field="items"),
        [9, 13],
        id="entity+types+field",
    ),
    pytest.param(
        EventQuery(field="customer", since=at(5), until=at(13)), [7, 10, 11], id="field+window"
    ),
    pytest.param(
        EventQuery(
            stream="orders",
            entity_ids=(1, 42, "42", OID),
            types=(UPDATED,),
            field="customer",
            actor="alice",
            since=at(2),
            until=at(10),
        ),
        [7],
        id="everything",
    ),
    pytest.param(EventQuery(stream="customers", actor="carol"), [], id="disjoint"),
]


@pytest.mark.parametrize(("q", "expected"), CRITERIA)
async def test_query_matches_every_criterion_in_seq_order(
    events: EventLog, q: EventQuery, expected: list[int]
) -> None:
    assert await seqs(events, q) == expected


@pytest.mark.parametrize(("q", "expected"), CRITERIA)
async def test_paging_with_after_seq_reads_every_match_once(
    events: EventLog, q: EventQuery, expected: list[int]
) -> None:
    assert await walk(events, q, page=2) == expected
    assert await walk(events, q, page=1) == expected


async def test_query_returns_the_stored_events(store: Store, log: LogBuilder) -> None:
    stored = audit_log(log)
    await store.events.append(stored)

    found = await store.events.query(EventQuery(stream="orders", entity_ids=("42",)))

    assert found == [stored[2], stored[8], stored[12]]
    assert [type(e.entity_id) for e in found] == [str, str, str]


async def test_query_starts_after_after_seq_and_stops_at_limit(events: EventLog) -> None:
    q = EventQuery(stream="orders")
    assert await seqs(events, q, limit=3) == [1, 2, 3]
    assert await seqs(events, q, after_seq=5, limit=3) == [7, 8, 9]
    assert await seqs(events, q, after_seq=6, limit=3) == [7, 8, 9]
    assert await seqs(events, q, after_seq=13) == []
    assert await seqs(events, q, after_seq=99) == []
    assert await seqs(events, q, limit=0) == []
    assert await seqs(events, EventQuery(field="customer"), after_seq=4, limit=1) == [7]


async def test_query_by_entity_needs_the_stream(events: EventLog) -> None:
    with pytest.raises(ValueError, match="stream"):
        await events.query(EventQuery(entity_ids=(1,)))


async def test_an_empty_log_answers_empty(store: Store) -> None:
    assert await store.events.query(EventQuery()) == []
    assert await store.events.query(EventQuery(stream="orders", field="status")) == []
    assert await store.events.streams() == []
    assert await store.events.entities("orders", limit=10) == []


async def test_a_query_sees_events_appended_after_a_first_page(
    store: Store, log: LogBuilder
) -> None:
    await store.events.append([log.next("a", actor="x"), log.next("b", actor="y")])
    q = EventQuery(actor="x")
    first = await seqs(store.events, q)
    await store.events.append([log.next("a", actor="x"), log.next("c", actor="x")])

    assert first == [1]
    assert await seqs(store.events, q, after_seq=first[-1]) == [3, 4]


# --- streams -------------------------------------------------------------------------------------


async def test_streams_count_entities_and_events_by_name(events: EventLog) -> None:
    assert await events.streams() == [
        StreamStats(stream="customers", entities=1, events=2, last_seq=11, last_event_at=at(11)),
        # 1, 42 (deleted, still an entity), "42", OID; the gap counts as an event only.
        StreamStats(stream="orders", entities=4, events=11, last_seq=13, last_event_at=at(13)),
    ]


async def test_streams_follow_appends(store: Store, log: LogBuilder) -> None:
    await store.events.append([log.next(None, GAP, stream="zeta")])
    assert await store.events.streams() == [
        StreamStats(stream="zeta", entities=0, events=1, last_seq=1, last_event_at=at(1))
    ]

    await store.events.append(
        [log.next("a", stream="alpha"), log.next("a", stream="zeta"), log.next("a", stream="zeta")]
    )

    assert await store.events.streams() == [
        StreamStats(stream="alpha", entities=1, events=1, last_seq=2, last_event_at=at(2)),
        StreamStats(stream="zeta", entities=1, events=3, last_seq=4, last_event_at=at(4)),
    ]


# --- entities ------------------------------------------------------------------------------------


def summary(event: Event, *, exists: bool) -> EntitySummary:
    return EntitySummary(
        entity_key=event.entity_key,
        entity_id=event.entity_id,
        version=event.version,
        exists=exists,
        last_type=event.type,
        last_event_at=event.occurred_at,
        last_seq=event.seq,
    )


async def test_entities_newest_change_first_with_their_state(store: Store, log: LogBuilder) -> None:
    stored = audit_log(log)
    await store.events.append(stored)

    listed = await store.events.entities("orders", limit=10)

    # "42" (13, replaced), OID (12), 42 (10, deleted), 1 (7); never the gap's $stream.
    assert listed == [
        summary(stored[12], exists=True),
        summary(stored[11], exists=True),
        summary(stored[9], exists=False),
        summary(stored[6], exists=True),
    ]
    assert [type(s.entity_id) for s in listed] == [str, ObjectId, int, int]
    assert [s.version for s in listed] == [3, 1, 3, 3]
    assert await store.events.entities("customers", limit=10) == [summary(stored[10], exists=True)]
    assert await store.events.entities("nowhere", limit=10) == []
    assert await store.events.entities("orders", limit=0) == []


@pytest.mark.parametrize("page", [1, 2, 3, 4, 5])
async def test_entities_pages_list_every_entity_once(events: EventLog, page: int) -> None:
    listed: list[EntitySummary] = []
    before: int | None = None
    while True:
        batch = await events.entities("orders", limit=page, before_seq=before)
        assert len(batch) <= page
        if not batch:
            break
        listed += batch
        before = batch[-1].last_seq

    assert [s.last_seq for s in listed] == [13, 12, 10, 7]
    assert [s.entity_id for s in listed] == ["42", OID, 42, 1]


async def test_entities_before_a_seq_that_is_not_a_newest_one(events: EventLog) -> None:
    listed = await events.entities("orders", limit=10, before_seq=9)

    assert [s.last_seq for s in listed] == [7]  # 42 and "42" changed after seq 9


async def test_an_entity_moves_to_the_front_when_it_changes(store: Store, log: LogBuilder) -> None:
    await store.events.append(log.many("a", "b", "c"))
    await store.events.append([log.next("a", DELETED), log.next("b")])

    listed = await store.events.entities("orders", limit=10)

    assert [(s.entity_key, s.last_seq, s.last_type, s.exists) for s in listed] == [
        ("b", 5, UPDATED, True),
        ("a", 4, DELETED, False),
        ("c", 3, "created", True),
    ]


async def test_a_listed_key_names_its_entity_when_given_back(store: Store, log: LogBuilder) -> None:
    # A string `_id` that reads as a typed key is listed by its typed key: given back, its
    # own text names another value (the integer 5) or none (no such ObjectId).
    hex24 = "650000000000000000000003"
    ids: list[Any] = ["int:5", 5, f"oid:{hex24}", "json:{}", "str:x", "plain", ObjectId(hex24)]
    await store.events.append(log.many(*ids))
    listed = await store.events.entities("orders", limit=10)
    assert [(s.entity_id, s.entity_key) for s in reversed(listed)] == [
        ("int:5", "str:int:5"),
        (5, "5"),
        (f"oid:{hex24}", f"str:oid:{hex24}"),
        ("json:{}", "str:json:{}"),
        ("str:x", "str:str:x"),
        ("plain", "plain"),
        (ObjectId(hex24), hex24),
    ]
    # Each names its own entity and no other stored one (the string "int:5" is not 5).
    stored = {(type(i), i) for i in ids}
    for s in listed:
        named = {(type(c), c) for c in candidates(s.entity_key)} & stored
        assert named == {(type(s.entity_id), s.entity_id)}


# --- wait_for_append -----------------------------------------------------------------------------


async def test_wait_returns_at_once_when_the_log_is_past_the_position(
    store: Store, log: LogBuilder
) -> None:
    await store.events.append(log.many("a", "b"))

    async with asyncio.timeout(1):
        assert await store.events.wait_for_append(0, 10) is True
        assert await store.events.wait_for_append(1, 10) is True
        assert await store.events.wait_for_append(1, 0) is True


async def test_wait_wakes_on_an_append_during_the_wait(store: Store, log: LogBuilder) -> None:
    await store.events.append([log.next("a")])
    waiting = asyncio.create_task(store.events.wait_for_append(1, 10))
    await asyncio.sleep(0.02)
    assert not waiting.done()

    await store.events.append([log.next("b")])

    async with asyncio.timeout(2):  # well before the wait's own 10 s
        assert await waiting is True


async def test_wait_gives_up_after_the_timeout(store: Store, log: LogBuilder) -> None:
    await store.events.append([log.next("a")])
    loop = asyncio.get_running_loop()
    started = loop.time()

    assert await store.events.wait_for_append(1, 0.05) is False
    assert await store.events.wait_for_append(5, 0) is False

    assert 0.04 <= loop.time() - started < 2


async def test_an_append_short_of_the_position_does_not_end_the_wait(
    store: Store, log: LogBuilder
) -> None:
    await store.events.append([log.next("a")])
    waiting = asyncio.create_task(store.events.wait_for_append(2, 0.3))
    await asyncio.sleep(0.02)

    await store.events.append([log.next("b")])  # seq 2: not past 2
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await store.events.append([log.next("c")])

    async with asyncio.timeout(2):
        assert await waiting is True


async def test_several_waiters_all_wake(store: Store, log: LogBuilder) -> None:
    waiting = [asyncio.create_task(store.events.wait_for_append(0, 10)) for _ in range(3)]
    await asyncio.sleep(0.02)

    await store.events.append([log.next("a")])

    async with asyncio.timeout(2):
        assert await asyncio.gather(*waiting) == [True, True, True]
