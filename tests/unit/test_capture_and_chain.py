"""Building events from changes, both hash chains, and tamper detection."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from bson import Decimal128, ObjectId, Timestamp

from eventstore.capture import Capture
from eventstore.chain import LogVerifier, entity_hash, seal, verify_entity
from eventstore.codec import committed_doc, event_doc, event_from_doc
from eventstore.model import (
    COMMIT_SCHEME,
    GENESIS_HASH,
    PAYLOAD_SCHEME,
    ChangeEvent,
    EntityHead,
    Event,
    Head,
)
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


def test_the_head_at_seq_0_is_the_genesis_hash_and_no_other() -> None:
    events = history()
    assert run_log(events, Head(seq=0, log_hash=GENESIS_HASH)) == (True, None, True, None)
    assert run_log(events, Head(seq=0, log_hash="a" * 64)) == (
        False,
        None,
        False,
        "log_hash at seq 0 differs from the recorded head (the genesis hash, 64 zeros)",
    )
    assert run_log([], Head(seq=0, log_hash="a" * 64))[2] is False


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


def test_a_capture_without_salts_seals_under_the_old_scheme() -> None:
    """`salts=None` (the logs written before erasure, and the capture benchmark's unsalted
    figure): no salt, no commit, the payload hashed as it is, and the chain still verifies."""
    cap = Capture(load({}), Head(), salts=None)
    event = cap.entity_change(change(1, "insert", fullDocument={"_id": OID, "n": 1}), now=NOW)
    assert (event.hash_scheme, event.salt, event.commit) == (PAYLOAD_SCHEME, None, None)
    assert event.document == {"_id": OID, "n": 1}
    assert event.hash == entity_hash(event)
    assert verify_entity([event]).valid


def test_a_salt_of_the_wrong_size_is_refused_by_seal() -> None:
    event = Capture(load({}), Head(), salts=None).entity_change(change(1, "delete"), now=NOW)
    with pytest.raises(ValueError, match=r"^a salt has 32 bytes, not 3$"):
        seal(event, prev_hash=GENESIS_HASH, prev_log_hash=GENESIS_HASH, salt=b"abc")


def test_snapshots_inferred_deletions_and_stream_events_say_where_they_came_from() -> None:
    """Derived events: deterministic ids, the cluster time and times given, chained per entity."""
    cap = Capture(load({"EVENTSTORE_REDACT": "customer.email"}), Head())
    cap.add_heads("orders", [OID, None], {})
    epoch, marker, ct = Timestamp(1_700_000_100, 3), Timestamp(1_700_000_200, 1), Timestamp(9, 2)
    at = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
    doc = {"_id": OID, "status": "paid", "updatedBy": "erin", "customer": {"email": "e@x", "n": 1}}
    snap = cap.snapshot("orders", doc, epoch=epoch, occurred_at=at, now=NOW)
    assert snap.id == f"snapshot:1700000100.3:orders:oid:{OID}"
    assert (snap.seq, snap.version, snap.type, snap.inferred) == (1, 1, "snapshot", False)
    assert (snap.cluster_time, snap.occurred_at) == (epoch, at)
    assert snap.recorded_at == datetime(2026, 11, 26, 14, 3, 0, 123000, tzinfo=UTC)
    assert snap.document == {
        "_id": OID,
        "status": "paid",
        "updatedBy": "erin",
        "customer": {"n": 1},
    }
    assert snap.changed_fields == ["_id", "status", "updatedBy", "customer"]
    assert snap.actor == "erin"

    gone = cap.inferred_delete(
        "orders", OID, marker=marker, cluster_time=ct, occurred_at=at, now=NOW
    )
    assert gone.id == f"inferred:1700000200.1:orders:oid:{OID}"
    assert (gone.seq, gone.version, gone.type, gone.inferred) == (2, 2, "deleted", True)
    assert (gone.cluster_time, gone.occurred_at, gone.prev_hash) == (ct, at, snap.hash)
    assert gone.document is None and gone.changed_fields == []

    dropped = cap.stream_event(
        "orders", "dropped", event_id="d", payload={}, cluster_time=ct, occurred_at=at, now=NOW
    )
    renamed = cap.stream_event(
        "orders",
        "renamed",
        event_id="r",
        payload={"to": {"db": "shop", "coll": "old_orders"}},
        cluster_time=None,
        occurred_at=at,
        now=NOW,
        inferred=True,
    )
    assert (dropped.entity_id, dropped.entity_key, dropped.version) == (None, "$stream", 1)
    assert (dropped.cluster_time, dropped.document, dropped.inferred) == (ct, {}, False)
    assert (renamed.entity_key, renamed.version, renamed.prev_hash) == ("$stream", 2, dropped.hash)
    assert renamed.document == {"to": {"db": "shop", "coll": "old_orders"}}
    assert (renamed.cluster_time, renamed.inferred, renamed.seq) == (None, True, 4)
    assert [e.id for e in cap.take()] == [snap.id, gone.id, "d", "r"]
    assert verify_entity([snap, gone]).valid


def updated(
    n: int, set_: dict[str, object] | None = None, unset: list[str] | None = None
) -> ChangeEvent:
    return change(
        n,
        "update",
        updateDescription={
            "updatedFields": set_ or {},
            "removedFields": unset or [],
            "truncatedArrays": [],
        },
    )


def test_a_nested_actor_field_is_followed_through_sets_removals_and_deletes() -> None:
    """ACTOR_FIELD `meta.by`: set, set through its parent, removed, or else unchanged; never a structure."""
    cap = Capture(load({"EVENTSTORE_ACTOR_FIELD": "meta.by"}), Head())
    cap.add_heads("orders", [OID, 7, 8], {})
    steps = [
        change(1, "insert", fullDocument={"_id": OID, "meta": {"by": "alice"}}),
        updated(2, {"status": "paid"}),
        updated(3, {"meta.by": "bob"}),
        updated(4, {"meta": {"by": "carol", "at": 1}}),
        updated(5, {"meta.by": {"name": "dave"}}),
        updated(6, {"meta.by": "erin"}),
        updated(7, {"meta": {"at": 2}}),
        updated(8, {"meta.by": "frank"}),
        updated(9, unset=["meta.b", "meta.byline"]),
        updated(10, unset=["meta"]),
        updated(11, {"meta.by": "gina"}),
        updated(12, {"meta": "flat"}),
        updated(13, {"meta.by": "hal"}),
        updated(14, unset=["meta.by"]),
        updated(15, {"meta.by": "ivy"}),
        updated(15, {"": {"meta": {"by": "zed"}}}),  # an empty field name is no parent
        change(16, "delete"),
        change(17, "insert", _id=7, fullDocument={"_id": 7, "meta": {"by": ["x"]}}),
        change(18, "insert", _id=8, fullDocument={"_id": 8, "meta": "flat"}),
        change(19, "delete", _id=8, fullDocumentBeforeChange={"_id": 8, "meta": {"by": "jo"}}),
    ]
    actors = [cap.entity_change(c, now=NOW).actor for c in steps]
    assert actors == [
        *("alice", "alice", "bob", "carol", None, "erin", None, "frank", "frank", None),
        *("gina", None, "hal", None, "ivy", "ivy", "ivy", None, None, "jo"),
    ]


def test_an_update_records_its_whole_description_and_times_fall_back_in_order() -> None:
    """Truncations and disambiguated paths are kept; occurred_at is wallTime, else the
    cluster time's second, else the time recorded; redacted fields are left out, of the
    pre-image too; no session, no txn."""
    cap = Capture(load({"EVENTSTORE_REDACT": "card"}), Head())
    cap.add_heads("orders", [OID], {})
    cap.entity_change(change(1, "insert", fullDocument={"_id": OID, "card": "4111"}), now=NOW)
    upd = cap.entity_change(
        change(
            2,
            "update",
            wallTime=None,
            updateDescription={
                "updatedFields": {"items.0": "x", "card": "4242"},
                "removedFields": ["note"],
                "truncatedArrays": [{"field": "tags", "newSize": 1}],
                "disambiguatedPaths": {"items.0": ["items", "0"]},
            },
        ),
        now=NOW,
    )
    assert upd.changes == {
        "updatedFields": {"items.0": "x"},
        "removedFields": ["note"],
        "truncatedArrays": [{"field": "tags", "newSize": 1}],
        "disambiguatedPaths": {"items.0": ["items", "0"]},
    }
    assert upd.changed_fields == ["items.0", "note", "tags"]
    assert upd.occurred_at == datetime(2023, 11, 14, 22, 13, 22, tzinfo=UTC)  # 1_700_000_002 s
    assert upd.txn is None and upd.document is None and upd.before is None
    gone = cap.entity_change(
        change(
            3,
            "delete",
            wallTime=None,
            clusterTime=None,
            fullDocumentBeforeChange={"_id": OID, "card": "4242", "n": 1},
        ),
        now=NOW,
    )
    assert (
        gone.occurred_at == gone.recorded_at == datetime(2026, 11, 26, 14, 3, 0, 123000, tzinfo=UTC)
    )
    assert gone.cluster_time is None and gone.before == {"_id": OID, "n": 1}
    assert gone.changes is None and gone.document is None and gone.changed_fields == []
    back = cap.entity_change(change(4, "replace", fullDocument=None), now=NOW)
    assert (back.version, back.type, back.document, back.changed_fields) == (4, "replaced", {}, [])


def test_needs_heads_names_each_uncached_entity_once_per_stream() -> None:
    """Heads are cached per stream and typed key: 1 and "1" differ, a repeat is asked once."""
    cap = Capture(load({"EVENTSTORE_COLLECTIONS": "orders,users"}), Head())
    assert cap.needs_heads("orders", [1, 1, OID, "1", OID, 1]) == [1, OID, "1"]
    head = EntityHead(
        stream="orders", entity_id=1, entity_key="1", version=4, hash="h" * 64, type="updated"
    )
    cap.add_heads("orders", [1, OID], {"int:1": head})
    assert cap.needs_heads("orders", [1, OID, 2, 2]) == [2]
    assert cap.needs_heads("users", [1]) == [1]
    assert cap.cached_heads("orders") == {"int:1": head, f"oid:{OID}": None}
    assert cap.cached_heads("users") == {}
    e = cap.entity_change(change(9, "delete", _id=1), now=NOW)
    assert (e.version, e.prev_hash) == (5, "h" * 64)
    cap.forget()
    assert cap.needs_heads("orders", [1]) == [1] and cap.take() == []


def test_the_cached_head_of_an_entity_is_its_latest_event_and_a_stored_one_never_replaces_it() -> (
    None
):
    """After each event the cache holds that entity's head as the event left it (all fields)."""
    cap = Capture(load({"EVENTSTORE_COLLECTIONS": "orders,users"}), Head())
    cap.add_heads("orders", [OID, 7], {})
    first = cap.entity_change(
        change(1, "insert", fullDocument={"_id": OID, "updatedBy": "ann"}), now=NOW
    )
    created = cap.entity_change(change(2, "insert", _id=7, fullDocument={"_id": 7}), now=NOW)
    deleted = cap.entity_change(change(3, "delete", _id=OID), now=NOW)
    assert cap.cached_heads("orders") == {
        f"oid:{OID}": EntityHead(
            stream="orders",
            entity_id=OID,
            entity_key=str(OID),
            version=2,
            hash=deleted.hash,
            type="deleted",
            actor="ann",
        ),
        "int:7": EntityHead(
            stream="orders",
            entity_id=7,
            entity_key="7",
            version=1,
            hash=created.hash,
            type="created",
            actor=None,
        ),
    }
    assert deleted.prev_hash == first.hash
    stale = EntityHead(
        stream="orders",
        entity_id=OID,
        entity_key=str(OID),
        version=1,
        hash=first.hash,
        type="created",
    )
    elsewhere = EntityHead(
        stream="users", entity_id=1, entity_key="1", version=3, hash="u" * 64, type="updated"
    )
    cap.add_known_heads([stale, elsewhere])
    assert cap.cached_heads("orders")[f"oid:{OID}"].version == 2  # type: ignore[union-attr]
    assert cap.cached_heads("users") == {"int:1": elsewhere}
    again = cap.entity_change(change(4, "insert", fullDocument={"_id": OID}), now=NOW)
    assert (again.version, again.prev_hash) == (3, deleted.hash)


