"""The memory event log's query indexes: what a query costs, and answers equal to a plain scan."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from bson import Int64, ObjectId
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from eventstore.keys import typed_key
from eventstore.memory.eventlog import MemoryEventLog, field_prefixes
from eventstore.model import (
    DELETED,
    GAP,
    LIVE_TYPES,
    REPLACED,
    STREAM_KEY,
    UPDATED,
    EntitySummary,
    Event,
    EventQuery,
    StreamStats,
)
from tests.helpers import T0, LogBuilder

SIZE = 3000
RARE_EVERY = 1000  # seq 500, 1500, 2500


def at(seq: int) -> Any:
    return T0 + timedelta(seconds=seq)


@pytest.fixture(scope="module")
def busy_log() -> MemoryEventLog:
    """3,000 events: one hot entity updated by a bot, and three rare events in another stream."""
    builder = LogBuilder()
    events: list[Event] = []
    for seq in range(1, SIZE + 1):
        if seq % RARE_EVERY == RARE_EVERY // 2:
            events.append(
                builder.next(
                    f"refund-{seq}",
                    stream="refunds",
                    actor="auditor",
                    changed_fields=["customer.email"],
                )
            )
        else:
            events.append(builder.next("hot", actor="bot"))
    log = MemoryEventLog()
    asyncio.run(log.append(events))
    return log


@pytest.mark.parametrize(
    ("q", "after_seq", "limit", "returned", "most_examined"),
    [
        pytest.param(EventQuery(actor="auditor"), 0, 100, 3, 3, id="actor"),
        pytest.param(EventQuery(stream="refunds"), 0, 100, 3, 3, id="stream"),
        pytest.param(EventQuery(field="customer"), 0, 100, 3, 3, id="field-prefix"),
        pytest.param(EventQuery(field="customer.email"), 0, 100, 3, 3, id="field"),
        pytest.param(
            EventQuery(stream="refunds", entity_ids=("refund-1500",)), 0, 100, 1, 1, id="entity"
        ),
        pytest.param(EventQuery(types=("created",)), 0, 100, 4, 4, id="type"),
        pytest.param(EventQuery(types=(DELETED,)), 0, 100, 0, 0, id="absent-type"),
        # The bot's 2,997 events are not read to find the three with the field.
        pytest.param(EventQuery(actor="bot", field="customer"), 0, 100, 0, 3, id="intersection"),
        pytest.param(EventQuery(since=at(1200), until=at(1210)), 0, 100, 10, 10, id="time-window"),
        pytest.param(
            EventQuery(stream="orders", since=at(1495), until=at(1505)),
            0,
            100,
            9,
            10,
            id="time-window-and-stream",
        ),
        pytest.param(EventQuery(since=at(2995)), 0, 100, 6, 6, id="since-only"),
        pytest.param(EventQuery(until=at(4)), 0, 100, 3, 3, id="until-only"),
        pytest.param(EventQuery(actor="bot"), 2900, 5, 5, 5, id="deep-page"),
        pytest.param(EventQuery(stream="orders"), 2495, 10, 10, 10, id="deep-page-in-a-stream"),
        pytest.param(EventQuery(), 1000, 10, 10, 10, id="no-criteria-is-bounded-by-limit"),
    ],
)
async def test_a_query_examines_what_it_returns_not_the_log(
    busy_log: MemoryEventLog,
    q: EventQuery,
    after_seq: int,
    limit: int,
    returned: int,
    most_examined: int,
) -> None:
    before = busy_log.examined

    found = await busy_log.query(q, after_seq=after_seq, limit=limit)

    assert len(found) == returned
    # every event returned was examined, and not many more
    assert returned <= busy_log.examined - before <= most_examined


async def test_a_time_window_stays_an_index_lookup_when_time_goes_back() -> None:
    builder = LogBuilder()
    log = MemoryEventLog()
    # seq 1..1000 at T0 + seq s, then one event stamped back at T0 + 10 s.
    await log.append([builder.next(i) for i in range(1, 1001)])
    await log.append([builder.next("late", occurred_at=at(10))])
    before = log.examined

    found = await log.query(EventQuery(since=at(10), until=at(12)))

    assert [e.seq for e in found] == [10, 11, 1001]
    assert log.examined - before <= 3


async def test_a_time_slice_is_read_only_when_it_is_the_shorter_list() -> None:
    builder = LogBuilder()
    log = MemoryEventLog()
    # seq 1..1000 by a bot at T0 + seq s, then eve's one event stamped back at T0 + 10 s.
    await log.append([builder.next(i, actor="bot") for i in range(1, 1001)])
    await log.append([builder.next("late", actor="eve", occurred_at=at(10))])

    def examined(found: list[Event], most: int) -> list[int]:
        assert log.examined - before <= most
        return [e.seq for e in found]

    before = log.examined
    # A narrow slice far along the time list: 3 entries, read instead of the 1,001 seqs.
    found = await log.query(EventQuery(since=at(900), until=at(903)))
    assert examined(found, 3) == [900, 901, 902]
    before = log.examined
    # A wide slice (895 entries) against eve's one event: her list is read.
    found = await log.query(EventQuery(actor="eve", since=at(5), until=at(900)))
    assert examined(found, 1) == [1001]
    before = log.examined
    # Only an upper bound: the slice starts at the earliest time, whatever its seq.
    found = await log.query(EventQuery(until=at(3)))
    assert examined(found, 2) == [1, 2]


async def test_of_two_lists_the_one_with_fewer_seqs_in_the_window_is_read() -> None:
    builder = LogBuilder()
    log = MemoryEventLog()
    # orders: 900 events by a bot, then 10 by eve; eve's 20 refunds come in between.
    await log.append([builder.next(i, actor="bot") for i in range(1, 901)])
    await log.append([builder.next(f"r{i}", actor="eve", stream="refunds") for i in range(20)])
    await log.append([builder.next(i, actor="eve") for i in range(1, 11)])
    before = log.examined
    # After seq 900, orders holds 10 seqs and eve's list 30: orders is read, though far more
    # of its seqs lie before the window.
    found = await log.query(EventQuery(stream="orders", actor="eve"), after_seq=900)
    assert [e.seq for e in found] == list(range(921, 931))
    assert log.examined - before <= 10


async def test_every_criterion_holds_whichever_list_a_query_reads() -> None:
    builder = LogBuilder()
    events = [
        builder.next("a", actor="alice", occurred_at=at(1)),
        *(builder.next("a", UPDATED, actor="alice", occurred_at=at(t)) for t in range(2, 7)),
        builder.next("b", actor="bob", occurred_at=at(7)),
        builder.next("b", DELETED, actor="bob", occurred_at=at(8)),  # seq 8
        *(builder.next("c", actor="bob", occurred_at=at(t)) for t in range(9, 31)),
        builder.next("a", DELETED, actor="alice", occurred_at=at(3)),  # seq 31: time goes back
        builder.next("d", actor="alice", occurred_at=at(40)),  # seq 32
    ]
    log = MemoryEventLog()
    await log.append(events)
    cases = [
        # the deleted list (seq 8, 31) is read: b's deletion is not a's
        (EventQuery(stream="orders", entity_ids=("a",), types=(DELETED,)), [31]),
        # alice's list (8 seqs) is read, not the 28-entry time slice: t < 5 is left out
        (EventQuery(actor="alice", since=at(5)), [5, 6, 32]),
        # alice's list again: t >= 25 is left out, and t == 40 (the bound itself) too
        (EventQuery(actor="alice", until=at(25)), [1, 2, 3, 4, 5, 6, 31]),
        (EventQuery(actor="alice", until=at(40)), [1, 2, 3, 4, 5, 6, 31]),
    ]
    for q, expected in cases:
        assert scan(events, q) == expected, q
        assert [e.seq for e in await log.query(q)] == expected, q


async def test_a_query_returns_100_matches_unless_told_and_an_entity_needs_its_stream() -> None:
    builder = LogBuilder()
    log = MemoryEventLog()
    await log.append([builder.next(i) for i in range(1, 151)])
    assert [e.seq for e in await log.query(EventQuery())] == list(range(1, 101))
    with pytest.raises(ValueError, match=r"^an audit query by entity needs the stream$"):
        await log.query(EventQuery(entity_ids=(1,)))


def test_an_append_wakes_a_wait_on_another_threads_loop() -> None:
    """A reader may run on another loop (a test client's portal thread): it is woken all the same."""
    log = MemoryEventLog()
    builder = LogBuilder()
    outcome: list[tuple[bool, float]] = []

    def reader() -> None:
        async def wait() -> None:
            loop = asyncio.get_running_loop()
            started = loop.time()
            woken = await log.wait_for_append(0, 10)
            outcome.append((woken, loop.time() - started))

        asyncio.run(wait())

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(500):  # until the reader waits
            if log._waiters:
                break
            time.sleep(0.002)
        assert log._waiters, "the reader never waited"
        asyncio.run(log.append([builder.next("a")]))
    finally:
        thread.join(10)

    assert outcome and outcome[0][0] is True
    assert outcome[0][1] < 5  # woken by the append, long before the 10 s timeout


async def test_an_append_while_a_wait_registers_is_seen_at_once() -> None:
    """An append by another thread between the wait's first check and its registration wakes
    nobody: the wait checks again once registered and reports it, without sleeping."""
    log = MemoryEventLog()
    builder = LogBuilder()
    inner = log._waiters_lock
    pending = [builder.next("a")]

    class AppendingFirst:
        """The waiters' lock; just before its first use an append lands, as another thread's could."""

        def __enter__(self) -> None:
            if pending:
                batch = pending.copy()
                pending.clear()
                coro = log.append(batch)
                with pytest.raises(StopIteration):  # no await inside append: it completes
                    coro.send(None)
            inner.__enter__()

        def __exit__(self, *exc: object) -> None:
            inner.release()

    log._waiters_lock = AppendingFirst()  # type: ignore[assignment]
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await log.wait_for_append(0, 5) is True
    assert loop.time() - started < 2.5  # not the timeout
    assert not log._waiters  # and nothing left registered


async def test_waits_that_time_out_leave_nothing_registered() -> None:
    log = MemoryEventLog()
    for _ in range(3):
        assert await log.wait_for_append(0, 0.01) is False
    assert not log._waiters  # each wait removed its own future: an idle log does not grow


def test_field_prefixes_are_the_path_and_every_path_above_it() -> None:
    assert field_prefixes(["a.b.c", "a.x", "items.0"]) == {
        "a",
        "a.b",
        "a.b.c",
        "a.x",
        "items",
        "items.0",
    }
    assert field_prefixes([]) == set()
    assert field_prefixes(["a.b.c.d"]) == {"a", "a.b", "a.b.c", "a.b.c.d"}
    # A field may be named "" (MongoDB allows it): `a..b` is `b` in the field "" of `a`,
    # beneath `a.` as well, which the mongo adapter's `^a\.(\.|$)` finds too.
    assert field_prefixes(["a..b", "c."]) == {"a", "a.", "a..b", "c", "c."}


# --- the same answers as a scan of the whole log, on random logs ---------------------------------

STREAMS = ("orders", "refunds")
ENTITIES: tuple[Any, ...] = (1, "1", 2, "b", None)  # None: a gap, the `$stream` pseudo-entity
FIELDS = ("x", "x.y", "x.y.z", "xy", "w.0", "w", "w..0")
# Besides strings, actors a document may hold: numbers (one value three ways), a boolean
# (never the number 1), an ObjectId (never its hex as a string).
OID = ObjectId("65f000000000000000000001")
ACTORS: tuple[Any, ...] = ("alice", "bob", None, 42, Int64(42), 42.0, "42", 7.5, True, 1, OID)
ACTOR_TEXTS = ("alice", "bob", "42", "42.0", "7.5", "true", "1", str(OID))

step = st.tuples(
    st.sampled_from(STREAMS),
    st.sampled_from(ENTITIES),
    st.sampled_from((UPDATED, DELETED, REPLACED)),
    st.sampled_from(ACTORS),
    st.lists(st.sampled_from(FIELDS), max_size=3, unique=True),
    st.integers(-5, 30),  # seconds from the previous event: time may go back
)
query = st.builds(
    EventQuery,
    stream=st.none() | st.sampled_from(STREAMS),
    types=st.lists(st.sampled_from(("created", UPDATED, DELETED, GAP)), max_size=2).map(tuple),
    field=st.none() | st.sampled_from((*FIELDS, "x.y.", "w.")),
    actor=st.none() | st.sampled_from(ACTOR_TEXTS),
    since=st.none() | st.integers(0, 600).map(lambda s: T0 + timedelta(seconds=s)),
    until=st.none() | st.integers(0, 600).map(lambda s: T0 + timedelta(seconds=s)),
)


def build(steps: list[tuple[Any, ...]]) -> list[Event]:
    builder = LogBuilder()
    events: list[Event] = []
    seconds = 0
    for stream, entity, kind, actor, fields, delta in steps:
        seconds = max(seconds + delta, 0)
        key = (stream, typed_key(entity))
        first = entity is not None and key not in {
            (e.stream, typed_key(e.entity_id)) for e in events
        }
        events.append(
            builder.next(
                entity,
                GAP if entity is None else (None if first else kind),
                stream=stream,
                actor=actor,
                changed_fields=fields,
                occurred_at=T0 + timedelta(seconds=seconds),
            )
        )
    return events


def named(text: str, actor: Any) -> bool:
    """The plain meaning of `actor=text`, for the values these tests record."""
    if isinstance(actor, bool):
        return text == str(actor).lower()
    if isinstance(actor, int | float):
        return re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text) is not None and float(text) == actor
    if isinstance(actor, ObjectId):
        return text == str(actor)
    return isinstance(actor, str) and actor == text


