"""The audit query's `field` and `actor`, as a subscription filter reads them, on every adapter.

`field=P` lists an event when one of its changed fields is P, lies beneath P or
lies above it (set whole), and every event that writes or removes the whole
document (replaced, snapshot, deleted, inferred deletions too). `actor=T` lists
the actor T spells: the string, and the number (by value), ObjectId or boolean.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from bson import Decimal128, Int64, ObjectId

from eventstore.clock import FakeClock
from eventstore.model import DELETED, GAP, SNAPSHOT, UPDATED, Event, EventQuery
from eventstore.ports import EventLog, Store
from eventstore.sources.memory import MemoryChangeFeed
from tests.helpers import T0, LogBuilder
from tests.integration.ingest_helpers import all_events, ingester, start_from_the_beginning

OID = ObjectId("65f000000000000000000001")


async def seqs(events: EventLog, q: EventQuery, **kw: Any) -> list[int]:
    return [event.seq for event in await events.query(q, **kw)]


async def walk(events: EventLog, q: EventQuery, *, page: int) -> list[int]:
    """Every match, read in pages of `page` with `after_seq`."""
    found: list[int] = []
    while batch := await seqs(events, q, after_seq=found[-1] if found else 0, limit=page):
        assert len(batch) <= page
        found += batch
    return found


async def assert_answers(events: EventLog, q: EventQuery, expected: list[int]) -> None:
    """The whole answer, and the same read in pages of 1, 2 and 3: each match once, in order."""
    assert await seqs(events, q) == expected, q
    for page in (1, 2, 3):
        assert await walk(events, q, page=page) == expected, (q, page)


# --- field: captured changes -------------------------------------------------------------------


async def capture_customers(store: Store) -> list[Event]:
    """Changes of two orders, captured by the ingester: who changed `customer.name`?"""
    clock = FakeClock()
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    orders = feed.collection("orders")
    steps: list[tuple[str, Any]] = [
        ("insert", {"_id": "o1", "customer": {"name": "Ann", "email": "a@x"}, "status": "new"}),
        ("insert", {"_id": "o2", "status": "new"}),  # no customer at all
        ("set", ("o1", {"customer": {"name": "Bob", "email": "a@x"}})),  # above: set whole
        ("set", ("o1", {"customer.email": "b@x"})),  # a sibling
        ("set", ("o1", {"status": "paid"})),  # unrelated
        ("set", ("o1", {"customer.name": "Cy"})),  # the path itself
        ("unset", ("o1", {"customer.name": ""})),  # removed
        ("set", ("o2", {"customer.name.first": "Di"})),  # beneath
        ("delete", "o2"),  # removes every field
        ("replace", ("o1", {"status": "paid"})),  # writes the whole document over
        ("delete", "o1"),
    ]
    for kind, arg in steps:
        clock.advance(1)
        if kind == "insert":
            await orders.insert_one(arg)
        elif kind == "set":
            await orders.update_one({"_id": arg[0]}, {"$set": arg[1]})
        elif kind == "unset":
            await orders.update_one({"_id": arg[0]}, {"$unset": arg[1]})
        elif kind == "replace":
            await orders.replace_one({"_id": arg[0]}, arg[1])
        else:
            await orders.delete_one({"_id": arg})
    await ingester(store, feed, clock).run(until_idle=True)
    events = await all_events(store)
    assert len(events) == len(steps)
    return events


async def test_a_captured_field_is_found_where_it_was_set_above_inserted_or_deleted(
    store: Store,
) -> None:
    events = await capture_customers(store)
    # The capture's own record of each: the insert names the top-level fields, the update
    # of `customer` the ancestor, the deletions nothing.
    assert events[0].changed_fields[:2] == ["_id", "customer"]
    assert events[2].changed_fields == ["customer"]
    assert [events[8].type, events[8].changed_fields] == [DELETED, []]
    by_step = {e.seq: i + 1 for i, e in enumerate(events)}

    found = await store.events.query(EventQuery(field="customer.name"))

    # Steps 1 (the insert of `customer`), 3 (`customer` set whole), 9 and 11 (deletions)
    # were missed before; 2 (an insert without it), 4 (a sibling) and 5 never match.
    assert [by_step[e.seq] for e in found] == [1, 3, 6, 7, 8, 9, 10, 11]
    assert [(e.entity_id, e.version, e.type) for e in found] == [
        ("o1", 1, "created"),
        ("o1", 2, UPDATED),
        ("o1", 5, UPDATED),
        ("o1", 6, UPDATED),
        ("o2", 2, UPDATED),
        ("o2", 3, DELETED),
        ("o1", 7, "replaced"),
        ("o1", 8, DELETED),
    ]
    seq = {step: e.seq for e, step in ((e, by_step[e.seq]) for e in events)}
    await assert_answers(
        store.events,
        EventQuery(field="customer.name"),
        [seq[s] for s in (1, 3, 6, 7, 8, 9, 10, 11)],
    )
    # The parent: the paths beneath it, the insert, the deletions, the replace.
    await assert_answers(
        store.events,
        EventQuery(field="customer"),
        [seq[s] for s in (1, 3, 4, 6, 7, 8, 9, 10, 11)],
    )
    # Combined with the other criteria, every one holds.
    await assert_answers(
        store.events,
        EventQuery(stream="orders", entity_ids=("o2",), field="customer.name"),
        [seq[8], seq[9]],
    )
    await assert_answers(
        store.events,
        EventQuery(types=(DELETED,), field="customer.name.first"),
        [seq[9], seq[11]],
    )
    await assert_answers(
        store.events,
        EventQuery(field="customer.name", since=events[2].occurred_at, until=events[8].occurred_at),
        [seq[3], seq[6], seq[7], seq[8]],
    )


# --- field: every kind of event ----------------------------------------------------------------


def field_log(log: LogBuilder) -> list[Event]:
    """Changes related and unrelated to `customer.name`, in two streams."""
    return [
        log.next("o1", changed_fields=["_id", "customer", "status"], actor="alice"),  # 1 insert
        log.next("o1", changed_fields=["customer"], actor="bob"),  # 2 above
        log.next("o1", changed_fields=["customer", "customer.name"], actor="alice"),  # 3 both
        log.next("o1", changed_fields=["customer.name.first"], actor="bob"),  # 4 beneath
        log.next("o1", changed_fields=["customer.email"], actor="bob"),  # 5 sibling
        log.next("o1", changed_fields=["customerNote"], actor="bob"),  # 6 look-alike
        log.next("o2", changed_fields=["_id", "status"], actor="carol"),  # 7 insert without
        log.next("o2", DELETED, changed_fields=[], inferred=True, actor=None),  # 8 inferred
        log.next(None, GAP, actor=None),  # 9 a stream event
        log.next("o3", SNAPSHOT, changed_fields=["_id", "status"], actor=None),  # 10
        log.next("c1", stream="customers", changed_fields=["name"], actor="bob"),  # 11
        log.next("o1", DELETED, changed_fields=[], actor="bob"),  # 12
    ]


FIELD_CASES = [
    pytest.param(EventQuery(field="customer.name"), [1, 2, 3, 4, 8, 10, 12], id="ancestors"),
    pytest.param(
        EventQuery(field="customer.name.first.initial"),
        [1, 2, 3, 4, 8, 10, 12],
        id="every-ancestor-level",
    ),
    pytest.param(EventQuery(field="customer"), [1, 2, 3, 4, 5, 8, 10, 12], id="parent"),
    pytest.param(EventQuery(field="status"), [1, 7, 8, 10, 12], id="inserts-and-deletes"),
    pytest.param(EventQuery(field="name"), [8, 10, 11, 12], id="other-stream"),
    pytest.param(EventQuery(field="cust"), [8, 10, 12], id="a-prefix-is-not-a-path"),
    pytest.param(EventQuery(field="customer.na"), [1, 2, 3, 8, 10, 12], id="nested-prefix"),
    pytest.param(EventQuery(field="customer.name", types=(UPDATED,)), [2, 3, 4], id="field+type"),
    pytest.param(EventQuery(field="customer.name", actor="bob"), [2, 4, 12], id="field+actor"),
    pytest.param(
        EventQuery(field="customer.name", stream="orders", entity_ids=("o2",)),
        [8],
        id="field+entity",
    ),
    pytest.param(EventQuery(field="name", stream="customers"), [11], id="field+stream"),
    pytest.param(
        EventQuery(field="customer.name", since=T0, until=T0 + timedelta(seconds=9)),
        [1, 2, 3, 4, 8],
        id="field+window",
    ),
]


@pytest.mark.parametrize(("q", "expected"), FIELD_CASES)
async def test_a_field_matches_its_ancestors_and_whole_document_events(
    store: Store, log: LogBuilder, q: EventQuery, expected: list[int]
) -> None:
    await store.events.append(field_log(log))
    await assert_answers(store.events, q, expected)


async def test_a_field_query_starts_after_after_seq(store: Store, log: LogBuilder) -> None:
    await store.events.append(field_log(log))
    q = EventQuery(field="customer.name")
    assert await seqs(store.events, q, after_seq=2, limit=2) == [3, 4]
    assert await seqs(store.events, q, after_seq=4, limit=1) == [8]
    assert await seqs(store.events, q, after_seq=10) == [12]
    assert await seqs(store.events, q, after_seq=12) == []


# --- actor ---------------------------------------------------------------------------------------


def actor_log(log: LogBuilder) -> list[Event]:
    """Actors of every scalar kind a document holds; no number 1 or 0 beside the booleans
    (mongomock takes True for 1; MongoDB does not, nor does the memory log)."""
    actors: list[Any] = [
        42,  # 1
        Int64(42),  # 2: NumberLong
        42.0,  # 3: a double
        "42",  # 4
        7.5,  # 5
        OID,  # 6
        str(OID),  # 7: its hex, as a string
        True,  # 8
        False,  # 9
        "true",  # 10
        None,  # 11
        "alice",  # 12
        Decimal128("0.1"),  # 13
        0.1,  # 14
        43,  # 15
        -3,  # 16
    ]
    return [
        log.next(f"o{i % 3}", changed_fields=["status"], actor=actor)
        for i, actor in enumerate(actors)
    ]


ACTOR_CASES = [
    pytest.param("42", [1, 2, 3, 4], id="int-long-double-and-string"),
    pytest.param("42.0", [1, 2, 3], id="by-value-not-the-string-42"),
    pytest.param("4.2e1", [1, 2, 3], id="exponent"),
    pytest.param("7.5", [5], id="double"),
    pytest.param("-3", [16], id="negative"),
    pytest.param("0.1", [13, 14], id="decimal-and-double"),
    pytest.param(str(OID), [6, 7], id="object-id-and-its-hex"),
    pytest.param(str(OID).upper(), [], id="object-id-hex-is-lowercase"),
    pytest.param("true", [8, 10], id="boolean-and-string"),
    pytest.param("false", [9], id="false"),
    pytest.param("True", [], id="python-spelling"),
    pytest.param("alice", [12], id="string"),
    pytest.param("042", [], id="not-a-json-number"),
    pytest.param("+42", [], id="no-plus"),
    pytest.param("null", [], id="no-actor-is-named"),
    pytest.param("43.5", [], id="no-such-number"),
]


@pytest.mark.parametrize(("text", "expected"), ACTOR_CASES)
async def test_an_actor_is_found_by_the_text_that_names_it(
    store: Store, log: LogBuilder, text: str, expected: list[int]
) -> None:
    await store.events.append(actor_log(log))
    await assert_answers(store.events, EventQuery(actor=text), expected)


async def test_an_actor_combines_with_the_other_criteria(store: Store, log: LogBuilder) -> None:
    await store.events.append(actor_log(log))
    events = store.events
    # o0: events 1, 4, 7, 10, 13, 16; o1: 2, 5, ...; o2: 3, 6, ...
    await assert_answers(
        events, EventQuery(stream="orders", entity_ids=("o0",), actor="42"), [1, 4]
    )
    await assert_answers(
        events, EventQuery(stream="orders", entity_ids=("o1", "o2"), actor="42"), [2, 3]
    )
    await assert_answers(events, EventQuery(actor="42", types=(UPDATED,)), [4])
    await assert_answers(events, EventQuery(actor="42", field="status"), [1, 2, 3, 4])
    await assert_answers(events, EventQuery(actor="42", field="total"), [])
    await assert_answers(events, EventQuery(actor="42", since=T0 + timedelta(seconds=2)), [2, 3, 4])
    await assert_answers(events, EventQuery(actor="42", stream="customers"), [])
    assert await seqs(events, EventQuery(actor="42"), after_seq=1, limit=2) == [2, 3]