def test_an_update_without_description_and_a_delete_without_any_actor() -> None:
    """No updateDescription: an empty change; a delete with no pre-image and no head: no actor."""
    cap = Capture(load({}), Head())
    cap.add_heads("orders", [OID, 7], {})
    bare = cap.entity_change(change(1, "update"), now=NOW)
    assert bare.changes == {"updatedFields": {}, "removedFields": [], "truncatedArrays": []}
    assert (bare.changed_fields, bare.actor, bare.before) == ([], None, None)
    gone = cap.entity_change(change(2, "delete", _id=7), now=NOW)
    assert (gone.actor, gone.before, gone.version) == (None, None, 1)
    elsewhere = ChangeEvent.from_bson(
        {
            "_id": {"_data": "9"},
            "operationType": "delete",
            "ns": {"db": "shop", "coll": "users"},
            "documentKey": {"_id": 1},
        }
    )
    with pytest.raises(AssertionError):  # the caller asks `wants` first
        cap.entity_change(elsewhere, now=NOW)


def test_a_three_part_actor_field_is_found_under_either_parent() -> None:
    cap = Capture(load({"EVENTSTORE_ACTOR_FIELD": "a.b.c"}), Head())
    cap.add_heads("orders", [OID], {})
    cap.entity_change(change(1, "insert", fullDocument={"_id": OID}), now=NOW)
    by_middle = cap.entity_change(updated(2, {"a.b": {"c": "x"}}), now=NOW)
    by_top = cap.entity_change(updated(3, {"a": {"b": {"c": "y"}}}), now=NOW)
    assert (by_middle.actor, by_top.actor) == ("x", "y")
    assert by_top.cluster_time == Timestamp(1_700_000_003, 1)