def scan(events: list[Event], q: EventQuery) -> list[int]:
    """The plain meaning of an audit query, read off every event."""

    def related(path: str, field: str) -> bool:
        """`path` is `field`, beneath it, or above it (on whole segments)."""
        mine, wanted = path.split("."), field.split(".")
        shortest = min(len(mine), len(wanted))
        return mine[:shortest] == wanted[:shortest]

    return [
        e.seq
        for e in events
        if (q.stream is None or e.stream == q.stream)
        and (q.entity_ids is None or typed_key(e.entity_id) in {typed_key(i) for i in q.entity_ids})
        and (not q.types or e.type in q.types)
        and (
            q.field is None
            # a whole document written over or removed: any field
            or e.type in ("replaced", "snapshot", "deleted")
            or any(related(p, q.field) for p in e.changed_fields)
        )
        and (q.actor is None or named(q.actor, e.actor))
        and (q.since is None or e.occurred_at >= q.since)
        and (q.until is None or e.occurred_at < q.until)
    ]


@hsettings(max_examples=150, deadline=None)
@given(
    steps=st.lists(step, max_size=60),
    queries=st.lists(query, min_size=1, max_size=5),
    entity_ids=st.none() | st.lists(st.sampled_from(ENTITIES[:-1]), max_size=2).map(tuple),
    page=st.integers(1, 7),
)
def test_queries_answer_what_a_scan_answers(
    steps: list[tuple[Any, ...]],
    queries: list[EventQuery],
    entity_ids: tuple[Any, ...] | None,
    page: int,
) -> None:
    events = build(steps)

    async def check() -> None:
        log = MemoryEventLog()
        half = len(events) // 2  # two appends: the indexes grow across batches
        await log.append(events[:half])
        await log.append(events[half:])
        for q in queries:
            if entity_ids is not None and q.stream is not None:
                q = EventQuery(**{**_fields(q), "entity_ids": entity_ids})
            found: list[int] = []
            after = 0
            while batch := await log.query(q, after_seq=after, limit=page):
                found += [e.seq for e in batch]
                after = batch[-1].seq
            assert found == scan(events, q), q

    asyncio.run(check())


