"""Building events from changes, both hash chains, and tamper detection."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from bson import Decimal128, ObjectId, Timestamp

from eventstore.capture import Capture
from eventstore.chain import LogVerifier, entity_hash, verify_entity
from eventstore.codec import committed_doc, event_doc, event_from_doc
from eventstore.model import GENESIS_HASH, ChangeEvent, Event, Head
from eventstore.settings import load

NOW = datetime(2026, 11, 26, 14, 3, 0, 123456, tzinfo=UTC)
OID = ObjectId("64b7f0c2a1b2c3d4e5f60718")


def change(n: int, op: str, _id: object = OID, **extra: object) -> ChangeEvent:
    raw: dict[str, object] = {
        "_id": {"_data": f"82{n:08d}", "extra": "kept"},
        "operationType": op,
        "clusterTime": Timestamp(1_700_000_000 + n, 1),
        "wallTime": datetime(2026, 11, 26, 14, 0, n, tzinfo=UTC),
        "ns": {"db": "shop", "coll": "orders"},
        "documentKey": {"_id": _id},
    }
    raw.update(extra)
    return ChangeEvent.from_bson(raw)


def history() -> list[Event]:
    cap = Capture(load({"EVENTSTORE_REDACT": "customer.email"}), Head())
    cap.add_heads("orders", [OID, 7], {})
    doc = {
        "_id": OID,
        "status": "pending",
        "total": Decimal128("9.50"),
        "updatedBy": "alice",
        "customer": {"name": "Ann", "email": "ann@example.com"},
    }
    cap.entity_change(change(1, "insert", fullDocument=doc), now=NOW)
    cap.entity_change(
        change(
            2,
            "update",
            updateDescription={
                "updatedFields": {"status": "paid", "updatedBy": "bob"},
                "removedFields": ["note"],
                "truncatedArrays": [],
            },
        ),
        now=NOW,
    )
    cap.entity_change(
        change(3, "insert", _id=7, fullDocument={"_id": 7, "updatedBy": "carol"}), now=NOW
    )
    cap.entity_change(
        change(
            4,
            "delete",
            lsid={"id": "s1"},
            txnNumber=3,
            fullDocumentBeforeChange={"_id": OID, "updatedBy": "bob"},
        ),
        now=NOW,
    )
    cap.entity_change(change(5, "insert", fullDocument={"_id": OID, "updatedBy": "dave"}), now=NOW)
    return cap.take()


def test_events_are_dense_versioned_and_carry_who_what_when() -> None:
    events = history()
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [(e.entity_key, e.version, e.type) for e in events] == [
        (str(OID), 1, "created"),
        (str(OID), 2, "updated"),
        ("7", 1, "created"),
        (str(OID), 3, "deleted"),
        (str(OID), 4, "created"),
    ]
    first, upd, _, deleted, _ = events
    assert first.id == "8200000001"
    assert first.document is not None and first.document["customer"] == {"name": "Ann"}  # redacted
    assert first.actor == "alice" and upd.actor == "bob" and deleted.actor == "bob"
    assert upd.changed_fields == ["status", "updatedBy", "note"]
    assert upd.changes == {
        "updatedFields": {"status": "paid", "updatedBy": "bob"},
        "removedFields": ["note"],
        "truncatedArrays": [],
    }
    assert deleted.txn == {"lsid": {"id": "s1"}, "txnNumber": 3}
    assert first.occurred_at == datetime(2026, 11, 26, 14, 0, 1, tzinfo=UTC)
    assert first.recorded_at == datetime(2026, 11, 26, 14, 3, 0, 123000, tzinfo=UTC)
    assert first.prev_hash == GENESIS_HASH and upd.prev_hash == first.hash


def test_a_redacted_value_is_not_in_what_is_hashed() -> None:
    events = history()
    assert b"ann@example.com" not in repr(event_doc(events[0])).encode()


def test_both_chains_verify_and_survive_a_storage_round_trip() -> None:
    events = [event_from_doc(event_doc(e)) for e in history()]
    oid_events = [e for e in events if e.entity_key == str(OID)]
    assert verify_entity(oid_events).valid
    verifier = LogVerifier(Head(seq=5, log_hash=events[-1].log_hash))
    for e in events:
        verifier.feed(e)
    verdict = verifier.verdict()
    assert verdict.valid and verdict.head_matches and verdict.events_checked == 5


def run_log(events: list[Event], head: Head) -> tuple[bool, int | None, bool | None, str | None]:
    v = LogVerifier(head)
    for e in events:
        v.feed(e)
    r = v.verdict()
    return r.valid, r.first_invalid_seq, r.head_matches, r.reason


def test_tampering_is_found_where_it_happened() -> None:
    events = history()
    head = Head(seq=5, log_hash=events[-1].log_hash)
    edited = list(events)
    edited[1] = msgspec.structs.replace(events[1], actor="mallory")
    assert run_log(edited, head)[:2] == (False, 2)
    entity = [e for e in edited if e.entity_key == str(OID)]
    assert verify_entity(entity).first_invalid_version == 2

    deleted_middle = events[:2] + events[3:]
    assert run_log(deleted_middle, head)[:2] == (False, 3)

    truncated = events[:4]
    valid, first, matches, reason = run_log(truncated, head)
    assert (valid, first, matches) == (False, 5, False) and reason and "truncated" in reason

    forged = msgspec.structs.replace(events[2], id="forged", seq=3)
    forged = msgspec.structs.replace(forged, hash=entity_hash(forged))
    assert run_log([*events[:2], forged, *events[2:]], head)[:2] == (False, 3)

    swapped = [events[0], events[2], events[1], *events[3:]]
    assert run_log(swapped, head)[:2] == (False, 2)
    oid_swapped = [events[1], events[0]]
    assert verify_entity(oid_swapped).valid is False


def test_redelivered_change_ids_are_visible_to_the_batch() -> None:
    cap = Capture(load({}), Head(seq=10, log_hash="a" * 64))
    cap.add_heads("orders", [OID], {})
    e = cap.entity_change(change(1, "insert", fullDocument={"_id": OID}), now=NOW)
    assert e.seq == 11 and cap.is_pending(e.id)
    assert cap.head == Head(seq=11, log_hash=e.log_hash)


@pytest.mark.parametrize("op", ["insert", "update", "replace", "delete"])
def test_wants_only_captured_collections_and_operations(op: str) -> None:
    cap = Capture(load({"EVENTSTORE_OPERATIONS": "insert,delete"}), Head())
    c = change(1, op)
    assert cap.wants(c) is (op in ("insert", "delete"))
    other = ChangeEvent.from_bson(
        {
            **{
                "_id": {"_data": "1"},
                "operationType": op,
                "ns": {"db": "shop", "coll": "users"},
                "documentKey": {"_id": 1},
            }
        }
    )
    assert cap.wants(other) is False


def test_committed_doc_is_event_doc_without_payload_and_salt() -> None:
    """The hash input of the salted scheme: every hashed field but payload and salt, same order."""
    cap = Capture(load({}), Head(), salts=lambda _id: bytes(range(32)))
    event = cap.entity_change(
        ChangeEvent.from_bson(
            {
                "_id": {"_data": "01"},
                "operationType": "insert",
                "ns": {"db": "shop", "coll": "orders"},
                "documentKey": {"_id": "A"},
                "fullDocument": {"_id": "A", "email": "ann@example.org"},
            }
        ),
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    full = event_doc(event, with_hashes=False)
    for name in ("document", "changes", "before", "salt"):
        del full[name]
    assert list(committed_doc(event).items()) == list(full.items())
    assert event.salt == bytes(range(32)).hex()