def test_sealing_with_a_salt_gives_a_fresh_event_that_no_erasure_names() -> None:
    """A sealed payload is whole: an `erased_by` carried in by the input is dropped."""
    event = Capture(load({}), Head(), salts=None).entity_change(change(1, "delete"), now=NOW)
    carried = msgspec.structs.replace(event, erased_by=5)
    sealed = seal(carried, prev_hash=GENESIS_HASH, prev_log_hash=GENESIS_HASH, salt=bytes(32))
    assert (sealed.erased_by, sealed.salt, sealed.hash_scheme) == (None, "00" * 32, COMMIT_SCHEME)
    assert verify_entity([sealed]).valid


def test_the_global_chain_is_as_the_readme_spells_it_for_an_outside_auditor() -> None:
    """README: `log_hash = SHA-256(previous log_hash ‖ hash)` over the hashes' hex text in
    ASCII, 64 "0"s before seq 1; computed here as an auditor would from an export, with
    nothing of the project's chain code."""
    import hashlib

    from tests.helpers import LogBuilder

    log = LogBuilder()
    events = [log.next(i % 3, document={"n": i}) for i in range(7)]
    previous = "0" * 64
    for e in events:
        assert len(e.hash) == 64 and e.hash == e.hash.lower()
        assert e.log_hash == hashlib.sha256(f"{previous}{e.hash}".encode("ascii")).hexdigest()
        raw = hashlib.sha256(bytes.fromhex(previous) + bytes.fromhex(e.hash)).hexdigest()
        assert e.log_hash != raw  # not the bytes
        previous = e.log_hash