@hsettings(max_examples=150, deadline=None)
@given(steps=st.lists(step, max_size=60), page=st.integers(1, 7))
def test_streams_and_entities_answer_what_a_scan_answers(
    steps: list[tuple[Any, ...]], page: int
) -> None:
    events = build(steps)

    async def check() -> None:
        log = MemoryEventLog()
        for event in events:
            await log.append([event])
        assert await log.streams() == scan_streams(events)
        for stream in STREAMS:
            listed: list[EntitySummary] = []
            before: int | None = None
            while batch := await log.entities(stream, limit=page, before_seq=before):
                listed += batch
                before = batch[-1].last_seq
            assert listed == scan_entities(events, stream)

    asyncio.run(check())


def scan_streams(events: list[Event]) -> list[StreamStats]:
    stats: list[StreamStats] = []
    for stream in sorted({e.stream for e in events}):
        mine = [e for e in events if e.stream == stream]
        keys = {typed_key(e.entity_id) for e in mine if e.entity_key != STREAM_KEY}
        stats.append(
            StreamStats(
                stream=stream,
                entities=len(keys),
                events=len(mine),
                last_seq=mine[-1].seq,
                last_event_at=mine[-1].occurred_at,
            )
        )
    return stats


def scan_entities(events: list[Event], stream: str) -> list[EntitySummary]:
    newest: dict[str, Event] = {}
    for e in events:
        if e.stream == stream and e.entity_key != STREAM_KEY:
            newest[typed_key(e.entity_id)] = e
    return [
        EntitySummary(
            entity_key=e.entity_key,
            entity_id=e.entity_id,
            version=e.version,
            exists=e.type in LIVE_TYPES,
            last_type=e.type,
            last_event_at=e.occurred_at,
            last_seq=e.seq,
        )
        for e in sorted(newest.values(), key=lambda e: -e.seq)
    ]


def _fields(q: EventQuery) -> dict[str, Any]:
    return {name: getattr(q, name) for name in q.__struct_fields__}


async def test_entities_of_every_stream_size_up_to_40_list_every_entity_newest_first() -> None:
    """The k-th newest entity is found at every position, stream sizes on and off powers of two."""
    for size in range(1, 41):
        log = MemoryEventLog()
        builder = LogBuilder()
        events = [builder.next(n) for n in range(size)]
        # the first entity changes last: its newest event moves to the end
        events.append(builder.next(0))
        await log.append(events)
        listed = await log.entities("orders", limit=size)
        assert [e.entity_key for e in listed] == ["0", *(str(n) for n in range(size - 1, 0, -1))]
        assert [e.last_seq for e in listed] == [size + 1, *range(size, 1, -1)]
