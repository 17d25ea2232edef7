"""What the audit query's `field` and `actor` match (pure), what each costs on the memory
log, and the mongo filter each makes: points and ranges of the log's indexes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bson import Decimal128, Int64, ObjectId

from eventstore.actor_text import actor_key, actor_keys, actor_values, names_actor
from eventstore.field_match import (
    WHOLE_DOCUMENT_TYPES,
    changed_field,
    changed_path,
    path_and_ancestors,
)
from eventstore.memory.eventlog import MemoryEventLog
from eventstore.model import DELETED, EVENT_TYPES, REPLACED, SNAPSHOT, Event, EventQuery
from eventstore.mongo.eventlog import INDEXES, audit_filter
from eventstore.subscriptions.filters import related
from tests.helpers import LogBuilder

OID = ObjectId("65f000000000000000000001")

# --- field ---------------------------------------------------------------------------------------


def test_a_path_and_its_ancestors() -> None:
    assert path_and_ancestors("a.b.c") == ["a", "a.b", "a.b.c"]
    assert path_and_ancestors("a") == ["a"]
    assert path_and_ancestors("a.b.c.d") == ["a", "a.b", "a.b.c", "a.b.c.d"]
    assert path_and_ancestors("items.0.qty") == ["items", "items.0", "items.0.qty"]


@pytest.mark.parametrize(
    ("changed", "path", "expected"),
    [
        ("customer.name", "customer.name", True),
        ("customer.name.first", "customer.name", True),
        ("customer", "customer.name", True),
        ("customer.email", "customer.name", False),
        ("customerNote", "customer", False),
        ("customer", "customerNote", False),
        ("cust", "customer", False),
        ("customer.na", "customer.name", False),
    ],
)
def test_a_changed_path_relates_as_a_subscription_filter_reads_it(
    changed: str, path: str, expected: bool
) -> None:
    assert changed_path(changed, path) is expected
    assert related(changed, path) is expected  # the subscription filter agrees


def test_whole_document_events_change_every_field() -> None:
    assert {REPLACED, SNAPSHOT, DELETED} == WHOLE_DOCUMENT_TYPES
    assert WHOLE_DOCUMENT_TYPES <= EVENT_TYPES
    for kind in WHOLE_DOCUMENT_TYPES:
        assert changed_field(kind, [], "anything.at.all")
    assert not changed_field("updated", [], "status")
    assert not changed_field("created", ["_id", "status"], "customer.name")
    assert changed_field("created", ["_id", "customer"], "customer.name")


# --- actor ---------------------------------------------------------------------------------------


def test_the_values_a_text_names() -> None:
    assert actor_values("alice") == ("alice",)
    assert actor_values("42") == ("42", Int64(42), Decimal128("42"))
    assert [type(v) for v in actor_values("42")] == [str, Int64, Decimal128]
    assert actor_values("7.5") == ("7.5", 7.5, Decimal128("7.5"))
    assert actor_values("-3") == ("-3", Int64(-3), Decimal128("-3"))
    assert actor_values("1e3") == ("1e3", 1000.0, Decimal128("1e3"))
    assert actor_values("0.0") == ("0.0", 0.0, Decimal128("0.0"))  # 0 itself, not too small
    assert actor_values("true") == ("true", True)
    assert actor_values("false") == ("false", False)
    assert actor_values(str(OID)) == (str(OID), OID)
    # Not JSON numbers, nor ObjectIds: the string alone.
    for text in ("+1", "042", "NaN", "Infinity", "1_000", " 42", "0x2a", "True", str(OID).upper()):
        assert actor_values(text) == (text,), text
    # Beyond a 64-bit integer: the double (and the NumberDecimal) of that value.
    assert actor_values(str(2**63)) == (str(2**63), float(2**63), Decimal128(str(2**63)))
    # Past a double's range or too small to tell from 0: no double; 34 digits at most.
    assert actor_values("1e400") == ("1e400", Decimal128("1e400"))
    assert actor_values("1e-400") == ("1e-400", Decimal128("1e-400"))
    assert actor_values("1e9999") == ("1e9999",)


@pytest.mark.parametrize(
    ("actor", "named_by", "not_named_by"),
    [
        (42, ["42", "42.0", "4.2e1"], ["42.5", "43", "+42", "042"]),
        (Int64(42), ["42", "42.0"], ["43"]),
        (42.0, ["42", "42.0"], ["42.1"]),
        ("42", ["42"], ["42.0", "4.2e1"]),
        (7.5, ["7.5", "7.50", "75e-1"], ["7", "8"]),
        (Decimal128("0.10"), ["0.1", "0.10"], ["0.2"]),
        (0.1, ["0.1"], ["0.2"]),
        (OID, [str(OID)], [str(OID).upper(), "65f"]),
        (True, ["true"], ["1", "True", "false"]),
        (False, ["false"], ["0", "False", "true"]),
        (1, ["1", "1.0"], ["true"]),
        (0, ["0", "-0", "0.0"], ["false"]),
        ("alice", ["alice"], ["Alice", "alice "]),
        (None, [], ["null", "None", ""]),
        (float("nan"), [], ["nan", "NaN"]),
    ],
)
def test_an_actor_is_named_by_its_text_and_no_other(
    actor: Any, named_by: list[str], not_named_by: list[str]
) -> None:
    for text in named_by:
        assert names_actor(text, actor), (text, actor)
    for text in not_named_by:
        assert not names_actor(text, actor), (text, actor)


def test_equal_numbers_share_one_index_key_and_a_boolean_is_no_number() -> None:
    assert actor_key(42) == actor_key(Int64(42)) == actor_key(42.0) == actor_key(Decimal128("42"))
    assert actor_key(True) != actor_key(1)
    assert actor_key("42") != actor_key(42)
    assert actor_key(OID) != actor_key(str(OID))
    assert actor_key(Decimal128("0.1")) == actor_key(Decimal128("0.10")) != actor_key(0.1)
    assert actor_keys("42") == {actor_key("42"), actor_key(42)}  # one key for the number
    assert len({actor_key(v) for v in (True, False, "x", 1, OID, str(OID))}) == 6


def test_an_actor_no_text_names_has_no_index_key() -> None:
    # Not a key a query could look up, and never hashed: a signalling NaN cannot be.
    for actor in (None, float("nan"), float("inf"), -float("inf")):
        assert actor_key(actor) is None, actor
    for text in ("NaN", "sNaN", "Infinity", "-Infinity"):
        assert actor_key(Decimal128(text)) is None, text


# --- memory: what a query reads ------------------------------------------------------------------

SIZE = 3000
RARE = (500, 1500, 2500)


@pytest.fixture(scope="module")
def busy_log() -> MemoryEventLog:
    """3,000 events: a bot's status updates, and at seq 500, 1,500 and 2,500 a change of
    `customer` whole, an insert and a deletion, each by the NumberLong actor 42."""
    builder = LogBuilder()
    events: list[Event] = []
    for seq in range(1, SIZE + 1):
        if seq == RARE[0]:
            event = builder.next("r1", changed_fields=["_id", "customer"], actor=Int64(42))
        elif seq == RARE[1]:
            event = builder.next("r1", changed_fields=["customer"], actor=42.0)
        elif seq == RARE[2]:
            event = builder.next("r1", DELETED, changed_fields=[], actor=42)
        else:
            event = builder.next("hot", changed_fields=["status"], actor="bot")
        events.append(event)
    log = MemoryEventLog()
    asyncio.run(log.append(events))
    return log


@pytest.mark.parametrize(
    ("q", "after_seq", "limit", "returned", "most_examined"),
    [
        pytest.param(EventQuery(field="customer.name"), 0, 100, 3, 3, id="ancestors"),
        pytest.param(EventQuery(field="customer.name.first"), 0, 100, 3, 3, id="deeper"),
        pytest.param(EventQuery(field="customer"), 0, 100, 3, 3, id="the-path"),
        pytest.param(EventQuery(field="customer.name"), 500, 1, 1, 1, id="a-page"),
        pytest.param(EventQuery(actor="42"), 0, 100, 3, 3, id="actor-number"),
        pytest.param(EventQuery(actor="42.0"), 1000, 100, 2, 2, id="actor-double-deep"),
        # The bot's 2,997 events are not read to find its none with a customer.
        pytest.param(EventQuery(actor="bot", field="customer.name"), 0, 100, 0, 3, id="both"),
        pytest.param(EventQuery(actor="42", field="status"), 0, 100, 1, 3, id="both-numbers"),
    ],
)
async def test_a_field_or_actor_query_examines_what_it_returns_not_the_log(
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
    assert [e.seq for e in found] == sorted({e.seq for e in found})
    assert returned <= busy_log.examined - before <= most_examined


async def test_an_event_under_two_of_a_fields_lists_is_read_and_returned_once() -> None:
    builder = LogBuilder()
    log = MemoryEventLog()
    await log.append(
        [
            builder.next("a", changed_fields=["customer", "customer.name", "customer.name.x"]),
            builder.next("a", changed_fields=["customer"]),
        ]
    )
    before = log.examined

    found = await log.query(EventQuery(field="customer.name"))

    assert [e.seq for e in found] == [1, 2]
    assert log.examined - before == 2


# --- mongo: the filter, on the log's indexes -----------------------------------------------------


def test_the_mongo_filter_names_the_field_ancestors_beneath_and_whole_document_types() -> None:
    found = audit_filter(EventQuery(field="customer.name"), after_seq=3)
    assert found == {
        "$or": [
            {"changed_fields": {"$in": ["customer", "customer.name"]}},
            {"changed_fields": {"$regex": r"^customer\.name\."}},
            {"type": {"$in": ["deleted", "replaced", "snapshot"]}},
        ],
        "seq": {"$gt": Int64(3)},
    }
    # Each clause leads an index that ends in seq: read in seq order after `after_seq`.
    leading = {keys[0][0] for keys, _ in INDEXES if keys[-1][0] == "seq"}
    assert {next(iter(clause)) for clause in found["$or"]} <= leading


def test_the_mongo_filter_lists_the_values_an_actor_text_names() -> None:
    assert audit_filter(EventQuery(actor="alice"))["actor"] == "alice"
    values = audit_filter(EventQuery(actor="42"))["actor"]["$in"]
    assert values == ["42", Int64(42), Decimal128("42")]
    assert [type(v) for v in values] == [str, Int64, Decimal128]
    assert audit_filter(EventQuery(actor=str(OID)))["actor"] == {"$in": [str(OID), OID]}
    assert audit_filter(EventQuery(actor="true"))["actor"] == {"$in": ["true", True]}
    assert any(keys == [("actor", 1), ("seq", 1)] for keys, _ in INDEXES)
